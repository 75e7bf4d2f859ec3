"""The GRUs, the ReLU RNN, Greff's eight LSTM variants and the example specs, checked
against oracles that do not use the engine's rules:

* central finite differences of the forward step (every step-Jacobian block, and the
  backward step's gradients of ``L = sum_s Delta_s . s_t`` for previous states, input and
  every parameter);
* PyTorch ``nn.GRU``, ``nn.RNN(nonlinearity='relu')`` and ``nn.LSTM`` forward and autograd,
  with the weights packed as the cells' ``[torch]`` tables say;
* the papers' definitions of the variants, as relations between cells (e.g. CIFG is the
  peephole LSTM with the forget gate's parameters set to minus the input gate's, since
  sigma(-a) = 1 - sigma(a)).

Forward values and derived expressions are evaluated with verify.oracles' NumPy interpreter
of the engine's SymPy nodes (:func:`evaluate`), in float64, and finite differences come from
its one central-difference routine.
Tolerances: central differences with step 1e-6 have truncation error ~1e-12 * f''' and
rounding error ~1e-10 / 1e-6 = 1e-10 relative; we allow 1e-6 relative + 1e-8 absolute.
PyTorch and the interpreter compute the same float64 formulas in a different order: 1e-12.
"""
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import sympy
from hypothesis import assume, given
from hypothesis import strategies as st
from sympy.matrices.expressions.diagonal import DiagMatrix

import derive
from derive.core.algebra import hadamard
from derive.core.primitives import Elementwise, Tanh
from derive.core.symbols import DIMS, Var
from verify import oracles

ROOT = Path(__file__).resolve().parents[2]
NEW_CELLS = ["gru", "gru_cho", "rnn_relu", "lstm_nig", "lstm_nfg", "lstm_nog", "lstm_niaf",
             "lstm_noaf", "lstm_np", "lstm_cifg", "lstm_fgr"]
EXAMPLES = ["minimal_gated_unit", "indrnn"]
N, M = 3, 2                      # H and D of the numerical checks


@lru_cache(maxsize=None)
def get_cell(name):
    if name in EXAMPLES:
        return derive.cell_from_spec(ROOT / "examples" / f"{name}.toml")
    return derive.cell(name)


# ---------------------------------------------------------------------------------------
# a NumPy interpreter of the engine's expression nodes (not the engine's kernels)
# ---------------------------------------------------------------------------------------

def _dims(shape):
    return tuple(int(sympy.sympify(d).subs({DIMS["H"]: N, DIMS["D"]: M})) for d in shape)


def evaluate(e, env):
    """The value of a SymPy matrix expression of the engine at H = N, D = M, leaves looked up
    by name (verify.oracles.evaluate, the one interpreter)."""
    return oracles.evaluate(e, env, dims={"H": N, "D": M})


def random_point(cell, rng, scale=0.6):
    """Values for x, every s_prev and every parameter (shapes at H = N, D = M)."""
    env = {"x": rng.normal(size=(M, 1))}
    for p in cell.prev.values():
        env[p.name] = rng.normal(size=(N, 1))
    for name, p in cell.params.items():
        env[name] = scale * rng.normal(size=_dims(p.shape))
    return env


def forward(cell, env):
    """env extended with every equation's value, in the cell's order."""
    env = dict(env)
    for eq in cell.equations:
        env[eq.lhs.name] = evaluate(eq.rhs, env)
    return env


def new_states(cell, env):
    out = forward(cell, env)
    return {s: out[s] for s in cell.states}


def preactivations_away_from_zero(cell, env, margin=1e-3):
    """relu has a kink at 0: finite differences there are meaningless."""
    out = forward(cell, env)
    for eq in cell.equations:
        for node in sympy.preorder_traversal(eq.rhs):
            if isinstance(node, Elementwise) and node.name == "relu":
                if np.min(np.abs(evaluate(node.arg, out))) < margin:
                    return False
    return True


