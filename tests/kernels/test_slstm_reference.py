"""The generated sLSTM kernel against NX-AI's own sLSTM step, the pure-PyTorch ``vanilla``
backend of the ``xlstm`` package (2.0.6, the xLSTM authors' code):
``xlstm.blocks.slstm.src.vanilla.slstm_forward`` (the recurrent loop) and
``slstm.slstm_forward_pointwise`` (one step's gates and states). It runs on the CPU; the
``oracle`` extra installs it (with its declared deps it adds only ninja and safetensors,
which this backend never imports; ``pip install --no-deps xlstm==2.0.6`` is enough where
torch, mlstm-kernels, PyYAML and packaging are installed); skipped without it.

The two are the same cell once these conventions are mapped, which the tests pin (float64:
outputs, the states c, n, m, h, and every gradient by autograd through the package's step):

* layout: the package takes the input projection ``Wx`` (B, 4H) already computed, a
  recurrent kernel ``R`` (K, 4*H/K, H/K) applied as ``Ry = h @ R[k].T`` per head, and one
  bias (4H,); the gates are ordered **i, f, z, o** (the spec's parameters: z, i, f, o). With
  one head, ``R[0] = [R_i; R_f; R_z; R_o]`` (rows stacked, each R_g as in ``R_g @ h``),
  ``Wx = x @ [W_i; W_f; W_z; W_o].T``, ``b = [b_i, b_f, b_z, b_o]``;
* heads: with K heads R is block-diagonal, the same cell as the spec's with every ``R_g``
  block-diagonal (head k's block ``R_g[kH/K:(k+1)H/K, kH/K:(k+1)H/K]`` is row block g of
  ``R[k]``); units are head-major inside each gate (test with K = 2);
* forget gate: the package uses ``log f = logsigmoid(f~)`` (a sigmoid forget gate in log
  space, ``m_t = max(i~, logsigmoid(f~) + m_{t-1})``); the spec's exponential gate
  ``f' = exp(f~ + m_{t-1} - m_t)`` is it with ``f~_ours = logsigmoid(f~_pkg)``, i.e.
  ``f~_pkg = f~_ours - log(-expm1(f~_ours))``, defined for ``f~_ours < 0`` (the tests draw
  such gates and check that they are). That map is not affine, so the package's f-row of R
  and its f-bias cannot carry ``R_f``, ``b_f``: the tests feed the mapped ``f~`` through the
  f-slot of ``Wx`` with zero f-rows of R and a zero f-bias, computed from the package's own
  ``h_{t-1}`` each step (or, in the full-loop test, with ``R_f = 0``);
* stabiliser start: if **every** n of the batch is 0 (the zero state) the package takes
  ``m_1 = i~_1``, the spec ``max(f~_1 + m_0, i~_1)`` with ``m_0 = 0``: h is the same, m, c and
  n differ, the unstabilised ``c e^m`` and ``n e^m`` are the same (a batch-global test: if
  any row has ``n != 0`` the package uses the spec's rule for every row);
* clamps: the package takes ``min(exp(i~ - m), 1)`` and ``min(exp(log f + m_prev - m), 1)``;
  with the max stabiliser both are <= 1 already, so the clamps are inactive (also for the
  gradient: at the tie the two branches of the exp cancel either way). There is no eps and
  no clamp on the normaliser: ``h = o c / n`` in both;
* states: the package stacks ``(y, c, n, m)`` with ``y = h``, the spec orders (c, n, m, h).
"""
from __future__ import annotations

import numpy
import pytest

import derive

torch = pytest.importorskip("torch")
vanilla = pytest.importorskip("xlstm.blocks.slstm.src.vanilla")
pointwise = vanilla.slstm_forward_pointwise_slstm

T, B, D, H = 5, 2, 3, 4
GATES = ("i", "f", "z", "o")                               # the package's order


