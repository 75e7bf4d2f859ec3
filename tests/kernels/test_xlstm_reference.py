"""The generated mLSTM kernel against NX-AI's own recurrent mLSTM step, the pure-PyTorch
``mlstm_recurrent_step__native_fw`` of the ``mlstm-kernels`` package (2.0.6, the kernels of
the xLSTM authors; the ``oracle`` extra installs it; skipped without it).

The two are the same cell once four conventions are mapped, which this test pins (float64,
forward states, outputs and every gradient, by autograd through the package's step):

* memory orientation: the package stores ``C = k v^T`` and reads ``q^T C``; the spec (paper
  eq. 19) ``C = v k^T`` read as ``C q``: ``C_ours = C_pkg^T / sqrt(H)``;
* key scale: the package scales q by ``1/sqrt(DHQK)`` inside the step, the spec scales k:
  the same h, ``n_ours = n_pkg / sqrt(H)`` (and C as above);
* forget gate: the package takes ``log f = logsigmoid(f~)`` (a sigmoid forget gate in log
  space); the spec's exponential gate ``f' = exp(f~ + m_{t-1} - m_t)`` is that gate with
  ``f~_ours = logsigmoid(f~_pkg)``, i.e. ``f~_pkg = f~_ours - log(-expm1(f~_ours))``, defined
  for ``f~_ours < 0`` (the test draws such gates and checks they are);
* the package adds ``eps = 1e-6`` to the denominator ``max(|n^T q|, exp(-m))``; the test
  passes ``eps=0`` (the spec has none); the output gate ``o`` is applied outside its step.
"""
from __future__ import annotations

import math

import numpy
import pytest

import derive

torch = pytest.importorskip("torch")
native = pytest.importorskip("mlstm_kernels.torch.recurrent.native_step")

T, B, D, H = 7, 3, 4, 5


def _case(seed=0):
    K = derive.kernels(derive.cell("mlstm"))
    rng = numpy.random.default_rng(seed)
    p = K.init_params(D, H, rng=rng)
    p["w_f"] = 0.2 * p["w_f"]
    p["b_f"] = numpy.full_like(p["b_f"], -2.0)           # f~ = w_f^T x + b_f < 0
    xs = rng.standard_normal((T, B, D))
    C0 = 0.5 * rng.standard_normal((B, H, H))
    n0 = 0.5 * rng.standard_normal((B, H))
    m0 = 0.3 * rng.standard_normal((B, 1))
    h0 = numpy.zeros((B, H))
    return K, p, xs, (C0, n0, m0, h0)


def _package_run(p, xs, s0):
    """hs (T, B, H) and the final states in the spec's convention, from the package's step;
    p and s0 are torch tensors (autograd flows back to them)."""
    C, n, m = s0[0], s0[1], s0[2]
    r = math.sqrt(H)
    Cp = (r * C.transpose(1, 2))[:, None]                  # (B, 1, H, H): k v^T, unscaled k
    npk = (r * n)[:, None]
    mp = m[:, None]
    hs = []
    for x in xs:
        q = x @ p["W_q"].T + p["b_q"]
        k = x @ p["W_k"].T + p["b_k"]                      # the package scales q, not k
        v = x @ p["W_v"].T + p["b_v"]
        i_t = x @ p["w_i"][:, None] + p["b_i"]
        f_t = x @ p["w_f"][:, None] + p["b_f"]
        assert bool((f_t < 0).all()), "the sigmoid-gate map needs f~ < 0"
        f_pkg = f_t - torch.log(-torch.expm1(f_t))         # logsigmoid(f_pkg) = f_t
        o = torch.sigmoid(x @ p["W_o"].T + p["b_o"])
        h, (Cp, npk, mp) = native.mlstm_recurrent_step__native_fw(
            Cp, npk, mp, q[:, None], k[:, None], v[:, None], i_t[:, None], f_pkg[:, None],
            eps=0.0, dtype_state=torch.float64)
        hs.append(o * h[:, 0])
    states = (Cp[:, 0].transpose(1, 2) / r, npk[:, 0] / r, mp[:, 0])
    return torch.stack(hs), states


def test_forward_equals_the_package_step():
    K, p, xs, s0 = _case()
    hs, cache = K.forward(p, xs, s0)
    tp = {k: torch.tensor(v) for k, v in p.items()}
    want, states = _package_run(tp, torch.tensor(xs), [torch.tensor(a) for a in s0])
    numpy.testing.assert_allclose(hs, want.numpy(), rtol=1e-11, atol=1e-12)
    final = s0
    for x in xs:
        final = K.step(p, x, final)                    # the new state, ordered like STATE
    assert K.STATE[:3] == ("C", "n", "m")
    for got, ref in zip(final[:3], states):
        numpy.testing.assert_allclose(got, ref.numpy(), rtol=1e-10, atol=1e-12)


def test_gradients_equal_autograd_through_the_package_step():
    """Every parameter gradient and the gradients of C_0, n_0, m_0 (float64, 1e-9)."""
    K, p, xs, s0 = _case(1)
    hs, cache = K.forward(p, xs, s0)
    dhs = numpy.random.default_rng(7).standard_normal(hs.shape)
    grads, ds0 = K.backward(p, cache, dhs)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    ts0 = [torch.tensor(a, requires_grad=True) for a in s0]
    want, _ = _package_run(tp, torch.tensor(xs), ts0)
    (want * torch.tensor(dhs)).sum().backward()
    for k in p:
        numpy.testing.assert_allclose(grads[k], tp[k].grad.numpy(), rtol=1e-9, atol=1e-10,
                                      err_msg=k)
    for got, ref in zip(ds0[:3], ts0[:3]):
        numpy.testing.assert_allclose(got, ref.grad.numpy(), rtol=1e-9, atol=1e-10)


def test_the_package_epsilon_is_a_difference():
    """With its default eps = 1e-6 the package's h differs from the spec's (which has none)
    by about eps / denominator: the one convention that is not a reparametrisation."""
    K, p, xs, s0 = _case(2)
    hs, _ = K.forward(p, xs, s0)
    tp = {k: torch.tensor(v) for k, v in p.items()}
    C, n, m = (torch.tensor(a) for a in s0[:3])
    r = math.sqrt(H)
    x = torch.tensor(xs[0])
    q = x @ tp["W_q"].T + tp["b_q"]
    k = x @ tp["W_k"].T + tp["b_k"]
    v = x @ tp["W_v"].T + tp["b_v"]
    i_t = x @ tp["w_i"][:, None] + tp["b_i"]
    f_t = x @ tp["w_f"][:, None] + tp["b_f"]
    o = torch.sigmoid(x @ tp["W_o"].T + tp["b_o"])
    h, _ = native.mlstm_recurrent_step__native_fw(
        (r * C.transpose(1, 2))[:, None], (r * n)[:, None], m[:, None], q[:, None], k[:, None],
        v[:, None], i_t[:, None], (f_t - torch.log(-torch.expm1(f_t)))[:, None],
        dtype_state=torch.float64)
    diff = numpy.abs((o * h[:, 0]).numpy() - hs[0]).max()
    assert 1e-12 < diff < 1e-3
