"""Gradient mismatches name the user's own dict keys, and split biases (PyTorch's b_ih + b_hh)
per gate with per-gate concat packing. Planted code written here, proved by central
differences (verify.oracles) before the checker's verdict is asserted."""
import numpy
import pytest

from verify import PackedLayout, check_cell, check_sequence
from verify.oracles import central_difference

from test_layout_kinds import COLS, col_backward, col_forward, sig

N = 25
GATES = "ifgo"


# ---- 1. the report names the user's gradient keys -----------------------------------------
def _own_keys(grads):
    """col_backward's gradients keyed like the parameters (Wf, bf, ...), not dWf."""
    return {k[1:]: v for k, v in grads.items()}


def test_a_gradient_keyed_like_its_parameter_is_named_by_that_key():
    def backward(p, x, s, ds):
        grads, dx, dprev = col_backward(p, x, s, ds)
        grads = _own_keys(grads)
        grads["Wf"] = 2 * grads["Wf"]                     # planted: Wf's gradient doubled
        return grads, dx, dprev
    r = check_cell("lstm", forward=col_forward, backward=backward, layout=COLS,
                   max_examples=N, seed=1)
    text = str(r)
    assert not r.ok
    bad = {m.what for m in r.mismatches}
    assert bad and all(w.startswith("Wf[") for w in bad), text       # the user's key, sliced
    assert any(w.endswith("(W_hf)") or w.endswith("(W_xf)") for w in bad), text
    assert "dWf" not in text and "dW_f" not in text, text


def test_the_correct_column_code_with_its_own_gradient_keys_passes():
    def backward(p, x, s, ds):
        grads, dx, dprev = col_backward(p, x, s, ds)
        return _own_keys(grads), dx, dprev
    assert check_cell("lstm", forward=col_forward, backward=backward, layout=COLS,
                      max_examples=N, seed=1).ok


def _rnn(p, x, h):
    return numpy.tanh(x @ p["Wxh"].T + h @ p["Whh"].T + p["bh"])


def _rnn_back(p, x, state, dstate, key="grad_", bug=False):
    h = _rnn(p, x, state[0])
    da = dstate[0] * (1 - h ** 2)
    return ({key + "Wxh": da.T @ x, key + "bh": da.sum(0),
             key + "Whh": da.T @ (h if bug else state[0])}, da @ p["Wxh"], (da @ p["Whh"],))


def test_the_rnn_plant_is_what_it_says():
    rng = numpy.random.default_rng(0)
    p = {"Wxh": rng.uniform(-1, 1, (3, 2)), "Whh": rng.uniform(-1, 1, (3, 3)), "bh": rng.uniform(-1, 1, 3)}
    x, h, dh = rng.uniform(-1, 1, (2, 2)), rng.uniform(-1, 1, (2, 3)), rng.uniform(-1, 1, (2, 3))
    for bug in (False, True):
        g, _, _ = _rnn_back(p, x, (h,), (dh,), bug=bug)
        fd = central_difference(lambda a: numpy.array(float((_rnn({**p, "Whh": a}, x, h) * dh).sum())),
                                p["Whh"])
        assert numpy.allclose(g["grad_Whh"], fd, atol=1e-7) != bug


@pytest.mark.parametrize("key,shown", [("grad_", "grad_Whh (W_hh)"), ("d", "dWhh (W_hh)"),
                                       ("", "Whh (W_hh)")])
def test_grad_names_prefix_or_the_key_itself_is_what_the_report_says(key, shown):
    names = {"W_xh": "Wxh", "W_hh": "Whh", "b_h": "bh"}
    layout = PackedLayout("rnn_tanh", packing="per_gate", names=names,
                          grad_names={k: key + k for k in names.values()} if key == "grad_" else None)
    r = check_cell("rnn_tanh", forward=lambda p, x, s: (_rnn(p, x, s[0]),),
                   backward=lambda *a: _rnn_back(*a, key=key, bug=True), layout=layout,
                   max_examples=N, seed=6)
    assert not r.ok and [m.what for m in r.mismatches] == [shown], str(r)


def test_a_gradient_the_code_does_not_return_is_named_missing_and_can_be_skipped():
    names = {"W_xh": "Wxh", "W_hh": "Whh", "b_h": "bh"}
    layout = PackedLayout("rnn_tanh", packing="per_gate", names=names)

    def backward(*a):
        g, dx, dh = _rnn_back(*a, key="d")
        del g["dbh"]
        return g, dx, dh
    fwd = lambda p, x, s: (_rnn(p, x, s[0]),)  # noqa: E731
    r = check_cell("rnn_tanh", forward=fwd, backward=backward, layout=layout, max_examples=N, seed=6)
    assert not r.ok and [(m.what, m.kind) for m in r.mismatches] == [("dbh (b_h)", "missing")], str(r)
    assert "skip=('dbh',)" in str(r), str(r)
    for skip in ("dbh", "b_h"):
        assert check_cell("rnn_tanh", forward=fwd, backward=backward, layout=layout,
                          max_examples=N, seed=6, skip=(skip,)).ok


