"""mLSTM and Gated DeltaNet (issue 16): the matrix-state cells, derived from their specs,
against independent oracles.

* SymPy: every step-Jacobian block and every backward output, expanded at H = D = 2, equals
  SymPy's ``Matrix.jacobian`` / scalar ``diff`` of the explicit forward step (verify.explicit).
  The engine's Kronecker factors (``I ⊗ w`` ...) are expanded from their definition
  (``sympy.kronecker_product``, verify.matrix_claims.explicit), not through the engine;
* PyTorch autograd of implementations typed from the papers (tests/kernels/refs_matrix_state.py,
  a real (B, H, H) memory): forward states to 1e-10, every parameter gradient and the initial
  state's gradient to 1e-9 (float64, T = 6, B = 2, D = 3, H = 4);
* central differences (verify.oracles) of the kernels' forward for BPTT, of ``step`` for
  ``step_jvp`` / ``step_vjp``.

Conventions matched (paper = Beck et al. 2024, arXiv:2405.04517; code = NX-AI/xlstm,
``xlstm/blocks/mlstm/backends.py``, ``recurrent_step_stabilized_simple`` /
``parallel_stabilized_simple``):

* memory orientation: paper eq. (19) ``C_t = f C_{t-1} + i v_t k_t^T`` read out as ``C_t q_t``
  (eq. 21); our spec and kernels follow the paper, ``C[b, i, j] = sum v_i k_j``. The code stores
  the transpose, ``k v^T``, and reads ``q^T C``: the same h, the transposed memory (pinned by
  ``test_official_code_layout_is_the_transposed_memory``);
* forget gate: paper eq. (26) allows ``sigma(f~)`` or ``exp(f~)``; the spec takes ``exp`` (the
  stabiliser of the appendix, ``f' = exp(f~ + m_{t-1} - m_t)``). The code uses the sigmoid in
  log space, ``log f = logsigmoid(f~)``, ``m_t = max(log f + m_{t-1}, i~)``: a different cell;
* normaliser: paper eq. (21) ``max(|n^T q|, 1)``, stabilised (appendix) ``max(|n^T q|,
  exp(-m_t))``; the spec and the references use the stabilised form. The code adds
  ``eps = 1e-6`` to that denominator; we do not;
* key scale: the paper's eq. (23) writes ``k = W_k x / sqrt(d) + b_k`` (bias unscaled); the code
  divides the whole key (after its projection) by ``sqrt(DH)`` inside the backend, and so does
  the spec, ``k = (W_k x + b_k) / sqrt(H)``; the references follow the spec/code.
  (``chunkwise_simple`` scales q instead: the same h, a normaliser n larger by sqrt(DH).)
* Gated DeltaNet (Yang, Kautz, Hatamizadeh 2024, eq. for the gated delta rule):
  ``S_t = alpha_t S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T``, ``o_t = S_t q_t``, the
  reference with an explicit identity matrix, the spec expanded as ``alpha (S - beta (S k) k^T)``.
"""

import functools

import numpy
import pytest
import sympy
from sympy import ImmutableMatrix

import derive
from conftest import sympy_budget
from verify import oracles
from verify.explicit import entries_equal, expand
from verify.matrix_claims import explicit

import refs_matrix_state as R

T, B, D, H = 6, 2, 3, 4
CELLS = ["mlstm", "gated_deltanet"]
REF = {"mlstm": R.torch_mlstm, "gated_deltanet": R.torch_gated_deltanet}


# ---------------------------------------------------------------------------------------
# SymPy: explicit expansion at n = 2
# ---------------------------------------------------------------------------------------

