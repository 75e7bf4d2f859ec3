"""check_sequence through the seed convention (time-major and batch-major), PyTorch's
(output, h_n) convention, and the options: final-state upstream gradients, skip, the scale
ladder (a hand tanh that returns NaN above 710), allow_upcast, in-place changes of the upstream
gradient. Every plant is checked against central differences (verify.oracles) first."""
import numpy
import pytest

from verify import SeedLayout, TorchLayout, check_sequence
from verify.oracles import central_difference

N = 30


def tanh_by_hand(a):
    with numpy.errstate(over="ignore", invalid="ignore"):
        e, m = numpy.exp(a), numpy.exp(-a)
        return (e - m) / (e + m)              # inf / inf = NaN above |a| ~ 710


# ---- a seed-convention tanh RNN: forward(params, xs, state0) -> (hs, cache) ------------------
def seed_forward(p, xs, state0, act=numpy.tanh, batch_first=False, upcast=False):
    xs = numpy.swapaxes(xs, 0, 1) if batch_first else xs
    h, hs = state0[0], []
    for x in xs:
        h = act(x @ p["W_xh"].T + h @ p["W_hh"].T + p["b_h"])
        hs.append(h)
    hs = numpy.stack(hs)
    if upcast:
        hs = hs.astype(numpy.float64)
    out = numpy.swapaxes(hs, 0, 1) if batch_first else hs
    return out, (xs, state0[0], hs, batch_first)


def seed_backward(p, cache, dhs, dfinal, bug=None):
    xs, h0, hs, bf = cache
    dhs = numpy.swapaxes(dhs, 0, 1) if bf else dhs
    if bug == "mutate":
        dhs *= 1.0                             # harmless value, but writes into the argument
        dhs[...] = dhs
    g = {k: numpy.zeros_like(v) for k, v in p.items()}
    dxs = numpy.zeros_like(xs)
    dnext = numpy.zeros_like(h0) if dfinal is None or bug == "ignore_final" else dfinal[0]
    for t in reversed(range(len(xs))):
        da = (dhs[t] + dnext) * (1 - hs[t] ** 2)
        prev = hs[t - 1] if t else h0
        g["W_xh"] += da.T @ xs[t]
        g["W_hh"] += da.T @ prev
        g["b_h"] += da.sum(axis=0)
        dxs[t] = da @ p["W_xh"]
        dnext = da @ p["W_hh"]
    dxs = numpy.swapaxes(dxs, 0, 1) if bf else dxs
    return g, (dnext,), (None if bug == "no_dx" else dxs)


def _fd_case(rng, T=3, B=2, D=2, H=3):
    p = {"W_xh": rng.uniform(-1, 1, (H, D)), "W_hh": rng.uniform(-1, 1, (H, H)),
         "b_h": rng.uniform(-1, 1, H)}
    return p, rng.uniform(-1, 1, (T, B, D)), rng.uniform(-1, 1, (B, H)), \
        rng.uniform(-1, 1, (T, B, H)), rng.uniform(-1, 1, (B, H))


def test_the_seed_plant_matches_central_differences_and_ignore_final_does_not():
    """L = sum(dhs * hs) + sum(dfinal * h_T)."""
    p, xs, h0, dhs, df = _fd_case(numpy.random.default_rng(0))

    def loss(p2, xs2, h02):
        hs = seed_forward(p2, xs2, (h02,))[0]
        return numpy.array(float((hs * dhs).sum() + (hs[-1] * df).sum()))
    g, (dh0,), dxs = seed_backward(p, seed_forward(p, xs, (h0,))[1], dhs.copy(), (df,))
    for k in p:
        numpy.testing.assert_allclose(g[k], central_difference(
            lambda a, k=k: loss({**p, k: a}, xs, h0), p[k]), atol=1e-7)
    numpy.testing.assert_allclose(dxs, central_difference(lambda a: loss(p, a, h0), xs), atol=1e-7)
    numpy.testing.assert_allclose(dh0, central_difference(lambda a: loss(p, xs, a), h0), atol=1e-7)
    g2 = seed_backward(p, seed_forward(p, xs, (h0,))[1], dhs.copy(), (df,), bug="ignore_final")[0]
    assert not numpy.allclose(g2["W_hh"], g["W_hh"])


def test_the_hand_tanh_is_nan_above_710_and_right_below():
    assert numpy.isnan(tanh_by_hand(numpy.array(711.0)))
    numpy.testing.assert_allclose(tanh_by_hand(numpy.linspace(-20, 20, 41)),
                                  numpy.tanh(numpy.linspace(-20, 20, 41)), rtol=1e-12)


def test_seed_convention_time_major_and_batch_major():
    assert check_sequence("rnn_tanh", seed_forward, seed_backward, max_examples=N, seed=1,
                          final_upstream=True).ok
    bf = lambda p, xs, s: seed_forward(p, xs, s, batch_first=True)  # noqa: E731
    r = check_sequence("rnn_tanh", bf, seed_backward, batch_first=True, max_examples=N, seed=1)
    assert r.ok and "batch-major" in str(r), str(r)
    r = check_sequence("rnn_tanh", bf, seed_backward, max_examples=N, seed=1)   # wrong axis order
    assert not r.ok