def fd_jacobian(fn, env, name, step=1e-6):
    """d fn(env) / d env[name] by central differences, numerator layout (columns = entries;
    verify.oracles.fd_jacobian)."""
    return oracles.fd_jacobian(lambda a: fn({**env, name: a}), env[name], step)


def close(a, b):
    return np.allclose(a, b, rtol=1e-6, atol=1e-8)


def seeds():
    return st.integers(min_value=0, max_value=2 ** 32 - 1)


ALL = NEW_CELLS + EXAMPLES


# ---------------------------------------------------------------------------------------
# derived results vs finite differences
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
@given(seed=seeds())
def test_step_jacobian_blocks_match_finite_differences(name, seed):
    """Every block d s_t / d s'_{t-1} of the derived step Jacobian, evaluated at a random
    point, equals the central-difference Jacobian of the forward step."""
    cell = get_cell(name)
    env = random_point(cell, np.random.default_rng(seed))
    assume(preactivations_away_from_zero(cell, env))
    values = forward(cell, env)
    for (s, r), block in cell.step_jacobian().items():
        derived = evaluate(block, values)
        oracle = fd_jacobian(lambda e: new_states(cell, e)[s], env, cell.prev[r].name)
        assert close(derived, oracle), (name, s, r, np.abs(derived - oracle).max())


@pytest.mark.parametrize("name", ALL)
@given(seed=seeds())
def test_backward_step_matches_finite_differences(name, seed):
    """delta s_{t-1}, delta x and every parameter gradient of the derived backward step are
    the gradients of L = sum_s Delta_s . s_t (Delta_s random), by central differences."""
    cell = get_cell(name)
    rng = np.random.default_rng(seed)
    env = random_point(cell, rng)
    assume(preactivations_away_from_zero(cell, env))
    incoming = {f"Delta_{s}": rng.normal(size=(N, 1)) for s in cell.states}

    def loss(e):
        st_ = new_states(cell, e)
        return np.array(sum(float(np.sum(incoming[f"Delta_{s}"] * st_[s])) for s in cell.states))

    values = {**forward(cell, env), **incoming}
    bw = cell.backward()
    for delta, expr in bw.assignments:
        values[delta.name] = evaluate(expr, values)
    got = {cell.prev[s].name: e for s, e in bw.prev_states.items()}
    got["x"] = bw.input
    got.update(bw.params)
    assert set(got) == {"x", *(p.name for p in cell.prev.values()), *cell.params}
    for name_, expr in got.items():
        derived = evaluate(expr, values)
        oracle = fd_jacobian(loss, env, name_).reshape(env[name_].shape)
        assert close(derived, oracle), (name, name_, np.abs(derived - oracle).max())


# ---------------------------------------------------------------------------------------
# PyTorch as the oracle for the cells PyTorch implements
# ---------------------------------------------------------------------------------------

TORCH_CELLS = {"gru": "GRU", "rnn_relu": "RNN", "lstm_np": "LSTM"}


def torch_module(cell, torch, rng):
    table = cell.torch
    kwargs = {"nonlinearity": table["nonlinearity"]} if "nonlinearity" in table else {}
    mod = getattr(torch.nn, table["module"])(M, N, **kwargs).double()
    with torch.no_grad():
        for p in mod.parameters():
            p.copy_(torch.from_numpy(0.6 * rng.normal(size=tuple(p.shape))))
    return mod


def params_from_torch(cell, mod):
    """The cell's parameters from a torch module, read as the [torch] table documents:
    each tensor stacks one H-row block per listed parameter; a bias listed under both
    bias tensors is their sum."""
    sd = {k: v.detach().numpy() for k, v in mod.state_dict().items()}
    out = {}
    for key, names in cell.torch.items():
        if key in ("module", "nonlinearity"):
            continue
        for j, n in enumerate(names):
            block = sd[key][j * N:(j + 1) * N]
            block = block.reshape(N, 1) if block.ndim == 1 else block
            out[n] = out[n] + block if n in out else block.copy()
    return out