def test_kronecker_factors_match_the_vectorisation():
    """The Kronecker expansion (verify.matrix_claims) is the row-major vec: (I ⊗ w) u = vec(u wᵀ), (I ⊗ wᵀ) vec(G) = G w,
    (u ⊗ I) w = vec(u wᵀ), (uᵀ ⊗ I) vec(G) = Gᵀ u, checked on numbers."""
    rng = numpy.random.default_rng(0)
    u, w, G = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal((3, 3))
    I = numpy.eye(3)
    numpy.testing.assert_allclose(numpy.kron(I, w[:, None]) @ u, numpy.outer(u, w).ravel())
    numpy.testing.assert_allclose(numpy.kron(I, w[None]) @ G.ravel(), G @ w)
    numpy.testing.assert_allclose(numpy.kron(u[:, None], I) @ w, numpy.outer(u, w).ravel())
    numpy.testing.assert_allclose(numpy.kron(u[None], I) @ G.ravel(), G.T @ u)


def _blocks(name):
    c = derive.cell(name)
    return [(name, of, wrt) for of in c.states for wrt in c.states]


@pytest.mark.parametrize("name,of,wrt", _blocks("mlstm") + _blocks("gated_deltanet"))
def test_step_jacobian_block_equals_sympy_jacobian(name, of, wrt):
    """d s_t / d s'_{t-1}, explicit at H = D = 2, entry by entry (the matrix states as their
    4-vectors). The slowest, mlstm (h, m), takes about 40 s."""
    ex = expand(derive.cell(name), 2)
    bad = entries_equal(explicit(ex, derive.cell(name).jacobian(of, wrt)),
                        ex.oracle_jacobian(of, wrt))
    assert not bad, bad[:1]


#: Backward outputs whose SymPy comparison at n = 2 is slow (seconds, measured on the shared
#: 2-core machine, after the 4 s expansion of mlstm's backward assignments): left out unless the
#: budget allows them (conftest.sympy_budget; .ci/run allows 120 s, all but gated_deltanet x). mlstm delta_w_f (14 s) and delta_m_prev (8 s) run by default; with
#: w_i the three would take over 40 s. The gated_deltanet delta_x entries do not finish in
#: 12 minutes: the two norms' sqrt(s) and s^(-3/2) are independent indeterminates for the
#: rational identity, so the comparison falls through to simplify. Each is compared with the same
#: oracle at 60 digits instead (test_slow_backward_outputs_agree_with_sympy_to_60_digits), and
#: covered by torch autograd and central differences below.
SLOW_SYMPY = {("mlstm", "x"): 66, ("mlstm", "w_i"): 21, ("gated_deltanet", "x"): 720}


def _wrts(name):
    c = derive.cell(name)
    every = ([(name, s, f"{s}_prev") for s in c.states] + [(name, "x", "x")]
             + [(name, p, p) for p in c.params])
    budget = sympy_budget()
    return [w for w in every if SLOW_SYMPY.get((w[0], w[1]), 0) <= budget]


@pytest.mark.parametrize("name,wrt,key", _wrts("mlstm") + _wrts("gated_deltanet"))
def test_backward_output_equals_sympy_gradient(name, wrt, key):
    """Each output of the backward step equals SymPy's gradient of L = sum_s Delta_s . s_t at
    H = D = 2 (delta C_prev as a 4-vector). Measured (s, under pytest, 65 s in all): mlstm w_f 15,
    m_prev 9, b_i 9, b_f 8, C_prev 6 (with the shared expansion of the backward assignments),
    W_q 4, the others < 3; gated_deltanet w_alpha, W_k 2, the others < 2."""
    ex = expand(derive.cell(name), 2)
    want = ex.oracle_vjp(wrt)
    have = _derived(name, key)
    assert have is not None or all(v == 0 for v in want), key
    have = sympy.zeros(*want.shape) if have is None else have
    assert not entries_equal(ImmutableMatrix(have), want), key


#: Outputs no budget compares symbolically (over .ci/run's 120 s); the mlstm ones run there.
NUMERIC_ONLY = [w for w, seconds in SLOW_SYMPY.items() if seconds > 120]