def _case(seed=0, heads=1, r_f=True):
    K = derive.kernels(derive.cell("slstm"))
    rng = numpy.random.default_rng(seed)
    p = K.init_params(D, H, rng=rng)
    hh = H // heads
    mask = numpy.kron(numpy.eye(heads), numpy.ones((hh, hh)))  # block-diagonal per head
    for g in ("z", "i", "f", "o"):
        p[f"R_{g}"] = p[f"R_{g}"] * mask
    p["W_f"] = 0.2 * p["W_f"]
    p["R_f"] = 0.2 * p["R_f"] if r_f else numpy.zeros_like(p["R_f"])
    p["b_f"] = numpy.full_like(p["b_f"], -2.0)             # f~ < 0 (|x| small, |h| < 1)
    xs = rng.standard_normal((T, B, D))
    n0 = rng.uniform(0.5, 2.0, (B, H))
    c0 = n0 * rng.uniform(-0.9, 0.9, (B, H))               # |c/n| < 1, so |h| < 1
    m0 = 0.3 * rng.standard_normal((B, H))
    h0 = rng.uniform(-0.9, 0.9, (B, H))
    return K, p, xs, (c0, n0, m0, h0)


def _to_torch(p, grad=False):
    return {k: torch.tensor(v, requires_grad=grad) for k, v in p.items()}


def _f_pkg(f):
    """The package's forget pre-activation whose logsigmoid is the spec's f~ (needs f~ < 0)."""
    assert bool((f < 0).all()), "the sigmoid-gate map needs f~ < 0"
    return f - torch.log(-torch.expm1(f))


def _package_R(p, heads, f_zero=True):
    """(K, 4*H/K, H/K): head k's row blocks, gates i, f, z, o; the f-rows zero (see docstring)."""
    hh = H // heads
    blocks = []
    for k in range(heads):
        s = slice(k * hh, (k + 1) * hh)
        blocks.append(torch.cat([torch.zeros(hh, hh, dtype=torch.float64)
                                 if (g == "f" and f_zero) else p[f"R_{g}"][s, s]
                                 for g in GATES]))
    return torch.stack(blocks)


def _stepwise_run(p, xs, s0):
    """hs (T, B, H) and the final (c, n, m, h) from the package's step (one head), the spec's
    f~ (with R_f) mapped into the f-slot of Wx each step; autograd flows back to p and s0."""
    c, n, m, h = s0
    states = torch.stack((h, c, n, m))                     # the package's order (y, c, n, m)
    R = _package_R(p, 1)
    b = torch.cat([torch.zeros(H, dtype=torch.float64) if g == "f" else p[f"b_{g}"]
                   for g in GATES])
    hs = []
    for x in xs:
        f = x @ p["W_f"].T + states[0] @ p["R_f"].T + p["b_f"]
        Wx = torch.cat([_f_pkg(f) if g == "f" else x @ p[f"W_{g}"].T for g in GATES], dim=-1)
        new, _ = vanilla.slstm_forward_step(Wx[None], states, R, b, pointwise)
        states = new[:, 0]
        hs.append(states[0])
    y, c, n, m = states
    return torch.stack(hs), (c, n, m, y)


def _loop_run(p, xs, s0, heads):
    """The package's own loop ``slstm_forward`` (K heads) with R_f = 0: f~ = W_f x + b_f is
    mapped up front into the f-slot of Wx, R's f-rows and the f-bias are zero."""
    Wx = torch.cat([_f_pkg(xs @ p["W_f"].T + p["b_f"]) if g == "f" else xs @ p[f"W_{g}"].T
                    for g in GATES], dim=-1)               # (T, B, 4H)
    b = torch.cat([torch.zeros(H, dtype=torch.float64) if g == "f" else p[f"b_{g}"]
                   for g in GATES])
    c, n, m, h = s0
    states_all, last, _ = vanilla.slstm_forward(Wx, torch.stack((h, c, n, m)),
                                                _package_R(p, heads), b, pointwise)
    y, c, n, m = last
    return states_all[0, 1:], (c, n, m, y)


def _final(K, p, xs, s0):
    s = s0
    for x in xs:
        s = K.step(p, x, s)
    return s