def test_bias_free_code_returning_no_bias_gradient_passes_with_biases_false():
    """Old: 'could not read the parameter gradients' although biases=False says they are not
    compared."""
    def fwd(p, x, s):
        return (numpy.tanh(x @ p["W_xh"].T + s[0] @ p["W_hh"].T),)

    def bwd(p, x, s, ds):
        da = ds[0] * (1 - fwd(p, x, s)[0] ** 2)
        return {"W_xh": da.T @ x, "W_hh": da.T @ s[0]}, da @ p["W_xh"], (da @ p["W_hh"],)
    assert check_cell("rnn_tanh", forward=fwd, backward=bwd, biases=False, max_examples=N, seed=1).ok

    def seq_fwd(p, xs, s0):
        hs = [s0[0]]
        for x in xs:
            hs.append(fwd(p, x, (hs[-1],))[0])
        return numpy.array(hs[1:]), (xs, hs)

    def seq_bwd(p, cache, dhs, dfinal):
        xs, hs = cache
        total, dh = None, 0 * hs[0]
        for t in reversed(range(len(xs))):
            g, _, (dh,) = bwd(p, xs[t], (hs[t],), (dhs[t] + dh,))
            total = g if total is None else {k: total[k] + g[k] for k in g}
        return total, (dh,)
    r = check_sequence("rnn_tanh", seq_fwd, seq_bwd, biases=False, skip=("dx",), max_examples=10, seed=1)
    assert r.ok, str(r)


# ---- 2. split biases per gate with per-gate concat packing --------------------------------
def split_forward(p, x, state, bug=None, concat=False):
    """LSTM step, rows: a_g = [x, h] W_g^T + b_ih_g + b_hh_g (``concat``: b_g = [b_ih, b_hh]);
    ``bug="no_hh"``: b_hh ignored."""
    h, c = state
    z = numpy.hstack([x, h])

    def pre(g):
        if concat:
            H = p["W_" + g].shape[0]
            b_ih, b_hh = p["b_" + g][:H], p["b_" + g][H:]
        else:
            b_ih, b_hh = p["b_ih_" + g], p["b_hh_" + g]
        return z @ p["W_" + g].T + b_ih + (0 if bug == "no_hh" else b_hh)
    i, f, g, o = sig(pre("i")), sig(pre("f")), numpy.tanh(pre("g")), sig(pre("o"))
    c2 = f * c + i * g
    return o * numpy.tanh(c2), c2


def split_backward(p, x, state, dstate, bug=None, concat=False):
    """``bug="zero_hh"``: the b_hh gradients are left at zero."""
    h, c = state
    dh, dc = dstate
    z = numpy.hstack([x, h])
    H, D = h.shape[1], x.shape[1]

    def pre(g):
        b = p["b_" + g][:H] + p["b_" + g][H:] if concat else p["b_ih_" + g] + p["b_hh_" + g]
        return z @ p["W_" + g].T + b
    i, f, g, o = sig(pre("i")), sig(pre("f")), numpy.tanh(pre("g")), sig(pre("o"))
    c2 = f * c + i * g
    tc = numpy.tanh(c2)
    dc2 = dc + dh * o * (1 - tc ** 2)
    das = {"i": dc2 * g * i * (1 - i), "f": dc2 * c * f * (1 - f), "g": dc2 * i * (1 - g ** 2),
           "o": dh * tc * o * (1 - o)}
    grads, dz = {}, 0
    for k, da in das.items():
        db = da.sum(0)
        dbh = 0 * db if bug == "zero_hh" else db
        grads["dW_" + k] = da.T @ z
        if concat:
            grads["db_" + k] = numpy.concatenate([db, dbh])
        else:
            grads["db_ih_" + k], grads["db_hh_" + k] = db, dbh
        dz = dz + da @ p["W_" + k]
    return grads, dz[:, :D], (dz[:, D:], dc2 * f)


def _split_case(rng, concat, D=2, H=3, B=2):
    u = lambda *s: rng.uniform(-1, 1, s)  # noqa: E731
    p = {f"W_{g}": u(H, D + H) for g in GATES}
    for g in GATES:
        if concat:
            p[f"b_{g}"] = u(2 * H)
        else:
            p[f"b_ih_{g}"], p[f"b_hh_{g}"] = u(H), u(H)
    return p, u(B, D), (u(B, H), u(B, H)), (u(B, H), u(B, H))