@pytest.mark.parametrize("name,wrt", NUMERIC_ONLY)
def test_slow_backward_outputs_agree_with_sympy_to_60_digits(name, wrt):
    """The outputs whose symbolic comparison never finishes (NUMERIC_ONLY) against the same SymPy
    oracle (``oracle_vjp``: ``Matrix.jacobian`` of the explicit step, H = D = 2), compared as
    numbers: both sides evaluated at 60 significant digits (mpmath) at five random rational
    points of every symbol (weights, x, previous states, incoming adjoints in [-0.9, 0.9]).
    Two different analytic expressions agree to 1e-50 at random points only by accident;
    float64 could not tell a wrong term of size 1e-17. About 5 s."""
    import mpmath
    import random
    ex = expand(derive.cell(name), 2)
    want, have = ex.oracle_vjp(wrt), _derived(name, wrt)
    symbols = sorted(want.free_symbols | have.free_symbols, key=str)
    f_want = sympy.lambdify(symbols, list(want), "mpmath")
    f_have = sympy.lambdify(symbols, list(ImmutableMatrix(have)), "mpmath")
    rng = random.Random(f"{name}.{wrt}")
    with mpmath.workdps(60):
        for _ in range(5):
            point = [mpmath.mpf(rng.randint(-900, 900)) / 1000 for _ in symbols]
            for w, h in zip(f_want(*point), f_have(*point)):
                assert abs(w - h) <= mpmath.mpf(10) ** -50 * max(abs(w), 1), (wrt, w, h)


@functools.lru_cache(maxsize=None)
def _derived(name, key):
    """One output of the cell's backward step at n = 2, explicit (None when the engine has no
    gradient for it): ``Explicit.derived_backward`` for that key alone (which expands every
    output on each call); the backward assignments are expanded once (``adjoint_values``)."""
    ex = expand(derive.cell(name), 2)
    bw = ex.cell.backward()
    prev = {ex.cell.prev[s].name: e for s, e in bw.prev_states.items()}
    expr = prev.get(key, bw.input if key == "x" else bw.params.get(key))
    return None if expr is None else ex.explicit(expr, extra=ex.adjoint_values())


# ---------------------------------------------------------------------------------------
# the kernels against PyTorch autograd of the papers' equations
# ---------------------------------------------------------------------------------------

def _setup(name, seed):
    K = derive.kernels(derive.cell(name))
    rng = numpy.random.default_rng(seed)
    p = K.init_params(D, H, rng=rng)
    xs = rng.standard_normal((T, B, D))
    return K, p, xs, R.random_state(name, B, H, rng)


def _steps(K, p, xs, s0):
    """The state after each step, by K.step."""
    out, s = [], tuple(s0)
    for x in xs:
        s = tuple(K.step(p, x, s))
        out.append(s)
    return out


def test_kernel_api_and_shapes():
    for name, state, out in (("mlstm", ("C", "n", "m", "h"), "h"), ("gated_deltanet", ("S", "o"), "o")):
        K, p, xs, s0 = _setup(name, 0)
        assert tuple(K.STATE) == state
        shapes = {"C": (B, H, H), "S": (B, H, H), "m": (B, 1)}
        for s, a in zip(state, K.step(p, xs[0], s0)):
            assert a.shape == shapes.get(s, (B, H)), s
        hs, _ = K.forward(p, xs, s0)
        assert hs.shape == (T, B, H)
        assert {n: a.shape for n, a in p.items() if a.shape == (1,)}