@pytest.mark.parametrize("name", sorted(TORCH_CELLS))
@given(seed=seeds())
def test_forward_and_gradients_match_pytorch(name, seed):
    torch = pytest.importorskip("torch")
    cell = derive.cell(name)
    assert cell.torch["module"] == TORCH_CELLS[name]
    rng = np.random.default_rng(seed)
    mod = torch_module(cell, torch, rng)
    env = {"x": rng.normal(size=(M, 1)), **params_from_torch(cell, mod)}
    for p in cell.prev.values():
        env[p.name] = rng.normal(size=(N, 1))
    assume(preactivations_away_from_zero(cell, env))
    incoming = {f"Delta_{s}": rng.normal(size=(N, 1)) for s in cell.states}

    # PyTorch: one step, batch 1
    xt = torch.tensor(env["x"].T[None], requires_grad=True)            # (L=1, N=1, D)
    prev = [torch.tensor(env[cell.prev[s].name].T[None], requires_grad=True) for s in cell.states]
    if cell.torch["module"] == "LSTM":                                  # states (h, c)
        out, (hn, cn) = mod(xt, tuple(prev))
        torch_states = {"h": hn, "c": cn}
    else:
        out, hn = mod(xt, prev[0])
        torch_states = {"h": hn}
    loss = sum((torch_states[s].reshape(-1) * torch.from_numpy(incoming[f"Delta_{s}"].reshape(-1))).sum()
               for s in cell.states)
    loss.backward()

    values = {**forward(cell, env), **incoming}
    for s in cell.states:
        np.testing.assert_allclose(values[s].reshape(-1), torch_states[s].detach().numpy().reshape(-1),
                                   rtol=1e-12, atol=1e-12)
    bw = cell.backward()
    for delta, expr in bw.assignments:
        values[delta.name] = evaluate(expr, values)
    np.testing.assert_allclose(evaluate(bw.input, values).reshape(-1), xt.grad.numpy().reshape(-1),
                               rtol=1e-12, atol=1e-12)
    for k, s in enumerate(cell.states):
        np.testing.assert_allclose(evaluate(bw.prev_states[s], values).reshape(-1),
                                   prev[k].grad.numpy().reshape(-1), rtol=1e-12, atol=1e-12)
    # parameter gradients, read back through the [torch] table: a summed bias gets the same
    # gradient in both PyTorch tensors
    grads = {k: v.grad.numpy() for k, v in mod.named_parameters()}
    for key, names in cell.torch.items():
        if key in ("module", "nonlinearity"):
            continue
        for j, n in enumerate(names):
            derived = evaluate(bw.params[n], values).reshape(-1)
            np.testing.assert_allclose(derived, grads[key][j * N:(j + 1) * N].reshape(-1),
                                       rtol=1e-12, atol=1e-12, err_msg=f"{name} {key} {n}")


# ---------------------------------------------------------------------------------------
# the variants are what the papers define (relations between cells, evaluated)
# ---------------------------------------------------------------------------------------

BIG = 60.0     # sigma(60) = 1 - 8.8e-27: 1 in float64


def _peephole_states(env):
    return new_states(derive.cell("lstm_peephole"), env)


def _zero_gate(params, gate, big):
    """Parameters of lstm_peephole with gate ``gate`` (i, f, o) fixed at sigma(big)."""
    out = dict(params)
    for n in (f"W_x{gate}", f"W_h{gate}", f"W_c{gate}"):
        out[n] = np.zeros_like(out[n])
    out[f"b_{gate}"] = np.full_like(out[f"b_{gate}"], big)
    return out