@pytest.mark.parametrize("concat", [False, True])
@pytest.mark.parametrize("bug", [None, "zero_hh"])
def test_the_split_bias_plants_are_what_they_say(concat, bug):
    p, x, s, (dh, dc) = _split_case(numpy.random.default_rng(0), concat)

    def loss(a):
        h2, c2 = split_forward({k: a[k] for k in p}, a["x"], (a["h"], a["c"]), concat=concat)
        return numpy.array(float((dh * h2).sum() + (dc * c2).sum()))
    arrays = {**p, "x": x, "h": s[0], "c": s[1]}
    fd = {k: central_difference(lambda a, k=k: loss({**arrays, k: a}), arrays[k]) for k in arrays}
    grads, dx, (dhp, dcp) = split_backward(p, x, s, (dh, dc), bug=bug, concat=concat)
    got = {**{k[1:]: v for k, v in grads.items()}, "x": dx, "h": dhp, "c": dcp}
    wrong = {k for k in fd if not numpy.allclose(got[k], fd[k], atol=1e-7)}
    expect = set() if bug is None else ({f"b_{g}" for g in GATES} if concat
                                        else {f"b_hh_{g}" for g in GATES})
    assert wrong == expect, wrong
    assert not numpy.allclose(split_forward(p, x, s, bug="no_hh")[0], split_forward(p, x, s)[0]) \
        if not concat else True


def _layout(concat):
    return PackedLayout("lstm", packing="per_gate_concat_xh",
                        bias="split_concat" if concat else "split")


@pytest.mark.parametrize("concat", [False, True])
def test_split_biases_per_gate_pass_and_round_trip(concat):
    layout = _layout(concat)
    rng = numpy.random.default_rng(1)
    p = {n: rng.uniform(-1, 1, (3,) if n.startswith("b") else (3, 2 if "x" in n else 3))
         for n in layout.param_names}
    u = layout.to_user(p)
    keys = ({f"b_{g}" for g in GATES} if concat else
            {f"b_{k}_{g}" for k in ("ih", "hh") for g in GATES}) | {f"W_{g}" for g in GATES}
    assert set(u) == keys
    back = layout.from_user(u)
    assert all(numpy.allclose(back[n], p[n], atol=1e-15) for n in p)
    r = check_cell("lstm", forward=lambda *a: split_forward(*a, concat=concat),
                   backward=lambda *a: split_backward(*a, concat=concat), layout=layout,
                   max_examples=N, seed=2)
    assert r.ok, str(r)


def test_split_biases_per_gate_bugs_are_caught_and_named():
    layout = _layout(False)
    r = check_cell("lstm", forward=lambda *a: split_forward(*a, bug="no_hh"), layout=layout,
                   max_examples=N, seed=2)
    assert not r.ok and any(m.what == "next_h" for m in r.mismatches), str(r)
    r = check_cell("lstm", forward=split_forward, backward=lambda *a: split_backward(*a, bug="zero_hh"),
                   layout=layout, max_examples=N, seed=2)
    bad = {m.what.split("[")[0] for m in r.mismatches}
    assert not r.ok and bad and bad <= {f"db_hh_{g}" for g in GATES}, str(r)
    r = check_cell("lstm", forward=lambda *a: split_forward(*a, concat=True),
                   backward=lambda *a: split_backward(*a, bug="zero_hh", concat=True),
                   layout=_layout(True), max_examples=N, seed=2)
    assert not r.ok and all(m.what.startswith("db_") for m in r.mismatches), str(r)
    assert r.example_mismatches and all(m.what.startswith("db_") and "[3:6]" in m.what
                                        for m in r.example_mismatches), str(r)   # the b_hh half


def test_split_biases_per_gate_over_a_sequence():
    """The same step code as a seed-convention sequence loop passes check_sequence."""
    def fwd(p, xs, s0):
        states, hs = [tuple(s0)], []
        for x in xs:
            states.append(split_forward(p, x, states[-1]))
            hs.append(states[-1][0])
        return numpy.array(hs), states[-1], (xs, states)

    def bwd(p, cache, dhs, dfinal):
        xs, states = cache
        dh, dc = (numpy.zeros_like(states[0][0]),) * 2 if dfinal is None else dfinal
        total = None
        for t in reversed(range(len(xs))):
            g, _, (dh, dc) = split_backward(p, xs[t], states[t], (dh + dhs[t], dc))
            total = g if total is None else {k: total[k] + g[k] for k in g}
        return total, (dh, dc)
    r = check_sequence("lstm", fwd, bwd, layout=_layout(False), max_examples=10, seed=3,
                       skip=("dx",))
    assert r.ok, str(r)


def test_split_bias_with_the_cell_s_own_names_is_a_one_line_error():
    with pytest.raises(ValueError, match="bias='split' needs a packed layout"):
        PackedLayout("lstm", packing="per_gate", bias="split")