@pytest.mark.parametrize("name", CELLS)
def test_forward_states_equal_torch(name):
    torch = pytest.importorskip("torch")
    K, p, xs, s0 = _setup(name, 1)
    outs, states = REF[name](torch, {n: torch.tensor(a) for n, a in p.items()},
                             torch.tensor(xs), [torch.tensor(a) for a in s0])
    got = _steps(K, p, xs, s0)
    for t in range(T):
        for i, s in enumerate(K.STATE):
            numpy.testing.assert_allclose(got[t][i], states[t][i].numpy(), rtol=1e-10, atol=1e-10,
                                          err_msg=f"{s} at t={t}")
    hs, _ = K.forward(p, xs, s0)
    numpy.testing.assert_allclose(hs, outs.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", CELLS)
def test_backward_equals_torch_autograd(name):
    """L = sum(douts * outputs) + sum_s <dstate_s, s_T>: every parameter gradient and dstate0."""
    torch = pytest.importorskip("torch")
    K, p, xs, s0 = _setup(name, 2)
    rng = numpy.random.default_rng(3)
    douts = rng.standard_normal((T, B, H))
    dstate = R.random_state(name, B, H, rng)
    _, tg, ts0, _ = R.torch_grads(torch, REF[name], p, xs, s0, douts, dstate)
    _, cache = K.forward(p, xs, s0)
    grads, dstate0 = K.backward(p, cache, douts, dstate)
    assert set(grads) == set(p)
    for n in p:
        numpy.testing.assert_allclose(grads[n], tg[n], rtol=1e-9, atol=1e-9, err_msg=n)
    for i, s in enumerate(K.STATE):
        numpy.testing.assert_allclose(dstate0[i], ts0[i], rtol=1e-9, atol=1e-9, err_msg=s)


def test_the_torch_run_exercises_both_branches_of_every_max():
    """The mLSTM data of the torch comparison takes both branches of m_t = max(f~ + m, i~) and
    of the normaliser max(|nᵀq|, exp(-m)), so both subgradients are compared."""
    for seed in (1, 2):
        rng = numpy.random.default_rng(seed)
        p = derive.kernels(derive.cell("mlstm")).init_params(D, H, rng=rng)
        xs = rng.standard_normal((T, B, D))
        s0 = R.random_state("mlstm", B, H, rng)
        _, c = R.numpy_mlstm(p, xs, s0)
        stab = c["ft"] + c["m"][:-1] > c["it"]
        clamp = numpy.abs(c["z"]) < numpy.exp(-c["m"][1:])
        assert stab.any() and (~stab).any(), seed
        assert clamp.any() and (~clamp).any(), seed


def test_official_code_layout_is_the_transposed_memory():
    """NX-AI/xlstm stores C = k vᵀ and reads qᵀC: the same h_t, the memory transposed."""
    torch = pytest.importorskip("torch")
    rng = numpy.random.default_rng(4)
    p = {n: torch.tensor(a) for n, a in R.random_params(R.MLSTM_SHAPES, D, H, rng).items()}
    xs = torch.tensor(rng.standard_normal((T, B, D)))
    s0 = [torch.tensor(a) for a in R.random_state("mlstm", B, H, rng)]
    h1, st1 = R.torch_mlstm(torch, p, xs, s0)
    s0c = [s0[0].transpose(1, 2)] + s0[1:]
    h2, st2 = R.torch_mlstm(torch, p, xs, s0c, layout="code")
    numpy.testing.assert_allclose(h1.numpy(), h2.numpy(), rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(st1[-1][0].numpy(), st2[-1][0].transpose(1, 2).numpy(), rtol=1e-12)
    assert not numpy.allclose(st1[-1][0].numpy(), st2[-1][0].numpy())


def test_numpy_reference_equals_torch_autograd():
    """The benchmark's hand-written NumPy mLSTM (forward and full BPTT) is right."""
    torch = pytest.importorskip("torch")
    rng = numpy.random.default_rng(5)
    p = R.random_params(R.MLSTM_SHAPES, D, H, rng)
    xs, s0 = rng.standard_normal((T, B, D)), R.random_state("mlstm", B, H, rng)
    douts = rng.standard_normal((T, B, H))
    states, tg, ts0, _ = R.torch_grads(torch, R.torch_mlstm, p, xs, s0, douts)
    hs, cache = R.numpy_mlstm(p, xs, s0)
    numpy.testing.assert_allclose(hs, numpy.stack([s[3] for s in states]), rtol=1e-12, atol=1e-12)
    grads, ds0 = R.numpy_mlstm_backward(p, cache, douts)
    for n in p:
        numpy.testing.assert_allclose(grads[n], tg[n], rtol=1e-10, atol=1e-11, err_msg=n)
    for a, b in zip(ds0, ts0):
        numpy.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-11)


def test_kernel_equals_the_numpy_reference():
    """The generated mLSTM kernel and the benchmark's baseline do the same work."""
    K, p, xs, s0 = _setup("mlstm", 6)
    douts = numpy.random.default_rng(7).standard_normal((T, B, H))
    hs, cache = K.forward(p, xs, s0)
    grads, ds0 = K.backward(p, cache, douts)
    hs2, c2 = R.numpy_mlstm(p, xs, s0)
    grads2, ds2 = R.numpy_mlstm_backward(p, c2, douts)
    numpy.testing.assert_allclose(hs, hs2, rtol=1e-10, atol=1e-12)
    for n in p:
        numpy.testing.assert_allclose(grads[n], grads2[n], rtol=1e-9, atol=1e-10, err_msg=n)
    for a, b in zip(ds0, ds2):
        numpy.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


# ---------------------------------------------------------------------------------------
# central differences
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CELLS)
def test_backward_against_finite_differences(name):
    """BPTT over T = 6 for L = sum(douts * outputs) + sum_s <dstate_s, s_T>, every parameter
    and every initial state, against central differences of the kernel's forward."""
    K, p, xs, s0 = _setup(name, 8)
    rng = numpy.random.default_rng(9)
    douts = rng.standard_normal((T, B, H))
    dstate = R.random_state(name, B, H, rng)
    _, cache = K.forward(p, xs, s0)
    grads, dstate0 = K.backward(p, cache, douts, dstate)

    def loss(params=p, s=s0):
        out, _ = K.forward(params, xs, s)
        final = _steps(K, params, xs, s)[-1]
        return float((out * douts).sum() + sum((a * b).sum() for a, b in zip(final, dstate)))

    for n in p:
        fd = oracles.fd_gradient(lambda a: loss(params={**p, n: a}), p[n])
        numpy.testing.assert_allclose(grads[n], fd, atol=1e-6, rtol=1e-6, err_msg=n)
    for i, s in enumerate(K.STATE):
        fd = oracles.fd_gradient(lambda a: loss(s=s0[:i] + (a,) + s0[i + 1:]), s0[i])
        numpy.testing.assert_allclose(dstate0[i], fd, atol=1e-6, rtol=1e-6, err_msg=s)


