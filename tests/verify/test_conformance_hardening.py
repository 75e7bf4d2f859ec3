"""check_cell hardening (issue 12): in-place changes named by argument and key, every argument
of forward and backward watched, cells given as names, Cells or spec paths (IndRNN and the
minimal gated unit written by hand here, from their specs' equations), runs reproducible from
the seed alone."""
import os
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

import derive
from verify import CS231nLayout, SeedLayout, TorchLayout, check_cell, snapshots
from verify.cellarg import resolve_cell
from verify.gradcheck import gradcheck_kernel

ROOT = Path(__file__).resolve().parents[2]
INDRNN = ROOT / "examples" / "indrnn.toml"
MGU = ROOT / "examples" / "minimal_gated_unit.toml"


def sigmoid(x):
    return 1 / (1 + numpy.exp(-x))


# ---- an RNN in the seed layout: h = tanh(W_xh x + W_hh h_prev + b_h), rows are the batch -----
def rnn_forward(p, x, state):
    return (numpy.tanh(x @ p["W_xh"].T + state[0] @ p["W_hh"].T + p["b_h"]),)


def rnn_backward(p, x, state, dstate):
    (h,) = rnn_forward(p, x, state)
    da = dstate[0] * (1 - h ** 2)
    grads = {"W_xh": da.T @ x, "W_hh": da.T @ state[0], "b_h": da.sum(axis=0)}
    return grads, da @ p["W_xh"], (da @ p["W_hh"],)


def _mutations(res):
    return [m for m in res.mismatches if m.kind == "mutated"]


# ---- 1. parameters compared by name -------------------------------------------------------
def test_a_forward_that_adds_a_key_to_params_is_blamed_on_params():
    """Old: the flattened snapshots were zipped by position, so a new key shifted the blame
    onto x."""
    def forward(p, x, state):
        p["cached"] = numpy.zeros(1)
        return rnn_forward(p, x, state)
    res = check_cell("rnn_tanh", forward=forward, max_examples=3, seed=1)
    assert [(m.phase, m.message) for m in _mutations(res)] == [
        ("forward", "modified its inputs in place: params (key 'cached' added)")]


def test_a_changed_or_removed_parameter_is_named_with_its_key():
    def forward(p, x, state):
        out = rnn_forward(p, x, state)
        p["W_hh"][...] = 7.0
        del p["b_h"]
        return out
    res = check_cell("rnn_tanh", forward=forward, max_examples=3, seed=1)
    (m,) = _mutations(res)
    assert m.message == "modified its inputs in place: params (key 'b_h' removed), params['W_hh']"


# ---- 2. every argument of backward watched -------------------------------------------------
def test_a_backward_that_writes_into_the_upstream_gradient_is_caught():
    """Old: the upstream gradients were not snapshotted, so this passed."""
    def backward(p, x, state, dstate):
        out = rnn_backward(p, x, state, dstate)
        dstate[0][...] = 0.5
        return out
    res = check_cell("rnn_tanh", forward=rnn_forward, backward=backward, max_examples=5, seed=2)
    assert [(m.phase, m.message) for m in _mutations(res)] == [
        ("backward", "modified its inputs in place: dh_next")]


def test_cs231n_backward_writing_into_dnext_c_or_its_cached_x_is_caught():
    from test_verify_conformance import lstm_step_backward, lstm_step_forward

    def into_dc(dnext_h, dnext_c, cache):
        out = lstm_step_backward(dnext_h, dnext_c, cache)
        dnext_c *= 0
        return out

    def into_x(dnext_h, dnext_c, cache):
        out = lstm_step_backward(dnext_h, dnext_c, cache)
        cache[0][...] = 1.0                   # the x forward kept is the caller's x
        return out
    for backward, label in ((into_dc, "dc_next"), (into_x, "x")):
        res = check_cell("lstm", forward=lstm_step_forward, backward=backward,
                         layout=CS231nLayout("lstm"), max_examples=5, seed=3)
        assert [m.message for m in _mutations(res)] == [f"modified its inputs in place: {label}"]


