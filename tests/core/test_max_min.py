"""Elementwise max / min (derive/core/binary.py) and their tie convention.

* Away from ties the registered partial derivatives (``Maximum.local`` / ``Minimum.local``,
  written with the step Θ) equal SymPy's own ``diff`` of ``Max`` / ``Min`` (``Heaviside``),
  symbolically and at numeric points;
* at an exact tie (a = b) each argument receives half the cotangent (Θ(0) = 1/2): checked on
  the registered partials, on the generated sLSTM kernel (m_t = max(f~_t + m_{t-1}, i~_t))
  against a hand computation and against PyTorch autograd of a hand-typed sLSTM
  (``torch.maximum`` splits ties the same way), and on a tiny spec-defined cell with both
  max and min against a hand computation and PyTorch.

Exact ties in float64 are made with dyadic data (multiples of 1/8 and 1/4 with small
numerators): every sum of products is then exact, whatever order the kernel adds in.
"""
from __future__ import annotations

import numpy
import pytest
import sympy
from sympy import ImmutableMatrix

import derive
from derive.core.binary import BINARY_FUNCTIONS, Maximum, Minimum
from verify.explicit import evaluate


# -- the registered partials against SymPy's diff ------------------------------------------

@pytest.mark.parametrize("cls", [Maximum, Minimum])
def test_registered_partials_equal_sympy_diff(cls):
    """local(a, b) = [d f/d a, d f/d b] of f = Max / Min equals SymPy's ``diff`` of its own
    ``Max`` / ``Min`` (Heaviside of the difference) entry by entry, for 3-vectors of symbols;
    the full Jacobian of the explicit f(a, b) w.r.t. a and b is diagonal with those entries.
    Then numerically at 50 random points with a != b (no tie): both are 0 or 1, and equal."""
    n = 3
    a = ImmutableMatrix(n, 1, sympy.symbols(f"a0:{n}", real=True))
    b = ImmutableMatrix(n, 1, sympy.symbols(f"b0:{n}", real=True))
    f = evaluate(cls(a, b))
    assert list(f) == [cls.scalar(a[i], b[i]) for i in range(n)]
    assert cls.scalar(a[0], b[0]) == {Maximum: sympy.Max, Minimum: sympy.Min}[cls](a[0], b[0])
    da, db = (evaluate(d) for d in cls.local(a, b))
    for wrt, local in ((a, da), (b, db)):
        J = sympy.Matrix(f).jacobian(list(wrt))
        want = sympy.diag(*[sympy.diff(f[i], wrt[i]) for i in range(n)])
        assert J == want                                      # diagonal
        for i in range(n):
            assert sympy.simplify(local[i] - J[i, i]) == 0, (i, local[i], J[i, i])
    rng = numpy.random.default_rng(0)
    for _ in range(50):
        va, vb = rng.standard_normal(n), rng.standard_normal(n)
        point = {**dict(zip(a, va)), **dict(zip(b, vb))}
        for wrt, local in ((a, da), (b, db)):
            J = sympy.Matrix(f).jacobian(list(wrt))
            for i in range(n):
                got, want = local[i].xreplace(point), J[i, i].xreplace(point)
                assert got == want and got in (0, 1), (got, want)
    # spec-language names
    assert BINARY_FUNCTIONS == {"max": Maximum, "min": Minimum}


@pytest.mark.parametrize("cls", [Maximum, Minimum])
def test_registered_partials_split_a_tie_in_half(cls):
    """At a = b both partials are Θ(0) = 1/2: each argument gets half, and the halves add to
    the derivative of f(a, a) = a (that is 1). Also max + min = a + b, so their partials add
    up to 1 for each argument everywhere."""
    a = ImmutableMatrix([sympy.Symbol("a", real=True)])
    b = ImmutableMatrix([sympy.Symbol("b", real=True)])
    da, db = (evaluate(d)[0] for d in cls.local(a, b))
    tie = {b[0]: a[0]}
    assert da.xreplace(tie) == sympy.S.Half and db.xreplace(tie) == sympy.S.Half
    for d_max, d_min in zip(Maximum.local(a, b), Minimum.local(a, b)):
        s = evaluate(d_max)[0] + evaluate(d_min)[0]
        for v in (-2, sympy.Rational(1, 3), 0):
            assert s.xreplace({a[0]: v, b[0]: 0}) == 1