def test_ignoring_the_final_state_gradient_is_named():
    bwd = lambda *a: seed_backward(*a, bug="ignore_final")  # noqa: E731
    r = check_sequence("rnn_tanh", seed_forward, bwd, max_examples=N, seed=2, final_upstream=True)
    assert not r.ok and "upstream gradient on the final states is ignored" in str(r), str(r)


def test_a_missing_dx_is_named_and_can_be_skipped():
    bwd = lambda *a: seed_backward(*a, bug="no_dx")  # noqa: E731
    r = check_sequence("rnn_tanh", seed_forward, bwd, max_examples=N, seed=2)
    assert not r.ok and "dx: was not returned" in str(r), str(r)
    assert check_sequence("rnn_tanh", seed_forward, bwd, max_examples=N, seed=2, skip=("dx",)).ok


def test_the_scale_ladder_finds_a_nan_tanh_the_unit_scale_misses():
    fwd = lambda p, xs, s: seed_forward(p, xs, s, act=tanh_by_hand)  # noqa: E731
    assert check_sequence("rnn_tanh", fwd, max_examples=N, seed=3, scales=(1,)).ok
    r = check_sequence("rnn_tanh", fwd, max_examples=N, seed=3)
    assert not r.ok and "nan" in str(r) and "scale=100" in str(r), str(r)


def test_allow_upcast():
    fwd = lambda p, xs, s: seed_forward(p, xs, s, upcast=True)  # noqa: E731
    r = check_sequence("rnn_tanh", fwd, dtype=numpy.float32, max_examples=N, seed=4)
    assert not r.ok and "allow_upcast=True" in str(r)
    assert check_sequence("rnn_tanh", fwd, dtype=numpy.float32, max_examples=N, seed=4,
                          allow_upcast=True).ok


def test_an_in_place_change_of_the_upstream_gradient_is_named():
    bwd = lambda *a: seed_backward(*a, bug="mutate")  # noqa: E731
    r = check_sequence("rnn_tanh", seed_forward, bwd, max_examples=N, seed=5)
    assert r.ok  # the values never change: an in-place write of equal values is not a change
    def bwd2(p, cache, dhs, dfinal):
        out = seed_backward(p, cache, dhs, dfinal)
        dhs += 1
        return out
    r = check_sequence("rnn_tanh", seed_forward, bwd2, max_examples=N, seed=5)
    assert not r.ok and "modified its inputs in place: dhs" in str(r), str(r)


def test_upstream_h_0_for_code_that_takes_no_final_gradient():
    bwd = lambda *a: seed_backward(*a, bug="ignore_final")  # noqa: E731
    assert check_sequence("rnn_tanh", seed_forward, bwd, max_examples=N, seed=2, final_upstream=True,
                          upstream={"h": 0}).ok
    with pytest.raises(ValueError, match="upstream must map states of 'rnn_tanh'"):
        check_sequence("rnn_tanh", seed_forward, upstream={"c": 0})


# ---- PyTorch itself, through the (output, h_n) convention --------------------------------------
torch = pytest.importorskip("torch")


def _torch_lstm(weights, D, H):
    m = torch.nn.LSTM(D, H).double()
    with torch.no_grad():
        for k, v in weights.items():
            getattr(m, k).copy_(torch.from_numpy(numpy.asarray(v)))
    return m


def torch_forward(x, state0, weights, wrong_final=False):
    m = _torch_lstm(weights, x.shape[2], state0[0].shape[1])
    out, (h, c) = m(torch.from_numpy(x), tuple(torch.from_numpy(s)[None] for s in state0))
    h = out[0] if wrong_final else h[0]
    return out.detach().numpy(), (h.detach().numpy(), c[0].detach().numpy())


def torch_backward(x, state0, weights, doutput, dstate_n):
    m = _torch_lstm(weights, x.shape[2], state0[0].shape[1])
    xt = torch.from_numpy(x.copy()).requires_grad_()
    s0 = tuple(torch.from_numpy(s.copy())[None].requires_grad_() for s in state0)
    out, (h, c) = m(xt, s0)
    loss = (out * torch.from_numpy(doutput)).sum()
    if dstate_n is not None:
        loss = loss + (h[0] * torch.from_numpy(dstate_n[0])).sum() + (c[0] * torch.from_numpy(dstate_n[1])).sum()
    loss.backward()
    grads = {k: getattr(m, k).grad.numpy() for k in weights}
    return grads, xt.grad.numpy(), tuple(s.grad[0].numpy() for s in s0)


def test_torch_lstm_passes_through_the_torch_convention_with_final_states():
    r = check_sequence("lstm", torch_forward, torch_backward, layout=TorchLayout("lstm"),
                       max_examples=15, seed=6, final_upstream=True)
    assert r.ok, str(r)


def test_a_wrong_final_state_is_caught():
    fwd = lambda *a: torch_forward(*a, wrong_final=True)  # noqa: E731
    r = check_sequence("lstm", fwd, layout=TorchLayout("lstm"), max_examples=15, seed=6)
    assert not r.ok and "h_T (final state)" in str(r), str(r)

