"""Kernels of the cells PyTorch has, against torch.nn.LSTM / RNN / GRU with autograd (float64).

Skipped cleanly when torch is not installed (CI installs the ``oracle`` extra).
"""
from __future__ import annotations

import numpy
import pytest

import derive

torch = pytest.importorskip("torch")

T, B, D, H = 5, 3, 4, 6
TORCH_CELLS = [n for n in derive.cells() if derive.cell(n).torch]


def _module(cell):
    info = cell.torch
    cls = getattr(torch.nn, info["module"])
    kw = {"nonlinearity": info["nonlinearity"]} if "nonlinearity" in info else {}
    torch.manual_seed(0)
    m = cls(D, H, **kw).double()
    with torch.no_grad():           # both biases nonzero: the sum must be what counts
        for name, prm in m.named_parameters():
            prm.copy_(torch.randn_like(prm) * 0.5)
    return m


@pytest.mark.parametrize("name", TORCH_CELLS)
def test_forward_and_gradients_match_torch_autograd(name):
    assert {"lstm", "rnn_tanh"} <= set(TORCH_CELLS)
    cell, k = derive.cell(name), derive.kernels(name)
    m = _module(cell)
    p = k.params_from_torch(m.state_dict())
    rng = numpy.random.default_rng(1)
    xs = rng.standard_normal((T, B, D))
    s0 = tuple(rng.standard_normal((B, H)) * 0.5 for _ in k.STATE)
    dhs = rng.standard_normal((T, B, H))
    dsT = tuple(rng.standard_normal((B, H)) for _ in k.STATE)

    hs, cache = k.forward(p, xs, s0)
    grads, ds0 = k.backward(p, cache, dhs, dsT)
    grads_again, _, dxs = k.backward(p, cache, dhs, dsT, return_dxs=True)
    for pname in k.PARAMS:
        numpy.testing.assert_array_equal(grads_again[pname], grads[pname])

    x_t = torch.tensor(xs, requires_grad=True)
    s_t = [torch.tensor(s[None], requires_grad=True) for s in s0]
    out, fin = m(x_t, tuple(s_t) if len(s_t) > 1 else s_t[0])
    fin = fin if isinstance(fin, tuple) else (fin,)
    loss = (out * torch.tensor(dhs)).sum() + sum((f[0] * torch.tensor(d)).sum() for f, d in zip(fin, dsT))
    loss.backward()
    numpy.testing.assert_allclose(hs, out.detach().numpy(), rtol=1e-12, atol=1e-12)
    for f, s in zip(fin, k.step(p, xs[-1], tuple(cache["S"][j][-2] for j in range(len(k.STATE))))):
        numpy.testing.assert_allclose(s, f[0].detach().numpy(), rtol=1e-12, atol=1e-12)
    for a, st in zip(ds0, s_t):
        numpy.testing.assert_allclose(a, st.grad[0].numpy(), rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(dxs, x_t.grad.numpy(), rtol=1e-10, atol=1e-12)
    tgrads = k.params_from_torch({n: prm.grad for n, prm in m.named_parameters()})
    # params_from_torch sums the two bias gradients, each equal to d loss / d b: halve them
    for pname in k.PARAMS:
        listed = sum(pname in v for key, v in cell.torch.items() if key.startswith("bias"))
        want = tgrads[pname] / max(1, listed)
        numpy.testing.assert_allclose(grads[pname], want, rtol=1e-10, atol=1e-12, err_msg=pname)


@pytest.mark.parametrize("name", TORCH_CELLS)
def test_params_round_trip_through_torch(name):
    cell, k = derive.cell(name), derive.kernels(name)
    p = k.init_params(D, H, rng=2)
    sd = k.params_to_torch(p)
    assert set(sd) == {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}
    back = k.params_from_torch(sd)
    for n in p:
        numpy.testing.assert_array_equal(back[n], p[n])
    m = _module(cell)
    m.load_state_dict({n: torch.from_numpy(v) for n, v in sd.items()})
    xs = numpy.random.default_rng(3).standard_normal((T, B, D))
    hs, _ = k.forward(p, xs)
    numpy.testing.assert_allclose(hs, m(torch.tensor(xs))[0].detach().numpy(), rtol=1e-12, atol=1e-12)


def test_params_from_torch_rejects_bad_state_dicts():
    k = derive.kernels("lstm")
    sd = k.params_to_torch(k.init_params(D, H, rng=0))
    with pytest.raises(ValueError, match="missing 'bias_hh_l0'"):
        k.params_from_torch({n: v for n, v in sd.items() if n != "bias_hh_l0"})
    with pytest.raises(ValueError, match="unexpected key 'weight_ih_l1'"):
        k.params_from_torch({**sd, "weight_ih_l1": sd["weight_ih_l0"]})
    with pytest.raises(ValueError, match=r"weight_hh_l0'\]: expected 4 stacked blocks"):
        k.params_from_torch({**sd, "weight_hh_l0": sd["weight_hh_l0"][:-1]})