# -- the sLSTM kernel at an exact tie of its stabiliser ------------------------------------

B, D, H = 2, 3, 3


def _dyadic(rng, shape, denom):
    return rng.integers(-4, 5, size=shape) / denom


def _slstm_at_ties(seed=0):
    """Dyadic sLSTM parameters and one input, and a state whose m_prev makes
    f~ + m_prev - i~ exactly 0 (a tie) on most entries, +-1/2 on the others."""
    K = derive.kernels("slstm")
    rng = numpy.random.default_rng(seed)
    p = {k: _dyadic(rng, v.shape, 8) for k, v in K.init_params(D, H, rng=rng).items()}
    x = _dyadic(rng, (1, B, D), 4)
    h0 = _dyadic(rng, (B, H), 4)
    pre = {g: x[0] @ p[f"W_{g}"].T + h0 @ p[f"R_{g}"].T + p[f"b_{g}"] for g in "if"}
    offset = numpy.array([[0.0, 0.5, 0.0], [-0.5, 0.0, 0.0]])
    m0 = pre["i"] - pre["f"] + offset                     # exact: every term is dyadic
    assert (pre["f"] + m0 - pre["i"] == offset).all()
    c0 = rng.standard_normal((B, H))
    n0 = rng.uniform(0.5, 2.0, (B, H))
    s0 = {"c": c0, "n": n0, "m": m0, "h": h0}
    return K, p, x, tuple(s0[s] for s in K.STATE), offset


def test_slstm_kernel_splits_the_gradient_at_a_tie_by_hand():
    """With a cotangent on m_t only (Delta_c = Delta_n = Delta_h = 0), the backward step has
    delta m_t = Delta_m and passes it to the two arguments of max(f~ + m_{t-1}, i~) with the
    weights Θ(f~ + m_{t-1} - i~) and Θ(i~ - f~ - m_{t-1}) (i' and f' only reach c and n, whose
    cotangents vanish). Hand computation: delta m_{t-1} = delta f~ = Θ(offset) Delta_m,
    delta i~ = Θ(-offset) Delta_m, Θ(0) = 1/2; so the biases' gradients are the batch sums of
    those, W_i's is delta i~ᵀ x, delta x = W_iᵀ delta i~ + W_fᵀ delta f~ and
    delta h_{t-1} = R_iᵀ delta i~ + R_fᵀ delta f~. Checked with both
    the kernel's BPTT (T = 1) and step_vjp."""
    K, p, x, s0, offset = _slstm_at_ties()
    theta = numpy.where(offset > 0, 1.0, numpy.where(offset < 0, 0.0, 0.5))
    dm = numpy.random.default_rng(1).standard_normal((B, H))
    dstate = tuple(dm if s == "m" else numpy.zeros((B, H)) for s in K.STATE)
    _, cache = K.forward(p, x, s0)
    grads, dstate0, dxs = K.backward(p, cache, numpy.zeros((1, B, H)), dstate, return_dxs=True)
    d_f, d_i = theta * dm, (1 - theta) * dm
    im = K.STATE.index("m")
    numpy.testing.assert_allclose(dstate0[im], d_f, rtol=0, atol=1e-15)
    ih = K.STATE.index("h")
    numpy.testing.assert_allclose(dstate0[ih], d_i @ p["R_i"] + d_f @ p["R_f"], atol=1e-15)
    for s in ("c", "n"):
        numpy.testing.assert_allclose(dstate0[K.STATE.index(s)], 0 * dm, atol=1e-15, err_msg=s)
    numpy.testing.assert_allclose(grads["b_f"], d_f.sum(0), atol=1e-15)
    numpy.testing.assert_allclose(grads["b_i"], d_i.sum(0), atol=1e-15)
    numpy.testing.assert_allclose(grads["W_i"], d_i.T @ x[0], atol=1e-15)
    numpy.testing.assert_allclose(grads["W_f"], d_f.T @ x[0], atol=1e-15)
    numpy.testing.assert_allclose(grads["R_f"], d_f.T @ s0[K.STATE.index("h")], atol=1e-15)
    numpy.testing.assert_allclose(dxs[0], d_i @ p["W_i"] + d_f @ p["W_f"], atol=1e-15)
    for g in ("b_z", "b_o", "W_z", "W_o"):
        numpy.testing.assert_allclose(grads[g], 0 * grads[g], atol=1e-15, err_msg=g)
    vjp = K.step_vjp(p, x[0], s0, dstate)
    numpy.testing.assert_allclose(vjp[im], d_f, rtol=0, atol=1e-15)


