"""NumPy kernels (issue 3) against independent oracles, for every built-in cell.

Oracles: SymPy's explicit entry-by-entry evaluation of the cell's equations (forward),
central finite differences in float64 (backward, step_jacobian), and the generated module
file against the run-time route (identical results). PyTorch comparisons live in
tests/kernels/test_kernels_torch.py.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy
import pytest
import sympy
from sympy import ImmutableMatrix

import derive
from derive.core.reduction import DimSize
from conftest import flat_states, split_states, state_shapes, states_like
from derive.export.kernels import export
from derive.codegen.module import generate
from derive.codegen.source import module_source
from derive.core.symbols import DIMS
from verify import oracles

CELLS = derive.cells()
T, B, D, H = 3, 2, 3, 4
EPS = 1e-6
# central differences with eps = 1e-6 in float64: truncation O(eps^2) plus rounding
# O(1e-16 / eps) on losses of size O(10) give errors around 1e-9; 1e-6 leaves a wide margin
# while a wrong term in a gradient is O(1e-1).
FD_TOL = 1e-6


def _fd_tol(num):
    """FD_TOL, scaled up for gradients larger than 1 (rounding grows with the loss's size:
    random user cells can have gradients in the hundreds)."""
    return FD_TOL * max(1.0, float(numpy.abs(num).max(initial=0.0)))


def _setup(k, seed=0, scale=2.0):
    rng = numpy.random.default_rng(seed)
    p = {n: v * scale for n, v in k.init_params(D, H, rng=rng).items()}
    xs = rng.standard_normal((T, B, D))
    s0 = states_like(k, B, H, lambda shape: 0.5 * rng.standard_normal(shape))
    return rng, p, xs, s0


def _final_state(k, p, xs, s0):
    st = s0
    for t in range(xs.shape[0]):
        st = k.step(p, xs[t], st)
    return st


@pytest.fixture(scope="module", params=CELLS)
def kern(request):
    return derive.kernels(request.param)


# ---------------------------------------------------------------------------------------
# forward: the kernel's step against SymPy's explicit evaluation of the equations
# ---------------------------------------------------------------------------------------

def _explicit_step(cell, p, x, s):
    """One step for one batch row, evaluating the spec's equations entry by entry in SymPy."""
    dims = {DIMS["H"]: H, DIMS["D"]: D}
    subs = {sympy.OneMatrix(DIMS["H"], 1): ImmutableMatrix.ones(H, 1),
            sympy.OneMatrix(DIMS["D"], 1): ImmutableMatrix.ones(D, 1)}
    for name, sym in cell.params.items():
        a = numpy.asarray(p[name], dtype=float)
        subs[sym] = ImmutableMatrix(a.reshape(int(sym.shape[0].subs(dims)), -1).tolist())
    subs[cell.input] = ImmutableMatrix(x.reshape(-1, 1).tolist())
    for k, st in enumerate(cell.states):
        subs[cell.prev[st]] = ImmutableMatrix(numpy.asarray(s[k]).reshape(-1, 1).tolist())
    for eq in cell.equations:
        for size in eq.rhs.atoms(DimSize):                  # H as a 1 x 1 constant
            subs[size] = ImmutableMatrix([[H]])
        val = eq.rhs.xreplace(subs).xreplace(dims)
        val = val.as_explicit() if hasattr(val, "as_explicit") else val
        subs[eq.lhs] = ImmutableMatrix(val.evalf(30))
    return [numpy.array(subs[cell.symbol(st)].tolist(), dtype=float).ravel() for st in cell.states]


@pytest.mark.parametrize("name", CELLS)
def test_step_matches_explicit_sympy_evaluation(name):
    cell, k = derive.cell(name), derive.kernels(name)
    _, p, xs, s0 = _setup(k)
    new = k.step(p, xs[0], s0)
    for b in range(B):
        want = _explicit_step(cell, p, xs[0][b], [s[b] for s in s0])
        for st, got, w in zip(k.STATE, new, want):
            numpy.testing.assert_allclose(got[b].ravel(), w, rtol=1e-12, atol=1e-12,
                                          err_msg=f"{name}: {st}")