def test_stepwise_forward_equals_the_package_step():
    K, p, xs, s0 = _case()
    assert K.STATE == ("c", "n", "m", "h")
    hs, _ = K.forward(p, xs, s0)
    want, states = _stepwise_run(_to_torch(p), torch.tensor(xs), [torch.tensor(a) for a in s0])
    numpy.testing.assert_allclose(hs, want.numpy(), rtol=1e-11, atol=1e-12)
    for name, got, ref in zip(K.STATE, _final(K, p, xs, s0), states):
        numpy.testing.assert_allclose(got, ref.numpy(), rtol=1e-11, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("heads", [1, 2])
def test_the_package_loop_equals_the_kernel(heads):
    """The package's recurrent loop, R block-diagonal with K heads (R_f = 0, see docstring)."""
    K, p, xs, s0 = _case(3, heads=heads, r_f=False)
    hs, _ = K.forward(p, xs, s0)
    want, states = _loop_run(_to_torch(p), torch.tensor(xs), [torch.tensor(a) for a in s0],
                             heads)
    numpy.testing.assert_allclose(hs, want.numpy(), rtol=1e-11, atol=1e-12)
    for name, got, ref in zip(K.STATE, _final(K, p, xs, s0), states):
        numpy.testing.assert_allclose(got, ref.numpy(), rtol=1e-11, atol=1e-12, err_msg=name)


def test_gradients_equal_autograd_through_the_package_step():
    """Every parameter gradient and dstate0 (c, n, m, h), for a loss on hs and on the final
    state (float64, 1e-9)."""
    K, p, xs, s0 = _case(1)
    hs, cache = K.forward(p, xs, s0)
    rng = numpy.random.default_rng(7)
    dhs = rng.standard_normal(hs.shape)
    dstate = tuple(rng.standard_normal((B, H)) for _ in K.STATE)
    grads, ds0 = K.backward(p, cache, dhs, dstate)
    tp = _to_torch(p, grad=True)
    ts0 = [torch.tensor(a, requires_grad=True) for a in s0]
    want, final = _stepwise_run(tp, torch.tensor(xs), ts0)
    loss = (want * torch.tensor(dhs)).sum()
    loss = loss + sum((a * torch.tensor(d)).sum() for a, d in zip(final, dstate))
    loss.backward()
    for k in p:
        numpy.testing.assert_allclose(grads[k], tp[k].grad.numpy(), rtol=1e-9, atol=1e-10,
                                      err_msg=k)
    for name, got, ref in zip(K.STATE, ds0, ts0):
        numpy.testing.assert_allclose(got, ref.grad.numpy(), rtol=1e-9, atol=1e-10,
                                      err_msg=name)


def test_zero_state_stabiliser_start_differs_only_in_m():
    """From the zero state the package starts m_1 = i~_1 (all n = 0), the spec m_0 = 0: the
    same h, different m_1, c_1, n_1 (here i~ < f~ < 0, so m_1 = f~_1 in the spec; later the
    two m may meet again), the same c e^m
    and n e^m."""
    K, p, xs, _ = _case(2)
    p["b_i"] = numpy.full_like(p["b_i"], -4.0)             # i~ < f~: the two m_1 differ
    zero = tuple(numpy.zeros((B, H)) for _ in K.STATE)
    hs, _ = K.forward(p, xs)                               # state0 = zeros (m_0 = 0)
    want, (c, n, m, h) = _stepwise_run(_to_torch(p), torch.tensor(xs),
                                       [torch.tensor(a) for a in zero])
    numpy.testing.assert_allclose(hs, want.numpy(), rtol=1e-11, atol=1e-12)
    oc, on, om, oh = _final(K, p, xs, zero)
    numpy.testing.assert_allclose(oh, h.numpy(), rtol=1e-11, atol=1e-12)
    numpy.testing.assert_allclose(oc * numpy.exp(om), (c * torch.exp(m)).numpy(), rtol=1e-11)
    numpy.testing.assert_allclose(on * numpy.exp(om), (n * torch.exp(m)).numpy(), rtol=1e-11)
    first = K.step(p, xs[0], zero)[2]                      # m_1, spec: max(f~_1, i~_1)
    i1 = xs[0] @ p["W_i"].T + p["b_i"]
    f1 = xs[0] @ p["W_f"].T + p["b_f"]
    numpy.testing.assert_allclose(first, numpy.maximum(f1, i1), rtol=1e-12)
    _, (_, _, m1, _) = _stepwise_run(_to_torch(p), torch.tensor(xs[:1]),
                                     [torch.tensor(a) for a in zero])
    numpy.testing.assert_allclose(m1.numpy(), i1, rtol=1e-12)  # the package's m_1 = i~_1
    assert (f1 > i1).all() and (first - m1.numpy()).min() > 0.5