def _torch_slstm(torch, tp, x, st):
    """Beck et al. 2024, eqs. (8)-(17) with the exponential forget gate and the stabiliser,
    typed from the paper: one step per input, the states after the last step."""
    c, n, m, h = st
    for xt in x:
        pre = {g: xt @ tp[f"W_{g}"].T + h @ tp[f"R_{g}"].T + tp[f"b_{g}"] for g in "zifo"}
        m_new = torch.maximum(pre["f"] + m, pre["i"])
        i_s = torch.exp(pre["i"] - m_new)
        f_s = torch.exp(pre["f"] + m - m_new)
        c = f_s * c + i_s * torch.tanh(pre["z"])
        n = f_s * n + i_s
        h = torch.sigmoid(pre["o"]) * c / n
        m = m_new
    return c, n, m, h


def test_torch_maximum_splits_a_tie_in_half():
    """The convention compared against: d torch.maximum(a, b) at a = b is 1/2 to each (so is
    torch.minimum)."""
    torch = pytest.importorskip("torch")
    for f in (torch.maximum, torch.minimum):
        a = torch.tensor([1.5, 2.0, -1.0], dtype=torch.float64, requires_grad=True)
        b = torch.tensor([1.5, 1.0, 0.0], dtype=torch.float64, requires_grad=True)
        f(a, b).sum().backward()
        big = [0.5, 1.0, 0.0] if f is torch.maximum else [0.5, 0.0, 1.0]
        assert a.grad.tolist() == big and b.grad.tolist() == [1 - v for v in big]


def test_slstm_kernel_at_a_tie_equals_torch_autograd():
    """At the tie data (ties on 4 of 6 entries of m), with random cotangents on h (douts) and
    on every final state: every parameter gradient, every initial state's gradient and delta x
    of the kernel's BPTT (T = 1) equal torch autograd of the hand-typed sLSTM (float64,
    1e-12)."""
    torch = pytest.importorskip("torch")
    K, p, x, s0, _ = _slstm_at_ties(2)
    rng = numpy.random.default_rng(3)
    douts = rng.standard_normal((1, B, H))
    dstate = tuple(rng.standard_normal((B, H)) for _ in K.STATE)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    tx = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(a, requires_grad=True) for a in s0]
    final = dict(zip("cnmh", _torch_slstm(torch, tp, tx, st)))
    loss = (final["h"] * torch.tensor(douts[0])).sum()
    loss = loss + sum((final[s] * torch.tensor(d)).sum() for s, d in zip(K.STATE, dstate))
    loss.backward()
    hs, cache = K.forward(p, x, s0)
    numpy.testing.assert_allclose(hs[0], final["h"].detach().numpy(), rtol=1e-13, atol=1e-14)
    grads, dstate0, dxs = K.backward(p, cache, douts, dstate, return_dxs=True)
    for k in p:
        numpy.testing.assert_allclose(grads[k], tp[k].grad.numpy(), rtol=1e-12, atol=1e-13,
                                      err_msg=k)
    for i, s in enumerate(K.STATE):
        numpy.testing.assert_allclose(dstate0[i], st["cnmh".index(s)].grad.numpy(),
                                      rtol=1e-12, atol=1e-13, err_msg=s)
    numpy.testing.assert_allclose(dxs, tx.grad.numpy(), rtol=1e-12, atol=1e-13)