def test_forward_equals_repeated_step(kern):
    _, p, xs, s0 = _setup(kern)
    hs, _ = kern.forward(p, xs, s0)
    st = s0
    out = kern.STATE.index(kern.OUTPUT)
    for t in range(T):
        st = kern.step(p, xs[t], st)
        numpy.testing.assert_allclose(hs[t], st[out], rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------------------------------
# backward and step_jacobian against central finite differences
# ---------------------------------------------------------------------------------------

def test_backward_matches_finite_differences(kern, scale=2.0):
    """Every parameter and every initial state, with a loss on all hs and on the final state."""
    rng, p, xs, s0 = _setup(kern, scale=scale)
    dhs = rng.standard_normal((T, B, H))
    dsT = states_like(kern, B, H, rng.standard_normal)

    def loss(p, s0):
        hs, _ = kern.forward(p, xs, s0)
        sT = _final_state(kern, p, xs, s0)
        return float((hs * dhs).sum() + sum((a * w).sum() for a, w in zip(sT, dsT)))

    _, cache = kern.forward(p, xs, s0)
    grads, ds0 = kern.backward(p, cache, dhs, dsT)
    assert list(grads) == list(kern.PARAMS)
    for name, value in p.items():
        num = oracles.fd_gradient(lambda a: loss({**p, name: a}, s0), value, EPS)
        numpy.testing.assert_allclose(grads[name], num, atol=_fd_tol(num), rtol=0, err_msg=name)
        assert grads[name].shape == value.shape
    for j, st in enumerate(kern.STATE):
        num = oracles.fd_gradient(lambda a: loss(p, s0[:j] + (a,) + s0[j + 1:]), s0[j], EPS)
        numpy.testing.assert_allclose(ds0[j], num, atol=_fd_tol(num), rtol=0, err_msg=f"dstate0 {st}")


def test_input_gradient_matches_finite_differences(kern, scale=2.0):
    """backward(..., return_dxs=True) also gives dL/dxs (what a layer below needs), against
    central differences over every entry of xs; without the flag the result is unchanged."""
    rng, p, xs, s0 = _setup(kern, seed=6, scale=scale)
    dhs = rng.standard_normal((T, B, H))
    dsT = states_like(kern, B, H, rng.standard_normal)

    def loss(xs):
        hs, _ = kern.forward(p, xs, s0)
        sT = _final_state(kern, p, xs, s0)
        return float((hs * dhs).sum() + sum((a * w).sum() for a, w in zip(sT, dsT)))

    _, cache = kern.forward(p, xs, s0)
    plain = kern.backward(p, cache, dhs, dsT)
    grads, ds0, dxs = kern.backward(p, cache, dhs, dsT, return_dxs=True)
    assert len(plain) == 2 and dxs.shape == xs.shape and dxs.dtype == xs.dtype
    for name in p:
        assert numpy.array_equal(plain[0][name], grads[name]), name
    num = oracles.fd_gradient(loss, xs, EPS)
    numpy.testing.assert_allclose(dxs, num, atol=_fd_tol(num), rtol=0)


def test_step_jacobian_matches_finite_differences(kern, scale=2.0):
    _, p, xs, s0 = _setup(kern, seed=1, scale=scale)
    J = kern.step_jacobian(p, xs[0], s0)
    shapes = state_shapes(kern, B, H)
    S = flat_states(s0).shape[1]                  # H per state (1 for a scalar, H^2 for a matrix)
    assert J.shape == (B, S, S)

    def step(s):                                  # (B, S) stacked states -> (B, S)
        return flat_states(kern.step(p, xs[0], split_states(s, shapes)))
    num = oracles.fd_jacobian(step, flat_states(s0), EPS, batch=1)
    numpy.testing.assert_allclose(J, num, atol=_fd_tol(num), rtol=0)


def test_zero_length_sequence(kern):
    _, p, _, s0 = _setup(kern)
    hs, cache = kern.forward(p, numpy.zeros((0, B, D)), s0)
    assert hs.shape == (0, B, H)
    dsT = states_like(kern, B, H, numpy.ones)
    grads, ds0 = kern.backward(p, cache, numpy.zeros((0, B, H)), dsT)
    assert all(not g.any() for g in grads.values())
    assert all((d == 1).all() for d in ds0)


# ---------------------------------------------------------------------------------------
# the generated file and the run-time route
# ---------------------------------------------------------------------------------------

def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_module_equals_runtime_route(kern, tmp_path):
    cell = derive.cell(kern.KERNEL.cell.name)
    src = module_source(generate(cell))
    assert src == module_source(generate(cell)), "generated source is not deterministic"
    path = tmp_path / f"{cell.name}.py"
    path.write_text(src)
    gen = _load(path, f"gen_{cell.name}")
    rng, p, xs, s0 = _setup(kern, seed=3)
    dhs = rng.standard_normal((T, B, H))
    for mod_a, mod_b in [(gen, kern)]:
        hs_a, c_a = mod_a.forward(p, xs, s0)
        hs_b, c_b = mod_b.forward(p, xs, s0)
        assert numpy.array_equal(hs_a, hs_b)
        g_a, d_a = mod_a.backward(p, c_a, dhs)
        g_b, d_b = mod_b.backward(p, c_b, dhs)
        for n in p:
            assert numpy.array_equal(g_a[n], g_b[n]), n
        for a, b in zip(d_a, d_b):
            assert numpy.array_equal(a, b)
        assert numpy.array_equal(mod_a.step_jacobian(p, xs[0], s0), mod_b.step_jacobian(p, xs[0], s0))
    assert gen.STATE == kern.STATE and gen.PARAMS == kern.PARAMS


def test_exporter_writes_every_cell_deterministically():
    cells = [derive.cell(n) for n in CELLS]
    a, b = export(cells, None), export(cells, None)
    assert a == b
    assert set(a) == {f"kernels/{n}.py" for n in CELLS} | {"kernels/__init__.py"}
    for path, text in a.items():
        compile(text, path, "exec")


def test_generated_module_runs_without_sympy(tmp_path):
    (tmp_path / "lstm_kernel.py").write_text(module_source(generate(derive.cell("lstm"))))
    script = textwrap.dedent(f"""
        import sys
        sys.modules["sympy"] = None          # any import of sympy now fails
        sys.modules["derive"] = None
        sys.path.insert(0, {str(tmp_path)!r})
        import numpy, lstm_kernel as k
        p = k.init_params(3, 4, rng=0)
        hs, cache = k.forward(p, numpy.ones((2, 1, 3)))
        grads, ds0 = k.backward(p, cache, numpy.ones_like(hs))
        J = k.step_jacobian(p, numpy.ones((1, 3)), (numpy.zeros((1, 4)),) * 2)
        imported = sorted(m for m in sys.modules if m.split(".")[0] in ("sympy", "derive")
                          and sys.modules[m] is not None)
        print(hs.shape, J.shape, imported)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "(2, 1, 4) (1, 8, 8) []"


# ---------------------------------------------------------------------------------------
# numerics: dtypes and stability
# ---------------------------------------------------------------------------------------

def test_float32_stays_float32_and_agrees_with_float64(kern):
    """float32 in -> float32 out everywhere. Documented tolerance: with |preactivations| of
    order 1 and T = 3, float32 results agree with float64 to 1e-4 relative to the largest
    entry (float32 eps is 1.2e-7; the loops accumulate a few hundred roundings)."""
    rng, p, xs, s0 = _setup(kern, seed=4, scale=1.0)
    dhs = rng.standard_normal((T, B, H))
    f32 = lambda a: a.astype(numpy.float32)  # noqa: E731
    p32, xs32, s32 = {n: f32(v) for n, v in p.items()}, f32(xs), tuple(map(f32, s0))
    hs64, c64 = kern.forward(p, xs, s0)
    hs32, c32 = kern.forward(p32, xs32, s32)
    g64, d64 = kern.backward(p, c64, dhs)
    g32, d32 = kern.backward(p32, c32, f32(dhs))
    J64, J32 = kern.step_jacobian(p, xs[0], s0), kern.step_jacobian(p32, xs32[0], s32)
    st32 = kern.step(p32, xs32[0], s32)
    for a in [hs32, J32, *d32, *g32.values(), *st32]:
        assert a.dtype == numpy.float32
    pairs = [(hs32, hs64), (J32, J64)] + list(zip(d32, d64)) + [(g32[n], g64[n]) for n in p]
    for lo, hi in pairs:
        scale = max(1.0, float(numpy.abs(hi).max()))
        assert float(numpy.abs(lo - hi).max()) <= 1e-4 * scale


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_sigmoid_and_derivatives_raise_no_floating_point_errors(dtype):
    """The primitives copied into every module, and the from-output derivative forms the
    kernels use (sigma' = y (1 - y), tanh' = 1 - y^2), on |x| <= 1e4 under errstate(all=raise)."""
    ns = generate(derive.cell("lstm")).namespace()
    x = numpy.concatenate([numpy.linspace(-1e4, 1e4, 20001),
                           [0.0, 1e-3, -1e-3, 20.0, -20.0, 40.0, -40.0, 90.0, -90.0, 750.0, -750.0]])
    x = x.astype(dtype)
    with numpy.errstate(all="raise"):
        for fn in ("sigmoid", "sigmoid_prime", "tanh", "tanh_prime"):
            y = ns[fn](x)
            assert y.dtype == dtype and numpy.isfinite(y).all(), fn
        s = ns["sigmoid"](x)
        t = ns["tanh"](x)
        ds, dt_ = s * (1 - s), 1 - t * t
    assert ((s >= 0) & (s <= 1)).all() and ((ds >= 0) & (ds <= 0.25)).all()
    assert ((dt_ >= 0) & (dt_ <= 1)).all()
    assert s[x == 0][0] == 0.5 and ns["sigmoid"](numpy.array([-1e4], dtype))[0] >= 0


def test_kernel_with_huge_preactivations_stays_finite(kern):
    """Preactivations up to ~1e4: no overflow, invalid or divide-by-zero anywhere in forward,
    backward or the jacobian. (Underflow is allowed: a product of tiny gradient factors
    rounding toward zero is the correctly rounded result.)"""
    if kern.KERNEL.cell.name == "mlstm":
        pytest.skip("docs/kernels.md: mLSTM's clamp exp(-m_t) overflows where both gates' "
                    "preactivations are below -709 (its memory C_t ~ exp(-m_t) is out of range there)")
    rng, p, xs, s0 = _setup(kern, seed=5)
    xs = xs * 2e3
    with numpy.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        hs, cache = kern.forward(p, xs, s0)
        grads, ds0 = kern.backward(p, cache, rng.standard_normal(hs.shape))
        J = kern.step_jacobian(p, xs[0], s0)
    if kern.KERNEL.cell.name in ("lstm_noaf", "lstm_niaf"):
        return      # no output activation: values grow, but must still be finite numbers
    for a in [hs, J, *ds0, *grads.values()]:
        assert numpy.isfinite(a).all()


# ---------------------------------------------------------------------------------------
# strict input checking
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lstm():
    return derive.kernels("lstm")


def test_missing_extra_and_misshaped_parameters(lstm):
    p = lstm.init_params(D, H, rng=0)
    xs = numpy.zeros((T, B, D))
    q = dict(p)
    del q["W_hf"]
    with pytest.raises(ValueError, match=r"missing parameter 'W_hf'.*\(H, H\)"):
        lstm.forward(q, xs)
    with pytest.raises(ValueError, match=r"unexpected parameter 'W_zz'"):
        lstm.forward({**p, "W_zz": numpy.zeros((H, H))}, xs)
    with pytest.raises(ValueError, match=r"parameter 'W_hf': expected shape \(H, H\) = \(4, 4\), "
                                         r"got \(4, 5\)"):
        lstm.forward({**p, "W_hf": numpy.zeros((H, H + 1))}, xs)
    with pytest.raises(ValueError, match=r"parameter 'b_o': expected shape \(H,\) = \(4,\), got \(4, 1\)"):
        lstm.forward({**p, "b_o": numpy.zeros((H, 1))}, xs)


def test_bad_inputs_name_the_argument(lstm):
    p = lstm.init_params(D, H, rng=0)
    with pytest.raises(ValueError, match=r"xs: expected shape \(T, B, D=3\), got \(3, 2, 4\)"):
        lstm.forward(p, numpy.zeros((T, B, D + 1)))
    with pytest.raises(ValueError, match=r"state0\[1\] \(c\): expected shape \(B=2, H=4\), got \(3, 4\)"):
        lstm.forward(p, numpy.zeros((T, B, D)), (numpy.zeros((B, H)), numpy.zeros((B + 1, H))))
    with pytest.raises(ValueError, match=r"state must be a tuple of 2 arrays"):
        lstm.step(p, numpy.zeros((B, D)), numpy.zeros((B, H)))
    with pytest.raises(ValueError, match=r"xs: dtype must be float32 or float64, got int64"):
        lstm.forward(p, numpy.zeros((T, B, D), dtype=numpy.int64))
    with pytest.raises(ValueError, match=r"xs: dtype float32 does not match the parameters' dtype float64"):
        lstm.forward(p, numpy.zeros((T, B, D), dtype=numpy.float32))
    mixed = {**p, "b_i": p["b_i"].astype(numpy.float32)}
    with pytest.raises(ValueError, match=r"parameter 'b_i': dtype float32 does not match"):
        lstm.forward(mixed, numpy.zeros((T, B, D)))
    bad = {**p, "W_hc": p["W_hc"].copy()}
    bad["W_hc"][1, 2] = numpy.nan
    with pytest.raises(ValueError, match=r"parameter 'W_hc': contains non-finite"):
        lstm.forward(bad, numpy.zeros((T, B, D)))
    hs, cache = lstm.forward(p, numpy.zeros((T, B, D)))
    with pytest.raises(ValueError, match=r"dhs: expected shape \(T=3, B=2, H=4\), got \(3, 2, 5\)"):
        lstm.backward(p, cache, numpy.zeros((T, B, H + 1)))
    with pytest.raises(ValueError, match=r"cache: expected the cache returned by this cell's forward"):
        lstm.backward(p, {"cell": "gru"}, numpy.zeros((T, B, H)))
    with pytest.raises(ValueError, match=r"input_size must be a positive integer"):
        lstm.init_params(0, H)


def test_inputs_are_never_modified(kern):
    rng, p, xs, s0 = _setup(kern, seed=6)
    dhs = rng.standard_normal((T, B, H))
    dsT = states_like(kern, B, H, rng.standard_normal)
    copies = ({n: v.copy() for n, v in p.items()}, xs.copy(), [a.copy() for a in s0],
              dhs.copy(), [a.copy() for a in dsT])
    for a in [*p.values(), xs, *s0, dhs, *dsT]:
        a.flags.writeable = False           # an in-place write would raise
    hs, cache = kern.forward(p, xs, s0)
    kern.backward(p, cache, dhs, dsT)
    kern.step(p, xs[0], s0)
    kern.step_jacobian(p, xs[0], s0)
    assert all(numpy.array_equal(p[n], copies[0][n]) for n in p)
    assert numpy.array_equal(xs, copies[1]) and numpy.array_equal(dhs, copies[3])


def test_init_params_is_deterministic_and_typed(lstm):
    a = lstm.init_params(D, H, rng=7, dtype=numpy.float32)
    b = lstm.init_params(D, H, rng=numpy.random.default_rng(7), dtype=numpy.float32)
    assert list(a) == list(lstm.PARAMS)
    for n, spec in lstm.PARAMS.items():
        assert a[n].shape == tuple({"H": H, "D": D}[d] for d in spec)
        assert a[n].dtype == numpy.float32 and numpy.array_equal(a[n], b[n])
        assert numpy.abs(a[n]).max() <= 1 / numpy.sqrt(H)


def test_runtime_route_accepts_a_user_cell():
    spec = textwrap.dedent('''
        [cell]
        name = "tied"
        states = ["h"]
        [params]
        W = ["H", "H"]
        U = ["H", "D"]
        V = ["H", "H"]
        b = ["H"]
        [equations]
        a = "U @ x + W @ V @ h_prev - W @ h_prev + 2 * b"
        h = "tanh(a) * sigmoid(b) + 0.5 * h_prev"
    ''')
    from derive.spec.tables import parse_spec
    cell = parse_spec(spec, "tied.toml")
    k = derive.kernels(cell)
    rng = numpy.random.default_rng(0)
    p = k.init_params(D, H, rng=rng)
    xs = rng.standard_normal((T, B, D))
    s0 = (rng.standard_normal((B, H)),)
    dhs = rng.standard_normal((T, B, H))
    hs, cache = k.forward(p, xs, s0)
    grads, (dh0,) = k.backward(p, cache, dhs)
    for name in p:
        num = oracles.fd_gradient(lambda a: (k.forward({**p, name: a}, xs, s0)[0] * dhs).sum(),
                                  p[name], EPS)
        numpy.testing.assert_allclose(grads[name], num, atol=FD_TOL, rtol=0, err_msg=name)
    want = _explicit_step(cell, p, xs[0][0], [s0[0][0]])
    numpy.testing.assert_allclose(hs[0][0], want[0], rtol=1e-12, atol=1e-12)


def test_symbolic_primitive_derivatives_match_from_output_forms():
    """The identities the kernels rely on, proved symbolically: f'(u) = from_output(f(u))."""
    from derive.core.primitives import ALL_PRIMITIVES
    u, y = sympy.Symbol("u", real=True), sympy.Symbol("y")
    checked = 0
    for prim in ALL_PRIMITIVES:
        form = prim.from_output(y)
        if prim.derivative is None or form is None:
            continue
        lhs = prim.derivative.scalar(u)
        rhs = form.subs(y, prim.scalar(u))
        assert sympy.simplify((lhs - rhs).rewrite(sympy.exp)) == 0, prim.name
        checked += 1
    assert checked >= 2


def test_step_jacobian_reuses_dc_dh_prev_by_the_chain_rule(monkeypatch):
    """dh/dh_prev = diag(dh_t/dc_t) dc/dh_prev + (paths avoiding c_t): the LSTM kernel builds
    the h row from the c block (one product whose factor is the (B, H, H) block already in J),
    leaving one dense term (W_ho) of its four. Where dh_t/dc_t is not diagonal (a
    full-matrix peephole W_co c_t) the block is built directly. The values are checked
    against finite differences in test_step_jacobian_matches_finite_differences."""
    plan = generate(derive.cell("lstm")).plan
    assert plan.jac_via[("h", "h")][0] == "c"
    assert sum(1 for _, chain in plan.jac_terms[("h", "h")] if chain) == 1
    assert not generate(derive.cell("lstm_peephole_full")).plan.jac_via
    k, reused = derive.kernels("lstm"), []

    class Spy:
        def __getattr__(self, name):
            return getattr(numpy, name)

        def multiply(self, a, b, out=None, **kw):
            if out is not None and out.shape == (B, H, H) and numpy.shares_memory(b, out.base):
                reused.append(b.shape)
            return numpy.multiply(a, b, out=out, **kw)

    monkeypatch.setattr(k, "numpy", Spy())
    p = k.init_params(D, H, rng=0)
    k.step_jacobian(p, numpy.ones((B, D)), (numpy.zeros((B, H)), numpy.zeros((B, H))))
    assert reused == [(B, H, H)]


# user cells that reach the corners of in-place activation and of chain-rule Jacobian blocks
CORNER_CELLS = {
    # an activated gate that is the operand of a later product (a second stage)
    "gate_as_operand": ("""
        states = ["h"]
        [params]
        W_xa = ["H", "D"]
        W_ha = ["H", "H"]
        b_a = ["H"]
        W_gh = ["H", "H"]
        U = ["H", "H"]
        [equations]
        a = "W_xa @ x + W_ha @ h_prev + b_a"
        g = "tanh(a)"
        e = "W_gh @ g + U @ h_prev"
        h = "sigmoid(e)"
    """, {"g"}),
    # an extra term from another group's product; an unnamed activation argument
    "extra_from_other_group": ("""
        states = ["h", "c"]
        [params]
        W_xa = ["H", "D"]
        W_ha = ["H", "H"]
        R = ["H", "H"]
        b = ["H"]
        W_xc = ["H", "D"]
        W_hc = ["H", "H"]
        [equations]
        a = "W_xa @ x + W_ha @ h_prev + R @ c_prev + b"
        g = "sigmoid(a)"
        c = "g * c_prev + (1 - g) * tanh(W_xc @ x + W_hc @ h_prev)"
        h = "tanh(c) * g"
    """, {"g", "_e1"}),
    # an extra term computed in an earlier stage and used nowhere else
    "extra_from_earlier_stage": ("""
        states = ["h"]
        [params]
        W_r = ["H", "H"]
        W_z = ["H", "H"]
        W_a = ["H", "H"]
        [equations]
        r = "sigmoid(W_r @ h_prev)"
        z = "W_z @ h_prev"
        y = "tanh(W_a @ (r * h_prev) + z)"
        h = "y * r"
    """, {"r", "y"}),
    # an extra term computed before the loop, from the input only
    "extra_from_before_the_loop": ("""
        states = ["h"]
        [params]
        W_xq = ["H", "D"]
        W_h = ["H", "H"]
        b = ["H"]
        [equations]
        pp = "tanh(W_xq @ x) + b"
        q = "tanh(pp)"
        a = "W_h @ h_prev + pp"
        y = "tanh(a)"
        h = "y * q"
    """, {"y"}),
    # the input enters through a product of weights (W V x): dL/dx_t is computed per step
    "input_through_a_weight_product": ("""
        states = ["h"]
        [params]
        W = ["H", "H"]
        V = ["H", "D"]
        U = ["H", "H"]
        b = ["H"]
        [equations]
        a = "W @ V @ x + U @ h_prev + b"
        h = "tanh(a)"
    """, set()),
    # dh_t/dc_t is the constant identity: J_hh = 1 * J_ch
    "constant_partial": ("""
        states = ["h", "c"]
        [params]
        W_1 = ["H", "H"]
        W_2 = ["H", "H"]
        W_xh = ["H", "D"]
        [equations]
        c = "tanh(W_1 @ h_prev) * sigmoid(W_2 @ h_prev) + c_prev"
        h = "c + W_xh @ x"
    """, {"_e1", "_e3"}),
    # three states in a chain: J_uh could come from J_wh and J_hh from J_uh; only direct
    # blocks may serve as sources
    "chain_of_states": ("""
        states = ["h", "u", "w"]
        [params]
        W_1 = ["H", "H"]
        W_2 = ["H", "H"]
        W_3 = ["H", "H"]
        W_x = ["H", "D"]
        [equations]
        w = "tanh(W_1 @ h_prev + W_x @ x) * sigmoid(W_2 @ h_prev) + tanh(W_3 @ h_prev) + w_prev"
        u = "tanh(w) + u_prev"
        h = "tanh(u)"
    """, {"_e1", "_e3", "_e5"}),
    # D-sized values in the step: a product with D rows beside one with H rows (no gate-major
    # buffer: its blocks would differ in height), and a D-sized per-step operand
    "input_sized_values": ("""
        states = ["h"]
        [params]
        W = ["H", "D"]
        V = ["D", "H"]
        U = ["H", "H"]
        b = ["D"]
        [equations]
        h = "tanh(W @ (x + V @ h_prev + b) + U @ h_prev)"
    """, set()),
    # a D-sized value from the input alone (before the loop) gating the input of a product
    "input_sized_gate": ("""
        states = ["h"]
        [params]
        W = ["H", "D"]
        V = ["D", "D"]
        U = ["H", "H"]
        [equations]
        u = "sigmoid(V @ x)"
        a = "W @ (u * x) + U @ h_prev"
        h = "tanh(a)"
    """, set()),
    # products with coefficients, and one product used twice: the backward pass still finds
    # sum_k W_k^T v_k (so dL/dh_{t-1} is one product per step and dL/dxs one after the loop)
    "scaled_products": ("""
        states = ["h"]
        [params]
        W = ["H", "D"]
        U = ["H", "H"]
        V = ["H", "H"]
        [equations]
        a = "2 * W @ x - U @ h_prev"
        h = "tanh(a) * sigmoid(V @ h_prev - W @ x)"
    """, {"_e2"}),
    # negated sums, -(U h_prev) and -(h_prev + 1): printed with their parentheses
    "negated_sums": ("""
        states = ["h"]
        [params]
        U = ["H", "H"]
        W = ["H", "D"]
        v = ["H"]
        [equations]
        h = "tanh(-(U @ h_prev) + W @ x) + v * -(h_prev + 1)"
    """, set()),
    # the Jacobian reads the input itself (x gates a product of the previous state)
    "input_in_the_jacobian": ("""
        states = ["h"]
        [params]
        V = ["D", "H"]
        W = ["H", "D"]
        U = ["H", "H"]
        [equations]
        h = "tanh(W @ (x * sigmoid(V @ h_prev)) + U @ h_prev)"
    """, set()),
    # a named value x + V h_prev is both a product operand and part of dL/dx_t
    "input_sum_as_operand": ("""
        states = ["h"]
        [params]
        V = ["D", "H"]
        W = ["H", "D"]
        b = ["D"]
        [equations]
        xx = "x + b + V @ h_prev"
        h = "tanh(W @ xx)"
    """, set()),
    # a state that depends on the input only is still written every step
    "input_only_state": ("""
        states = ["h", "c"]
        [params]
        U = ["H", "H"]
        W = ["H", "D"]
        [equations]
        c = "tanh(U @ c_prev) + 0.5 * c_prev"
        h = "sigmoid(W @ x)"
    """, {"_e1"}),
}


def _corner_cell(name):
    from derive.spec.tables import parse_spec
    body, _ = CORNER_CELLS[name]
    return parse_spec(f'[cell]\nname = "{name}"\n' + textwrap.dedent(body), f"{name}.toml")


@pytest.mark.parametrize("name", sorted(CORNER_CELLS))
def test_corner_cells_against_finite_differences(name, tmp_path):
    """Each corner cell: which values are activated in place; backward and step_jacobian
    against central finite differences; the written module against the run-time route."""
    cell = _corner_cell(name)
    plan = generate(cell).plan
    activated = [s.activation.output.name for g in plan.groups for s in g.slots if s.activation]
    want = CORNER_CELLS[name][1]
    # the cell's own names exactly; values the planner names itself only by count
    assert {n for n in activated if not n.startswith("_")} == {n for n in want if not n.startswith("_")}
    assert len(activated) == len(want)
    for (s, r), (u, _) in plan.jac_via.items():
        assert (u, r) not in plan.jac_via, "a chain-rule block reads another chain-rule block"
    check_user_cell(cell, tmp_path)


def check_user_cell(cell, tmp_dir, scale=2.0):
    """A user cell's kernels against the independent oracles: one step against SymPy's
    entry-by-entry evaluation; backward (every parameter, initial state, dL/dxs) and
    step_jacobian against central finite differences; the same gradients with and without
    return_dxs; the written module bitwise equal to the run-time route."""
    k = derive.kernels(cell)
    _, p, xs, s0 = _setup(k, scale=scale / 2)
    new = k.step(p, xs[0], s0)
    for b in range(B):
        want = _explicit_step(cell, p, xs[0][b], [s[b] for s in s0])
        for got, w in zip(new, want):
            numpy.testing.assert_allclose(got[b], w, rtol=1e-12, atol=1e-12)
    hs, cache = k.forward(p, xs, s0)
    dhs = numpy.ones_like(hs)
    grads, d0 = k.backward(p, cache, dhs)
    grads_dx, d0_dx, _ = k.backward(p, cache, dhs, return_dxs=True)
    assert all(numpy.array_equal(grads[n], grads_dx[n]) for n in grads)
    assert all(numpy.array_equal(a, b) for a, b in zip(d0, d0_dx))
    test_backward_matches_finite_differences(k, scale)
    test_input_gradient_matches_finite_differences(k, scale)
    test_step_jacobian_matches_finite_differences(k, scale)
    path = Path(tmp_dir) / f"{cell.name}.py"
    path.write_text(module_source(generate(cell)))
    gen = _load(path, f"gen_{cell.name}")
    rng, p, xs, s0 = _setup(k, seed=4, scale=scale)
    hs, cache = k.forward(p, xs, s0)
    hs_gen, cache_gen = gen.forward(p, xs, s0)
    assert numpy.array_equal(hs_gen, hs)
    dhs = rng.standard_normal(hs.shape)
    want, got = k.backward(p, cache, dhs, return_dxs=True), gen.backward(p, cache_gen, dhs, return_dxs=True)
    assert all(numpy.array_equal(want[0][n], got[0][n]) for n in p)
    assert all(numpy.array_equal(a, b) for a, b in zip(want[1], got[1]))
    assert numpy.array_equal(want[2], got[2])
    assert numpy.array_equal(gen.step_jacobian(p, xs[0], s0), k.step_jacobian(p, xs[0], s0))


def test_chain_rule_blocks_in_the_corner_cells():
    """The constant-partial cell builds J_hh as 1 * J_ch; the three-state cell uses the
    chain rule somewhere but never from a block that is itself built that way."""
    assert generate(_corner_cell("constant_partial")).plan.jac_via[("h", "h")][0] == "c"
    assert generate(_corner_cell("chain_of_states")).plan.jac_via


def test_input_gradient_terms_only_when_asked_for():
    """A per-step dL/dx_t term (the input through W V) runs in a separate math function,
    called only with return_dxs=True; the default backward pass never computes it."""
    k = generate(_corner_cell("input_through_a_weight_product"))
    assert k.plan.dx_step and not k.plan.dx_groups
    from derive.codegen.ir import InputDelta
    (st,) = [st for st in k.plan.bwd if st.lean is not None]
    dx = {out.value for out in st.outs if isinstance(out, InputDelta)}
    assert dx and not dx & {d for d, _ in st.lean.assigns}
    assert len(st.lean.assigns) < len(st.assigns)
    # behaviour: without return_dxs the backward pass runs math that computes fewer values
    mod = derive.kernels(_corner_cell("input_through_a_weight_product"))
    called, want = {None: [], False: [], True: []}, None
    for name, m in k.math.items():
        def counting(*args, _f=m.function, _n=name):
            called[want].append(_n)
            return _f(*args)
        mod.__dict__[name] = counting
    _, p, xs, s0 = _setup(mod)
    hs, cache = mod.forward(p, xs, s0)
    for want in (False, True):
        mod.backward(p, cache, numpy.ones_like(hs), return_dxs=want)
    work = {w: sum(len(k.math[n].assigns) for n in called[w]) for w in (False, True)}
    assert work[False] < work[True]
    for name, m in k.math.items():
        mod.__dict__[name] = m.function


def test_scaled_products_use_the_stacked_products():
    """2 W x, -U h_prev and W x used twice: dL/dh_{t-1} is the group's one product per step
    and dL/dxs one product after the loop (no W^T v left in the per-step math)."""
    k = generate(_corner_cell("scaled_products"))
    assert not k.plan.dx_step and k.plan.dx_groups
    for st in k.plan.bwd:
        for _, e in st.assigns:
            assert not any(isinstance(a, sympy.Transpose) for a in sympy.preorder_traversal(e))


def test_single_input_only_state_runs_in_the_loop():
    """h = tanh(W x) has no recurrence: every h_t is still computed and stored."""
    from derive.spec.tables import parse_spec
    cell = parse_spec('[cell]\nname = "feedforward"\nstates = ["h"]\n[params]\n'
                      'W = ["H", "D"]\n[equations]\nh = "tanh(W @ x)"\n', "feedforward.toml")
    k = derive.kernels(cell)
    _, p, xs, s0 = _setup(k)
    hs, _ = k.forward(p, xs, s0)
    numpy.testing.assert_allclose(hs, numpy.tanh(xs @ p["W"].T), rtol=1e-14)


@pytest.mark.parametrize("body, words", [
    ('[params]\nM = ["H", "H"]\nb = ["H"]\nW = ["H", "D"]\n[equations]\n'
     'h = "tanh(W @ x + M @ b + h_prev)"\n', ["M b", "parameters only", "(b)"]),
    ('[equations]\nh = "tanh(h_prev)"\n', ["no parameter has a dimension H"]),
])
def test_cells_the_kernels_cannot_compile_say_why(body, words):
    from derive.codegen.plan import KernelPlanError
    from derive.spec.tables import parse_spec
    cell = parse_spec(f'[cell]\nname = "odd"\nstates = ["h"]\n{body}', "odd.toml")
    with pytest.raises(KernelPlanError) as err:
        derive.kernels(cell)
    assert "'odd'" in str(err.value) and all(w in str(err.value) for w in words)


def test_negated_sums_keep_their_parentheses():
    """-(1 - h h) and a * -(h + 1) as NumPy code (a wrong precedence gave -1 - h * h)."""
    from derive.core.algebra import add, hadamard, ones, scale
    from derive.printing.numpy_code import BatchNumPyPrinter
    from derive.core.symbols import H as Hs
    h, a = sympy.MatrixSymbol("h", Hs, 1), sympy.MatrixSymbol("a", Hs, 1)
    one = ones((Hs, 1))
    pr = BatchNumPyPrinter()
    assert pr.doprint(scale(-1, add([one, scale(-1, hadamard([h, h]))], (Hs, 1)))) == "-(1 - h * h)"
    assert pr.doprint(hadamard([a, scale(-1, add([h, one], (Hs, 1)))])) == "a * (-(h + 1))"


def test_cells_sharing_names_with_other_shapes_do_not_mix(tmp_path):
    """Two user cells in one process, the same parameter names with other shapes (P0 is
    D x H in the first, H x H in the second): the second's kernels use its own symbols (the
    algebra's factoring cache once handed back the first cell's)."""
    from derive.spec.tables import parse_spec
    for shapes in ('P0 = ["D", "H"]\nP1 = ["H", "D"]', 'P0 = ["H", "H"]\nP1 = ["H", "H"]'):
        cell = parse_spec(f'[cell]\nname = "same_names"\nstates = ["h"]\n[params]\n{shapes}\n'
                          '[equations]\nm0 = "P1 @ (P0 @ h_prev)"\nh = "tanh(h_prev + m0)"\n',
                          "same_names.toml")
        check_user_cell(cell, tmp_path)