def test_cs231n_parameters_are_named_as_the_user_function_receives_them():
    from test_verify_conformance import rnn_step_forward

    def forward(x, h, Wx, Wh, b):
        b += 1
        return rnn_step_forward(x, h, Wx, Wh, b - 1)
    res = check_cell("rnn_tanh", forward=forward, layout=CS231nLayout("rnn_tanh"), max_examples=3,
                     seed=4)
    assert [m.message for m in _mutations(res)] == ["modified its inputs in place: b"]


def test_snapshots_compare_nested_containers_by_name():
    """snapshots.changes names what changed by its path: dict keys, list positions, array
    values / shape / dtype; NaN equals NaN; an unchanged tree has no changes."""
    a = numpy.array([1.0, numpy.nan])
    args = {"p": {"W": a, "v": [numpy.zeros(2), (numpy.ones(1), 3)]}, "x": numpy.zeros((2, 2))}
    snap = snapshots.take(args)
    assert snapshots.changes(snap, args) == []
    args["p"]["v"][1][0][0] = 5
    args["p"]["v"].append(1)
    args["p"]["new"] = 1
    args["x"] = args["x"].astype(numpy.float32)      # a different dtype, same values
    assert snapshots.changes(snap, args) == ["p (key 'new' added)", "p['v'] (length 2 -> 3)", "x"]
    snap = snapshots.take(args)
    args["p"]["v"][1][0][0] = 6
    assert snapshots.changes(snap, args) == ["p['v'][1][0]"]


# ---- 3. a cell as a name, a Cell or a spec path ---------------------------------------------
def indrnn_forward(p, x, state):
    """IndRNN (Li et al. 2018, eq. 2): h = relu(W_xh x + u * h_prev + b), rows are the batch."""
    return (numpy.maximum(x @ p["W_xh"].T + p["u"] * state[0] + p["b"], 0),)


def indrnn_backward(p, x, state, dstate, bug=False):
    a = x @ p["W_xh"].T + p["u"] * state[0] + p["b"]
    da = dstate[0] * (a > 0)                          # relu'(0) = 0, as PyTorch
    du = da if bug else da * state[0]                 # the bug: forgets h_prev in du
    grads = {"W_xh": da.T @ x, "u": du.sum(axis=0), "b": da.sum(axis=0)}
    return grads, da @ p["W_xh"], (da * p["u"],)


@pytest.mark.parametrize("spec", [str(INDRNN), INDRNN, "cell"], ids=["str", "Path", "Cell"])
def test_a_hand_written_indrnn_passes_for_a_spec_path_or_a_cell(spec):
    """Old: UnknownCellError for anything but a built-in name."""
    cell = derive.cell_from_spec(INDRNN) if spec == "cell" else spec
    res = check_cell(cell, forward=indrnn_forward, backward=indrnn_backward, max_examples=30,
                     seed=5)
    assert res.ok and res.cell == "indrnn", str(res)


def test_a_planted_indrnn_bug_is_located():
    res = check_cell(INDRNN, forward=indrnn_forward, max_examples=30, seed=6,
                     backward=lambda *a: indrnn_backward(*a, bug=True),
                     layout=SeedLayout(str(INDRNN)))
    assert not res.ok
    assert {m.what for m in res.mismatches} == {"u"}, str(res)     # the key the code returns


def test_a_hand_written_minimal_gated_unit_forward_passes():
    def forward(p, x, state):
        (h,) = state
        f = sigmoid(x @ p["W_xf"].T + h @ p["W_hf"].T + p["b_f"])
        htilde = numpy.tanh(x @ p["W_xh"].T + (f * h) @ p["W_hh"].T + p["b_h"])
        return ((1 - f) * h + f * htilde,)
    assert check_cell(MGU, forward=forward, max_examples=20, seed=7).ok
    wrong = check_cell(MGU, forward=lambda p, x, s: (forward(p, x, s)[0] + 1e-3,),
                       max_examples=20, seed=7)
    assert [m.what for m in wrong.mismatches] == ["next_h"]