@given(seed=seeds())
def test_greff_variants_are_the_peephole_lstm_with_one_change(seed):
    """NIG, NFG, NOG: a gate fixed at 1 (sigma of a large bias); NP: peepholes zero; CIFG:
    forget-gate parameters = minus the input gate's (sigma(-a) = 1 - sigma(a)); FGR: the
    nine gate-recurrence matrices zero. Each variant's step equals the base cell's."""
    rng = np.random.default_rng(seed)
    base = derive.cell("lstm_peephole")
    env = random_point(base, rng)
    ref = _peephole_states(env)

    def same(variant, base_env, extra=None):
        cell = derive.cell(variant)
        venv = {k: v for k, v in env.items() if k in cell.params or k in ("x", "h_prev", "c_prev")}
        venv.update(extra or {})
        got = new_states(cell, venv)
        want = new_states(base, base_env)
        for s in ("h", "c"):
            np.testing.assert_allclose(got[s], want[s], rtol=1e-12, atol=1e-12, err_msg=variant)

    same("lstm_nig", _zero_gate(env, "i", BIG))
    same("lstm_nfg", _zero_gate(env, "f", BIG))
    same("lstm_nog", _zero_gate(env, "o", BIG))
    same("lstm_np", {**env, **{n: np.zeros((N, 1)) for n in ("W_ci", "W_cf", "W_co")}})
    cifg = {**env, "W_xf": -env["W_xi"], "W_hf": -env["W_hi"], "W_cf": -env["W_ci"], "b_f": -env["b_i"]}
    same("lstm_cifg", cifg)
    fgr = derive.cell("lstm_fgr")
    extra = {n: np.zeros((N, N)) for n in fgr.params if n.startswith("R_")}
    extra.update({f"{g}_prev": rng.normal(size=(N, 1)) for g in "ifo"})
    same("lstm_fgr", env, extra)
    # and the base really changes when the gate is not saturated
    assert not np.allclose(new_states(derive.cell("lstm_nig"), env)["c"], ref["c"])


def test_niaf_and_noaf_drop_exactly_one_activation():
    """NIAF: g has no activation (g is the affine pre-activation); NOAF: h = o * c.
    Checked on the equation graphs: the base cell's tanh on gbar (resp. on c) is the only
    node that differs."""
    base = derive.cell("lstm_peephole")
    niaf, noaf = derive.cell("lstm_niaf"), derive.cell("lstm_noaf")
    assert niaf.definition("g") == base.definition("gbar")
    assert base.definition("g") == Tanh(base.symbol("gbar"))
    assert "gbar" not in niaf.variables
    assert base.definition("h") == hadamard([base.symbol("o"), Tanh(base.symbol("c"))])
    assert noaf.definition("h") == hadamard([noaf.symbol("o"), noaf.symbol("c")])


@given(seed=seeds())
def test_gru_conventions(seed):
    """Both GRUs: z weights the OLD state (Cho eq. 7; z = 1 gives h_t = h_{t-1}). With the
    reset gate open (r = 1) they are the same map (b_n = b_xn + b_hn); with r in (0, 1) they
    differ, because the reset acts after (PyTorch) or before (Cho v3) the product."""
    rng = np.random.default_rng(seed)
    gru, cho = derive.cell("gru"), derive.cell("gru_cho")
    env = random_point(gru, rng)
    for cell, extra in ((gru, {}), (cho, {"b_n": env["b_xn"] + env["b_hn"]})):
        e = {k: v for k, v in {**env, **extra}.items() if k in cell.params or k in ("x", "h_prev")}
        shut = {**e, "W_xz": 0 * e["W_xz"], "W_hz": 0 * e["W_hz"], "b_z": np.full((N, 1), BIG)}
        np.testing.assert_allclose(new_states(cell, shut)["h"], e["h_prev"], rtol=0, atol=1e-15)
    open_r = {"W_xr": 0 * env["W_xr"], "W_hr": 0 * env["W_hr"], "b_r": np.full((N, 1), BIG)}
    g = new_states(gru, {**env, **open_r})["h"]
    cho_env = {k: v for k, v in {**env, **open_r, "b_n": env["b_xn"] + env["b_hn"]}.items()
               if k in cho.params or k in ("x", "h_prev")}
    np.testing.assert_allclose(new_states(cho, cho_env)["h"], g, rtol=1e-12, atol=1e-12)
    cho_env = {k: v for k, v in {**env, "b_n": env["b_xn"] + env["b_hn"]}.items()
               if k in cho.params or k in ("x", "h_prev")}
    assert not np.allclose(new_states(cho, cho_env)["h"], new_states(gru, env)["h"])