def _flat(states):
    return numpy.concatenate([numpy.reshape(a, -1) for a in states])


@pytest.mark.parametrize("name", CELLS)
def test_step_jvp_against_finite_differences(name):
    """step_jvp(v) = d/de step(s + e v) at e = 0, by central differences in e."""
    K, p, xs, s0 = _setup(name, 10)
    tangent = R.random_state(name, B, H, numpy.random.default_rng(11))
    got = K.step_jvp(p, xs[0], s0, tangent)

    def along(e):
        return _flat(K.step(p, xs[0], tuple(s + e[0] * v for s, v in zip(s0, tangent))))
    fd = oracles.fd_jacobian(along, numpy.zeros(1))[:, 0]
    numpy.testing.assert_allclose(_flat(got), fd, atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize("name", CELLS)
def test_step_vjp_against_finite_differences(name):
    """step_vjp(u)_r = d <u, step(s)> / d r_{t-1} for every previous state r."""
    K, p, xs, s0 = _setup(name, 12)
    cot = R.random_state(name, B, H, numpy.random.default_rng(13))
    got = K.step_vjp(p, xs[0], s0, cot)
    assert len(got) == len(s0)

    def inner(s):
        return sum(float((a * u).sum()) for a, u in zip(K.step(p, xs[0], s), cot))
    for i, s in enumerate(K.STATE):
        fd = oracles.fd_gradient(lambda a: inner(s0[:i] + (a,) + s0[i + 1:]), s0[i])
        numpy.testing.assert_allclose(got[i], fd, atol=1e-7, rtol=1e-7, err_msg=s)


def test_benchmark_quick_smoke():
    """benchmarks/bench_mlstm.py --quick runs and its baseline agrees with the kernel."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_mlstm.py"
    spec = importlib.util.spec_from_file_location("bench_mlstm", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.main(["--quick"])
    errs = {dt: err for cell, dt, _, _, err in rows if cell == "mlstm"}
    assert errs["float64"] < 1e-9 and errs["float32"] < 1e-3, errs