def test_gradcheck_kernel_and_layouts_take_a_spec_path():
    k = derive.kernels(resolve_cell(MGU))
    p = k.init_params(2, 3, rng=0)
    xs = numpy.random.default_rng(1).standard_normal((2, 2, 2))
    assert gradcheck_kernel(MGU, p, xs).ok(atol=1e-6, rtol=1e-5)
    assert SeedLayout(MGU).cell is resolve_cell(str(MGU))      # parsed once per file version
    with pytest.raises(ValueError, match="no CS231n packing known for cell 'minimal_gated_unit'"):
        CS231nLayout(MGU)
    with pytest.raises(ValueError, match="'indrnn' in the CS231n packing.*u is H"):
        CS231nLayout(INDRNN, gates=[("W_xh", "u", "b")])
    with pytest.raises(ValueError, match="cell 'indrnn' has no PyTorch layout"):
        TorchLayout(INDRNN)


def test_a_cell_argument_that_is_none_of_the_three_is_a_one_line_error():
    with pytest.raises(TypeError, match=r"^cell must be a cell name, a derive.Cell or a .toml "
                                        r"spec path, got int 3$"):
        check_cell(3, forward=rnn_forward)
    with pytest.raises(derive.SpecError, match="nope.toml: cannot read spec"):
        SeedLayout("nope.toml")
    with pytest.raises(ValueError, match="does not end in .toml"):
        resolve_cell(Path("examples/indrnn.txt"))
    with pytest.raises(derive.UnknownCellError, match="unknown cell 'indrnn'"):
        check_cell("indrnn", forward=rnn_forward)


# ---- 4. reproducible from the seed ---------------------------------------------------------
def _buggy_run(**kw):
    res = check_cell(INDRNN, forward=indrnn_forward, seed=11,
                     backward=lambda *a: indrnn_backward(*a, bug=True), **kw)
    return (res.ok, res.examples, str(res))


def test_same_seed_same_verdict_case_and_count_in_one_process():
    """Two runs, and a run under another Hypothesis profile: identical result text (verdict,
    minimal case, mismatches, number of cases). Old: the default took max_examples from the
    profile, so the count (and possibly the case) followed the profile."""
    from hypothesis import settings
    first = _buggy_run()
    assert not first[0] and first == _buggy_run()
    name = settings.get_current_profile_name()
    settings.register_profile("conformance-other", max_examples=7)
    try:
        settings.load_profile("conformance-other")
        assert _buggy_run() == first
    finally:
        settings.load_profile(name)


SCRIPT = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
if sys.argv[1] == "extra":
    import extra_constants        # a local module full of literals Hypothesis would mine
from test_conformance_hardening import _buggy_run
ok, n, text = _buggy_run()
print(n)
print(text)
"""


def test_same_seed_same_result_in_processes_that_import_different_local_modules(tmp_path):
    """Hypothesis draws constants from the source of every local module imported; check_cell
    switches that off (verify.reproducible), so two processes that import different local
    code (and hash differently) give the same count and minimal case. Old: 73 vs 49 cases."""
    (tmp_path / "extra_constants.py").write_text(
        "VALUES = [0.375, 0.5, 0.25, 1e-3, 2.5, -0.75, 0.125, 3, 7, 11, 0.9, -0.3]\n")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests" / "verify")))
    outs = []
    for arg, hashseed in (("plain", "1"), ("extra", "2")):
        env = dict(os.environ, PYTHONHASHSEED=hashseed, PYTHONPATH=str(tmp_path))
        env.pop("HYPOTHESIS_PROFILE", None)
        r = subprocess.run([sys.executable, str(script), arg], capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=300)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    assert outs[0] == outs[1]
    assert outs[0].split("\n", 1)[1].strip() == _buggy_run()[2]