# ---------------------------------------------------------------------------------------
# textbook forms (structure of the derived Jacobians)
# ---------------------------------------------------------------------------------------

def _terms(cell, of, wrt):
    return cell.jacobian_linmap(of, wrt).terms


def _chains(cell, of, wrt):
    """{chain as strings: lead} of the derived Jacobian (diagonals in a chain as 'diag(v)')."""
    return {tuple(f"diag({c.to_expr()})" if hasattr(c, "terms") else str(c) for c in t.chain):
            t.lead for t in _terms(cell, of, wrt)}


def test_gru_jacobian_has_the_update_gate_carousel_and_the_reset_where_the_paper_puts_it():
    """equations.md section 6: dh/dh_prev = diag(z) + (terms through W_hz, W_hn, W_hr).
    PyTorch: r multiplies W_hn h_prev, so r is in the diagonal left of W_hn.
    Cho v3: r multiplies h_prev before W_hn, so the chain is W_hn diag(r)."""
    gru, cho = derive.cell("gru"), derive.cell("gru_cho")
    pt, v3 = _chains(gru, "h", "h"), _chains(cho, "h", "h")
    assert pt[()].to_expr() == gru.symbol("z") and v3[()].to_expr() == cho.symbol("z")
    assert set(pt) == {(), ("W_hn",), ("W_hr",), ("W_hz",)}
    assert any(gru.symbol("r") in m for m, _ in pt[("W_hn",)].terms)
    assert set(v3) == {(), ("W_hz",), ("W_hn", "diag(r)"),
                       ("W_hn", f"diag({hadamard_str(cho)})", "W_hr")}
    assert not any(cho.symbol("r") in m for m, _ in v3[("W_hn", "diag(r)")].terms)


def hadamard_str(cell):
    from derive.core.algebra import hadamard
    from derive.core.primitives import SigmoidPrime
    return str(hadamard([cell.symbol("h_prev"), SigmoidPrime(cell.symbol("rbar"))]))


def test_lstm_np_cell_state_jacobian_is_the_constant_error_carousel():
    """Without peepholes, d c_t / d c_{t-1} = diag(f_t) (equations.md section 3)."""
    c = derive.cell("lstm_np")
    assert c.jacobian("c", "c") == DiagMatrix(c.symbol("f"))


def test_indrnn_step_jacobian_is_diagonal():
    c = get_cell("indrnn")
    (term,) = _terms(c, "h", "h")
    assert term.chain == ()


def test_fgr_has_the_gates_as_states_and_nine_recurrent_gate_matrices():
    c = derive.cell("lstm_fgr")
    assert c.states == ("h", "c", "i", "f", "o")
    R = [p for p in c.params if p.startswith("R_")]
    assert len(R) == 9 and all(c.params[p].shape == (DIMS["H"], DIMS["H"]) for p in R)
    assert len(c.step_jacobian()) == 25
    # i_{t-1} reaches i_t only through R_ii
    assert [str(x) for t in _terms(c, "i", "i") for x in t.chain] == ["R_ii"]


def test_every_new_cell_derives_and_exports(tmp_path):
    """The whole pipeline runs on every new cell (all registered exporters)."""
    from derive.cli import main
    assert main(["--cells", ",".join(NEW_CELLS), "--out", str(tmp_path)]) == 0
    for name in NEW_CELLS:
        assert (tmp_path / "summary" / f"{name}.txt").is_file()


def test_new_cells_are_listed():
    assert set(NEW_CELLS) <= set(derive.cells())
    for name in NEW_CELLS:
        c = derive.cell(name)
        assert c.title and c.reference and isinstance(c.equations[0].lhs, Var)
        if name.startswith("lstm_"):
            assert "Greff" in c.reference