# -- a tiny spec cell with both max and min ------------------------------------------------

TIE_CELL = """
[cell]
name = "max_min_tie"
states = ["h"]
[params]
W = ["H", "D"]
R = ["H", "H"]
[equations]
u = "W @ x"
r = "R @ h_prev"
h = "tanh(max(u, r)) + sigmoid(min(u, r))"
"""


def test_spec_cell_with_max_and_min_splits_ties(tmp_path):
    """h = tanh(max(u, r)) + sigmoid(min(u, r)), u = W x, r = R h_{t-1}, at dyadic data with
    u = r exactly on some entries: by hand, delta u = Delta (tanh'(max) Θ(u - r) +
    sigmoid'(min) Θ(r - u)), delta r likewise with the steps swapped (Θ(0) = 1/2, so at a tie
    both get half of tanh'(u) + sigmoid'(u)); delta h_prev = Rᵀ delta r, delta x = Wᵀ delta u,
    dW = delta uᵀ x, dR = delta rᵀ h_prev. The kernel's step_vjp and BPTT (T = 1) against that,
    and against torch autograd of the same equations with torch.maximum / torch.minimum."""
    path = tmp_path / "tie.toml"
    path.write_text(TIE_CELL, encoding="utf-8")
    K = derive.kernels(derive.cell_from_spec(path))
    rng = numpy.random.default_rng(4)
    p = {"W": _dyadic(rng, (H, D), 8), "R": _dyadic(rng, (H, H), 8)}
    x = _dyadic(rng, (1, B, D), 4)
    h0 = _dyadic(rng, (B, H), 4)
    p["W"][0] = 0.0                    # make row 0 tie: u_0 = r_0 for both batch rows
    p["R"][0] = 0.0
    u, r = x[0] @ p["W"].T, h0 @ p["R"].T
    ties = u == r
    assert ties[:, 0].all() and (~ties).any()
    th = numpy.where(u > r, 1.0, numpy.where(u < r, 0.0, 0.5))
    hi, lo = numpy.maximum(u, r), numpy.minimum(u, r)
    sig = 1 / (1 + numpy.exp(-lo))
    dtanh, dsig = 1 - numpy.tanh(hi) ** 2, sig * (1 - sig)
    delta = numpy.random.default_rng(5).standard_normal((B, H))
    du = delta * (dtanh * th + dsig * (1 - th))
    dr = delta * (dtanh * (1 - th) + dsig * th)
    tol = dict(rtol=1e-13, atol=1e-15)
    numpy.testing.assert_allclose(K.step_vjp(p, x[0], (h0,), (delta,))[0], dr @ p["R"], **tol)
    _, cache = K.forward(p, x, (h0,))
    grads, ds0, dxs = K.backward(p, cache, delta[None], return_dxs=True)
    numpy.testing.assert_allclose(ds0[0], dr @ p["R"], **tol)
    numpy.testing.assert_allclose(dxs[0], du @ p["W"], **tol)
    numpy.testing.assert_allclose(grads["W"], du.T @ x[0], **tol)
    numpy.testing.assert_allclose(grads["R"], dr.T @ h0, **tol)
    torch = pytest.importorskip("torch")
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    tx, th0 = torch.tensor(x[0], requires_grad=True), torch.tensor(h0, requires_grad=True)
    tu, tr = tx @ tp["W"].T, th0 @ tp["R"].T
    h = torch.tanh(torch.maximum(tu, tr)) + torch.sigmoid(torch.minimum(tu, tr))
    (h * torch.tensor(delta)).sum().backward()
    for k in p:
        numpy.testing.assert_allclose(grads[k], tp[k].grad.numpy(), **tol, err_msg=k)
    numpy.testing.assert_allclose(ds0[0], th0.grad.numpy(), **tol)
    numpy.testing.assert_allclose(dxs[0], tx.grad.numpy(), **tol)
