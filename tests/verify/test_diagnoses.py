"""Measured diagnoses: a gate order other than the layout's, a gate with the opposite sign (the
mirror-form GRU), a non-degenerate failing case next to the shrunk one. The plants are
internally consistent code (their backward equals central differences of their own forward),
so the only fault is the convention, which the diagnosis must name."""
import numpy
import pytest

from verify import CS231nLayout, check_cell, check_sequence
from verify.oracles import central_difference

from test_sequence import sigmoid
from test_verify_conformance import lstm_step_backward, lstm_step_forward


def _ordered_backward(order):
    """lstm_step_backward for blocks packed in ``order`` (a permutation of 'ifog')."""
    def bwd(dnext_h, dnext_c, cache):
        dx, dh, dc, dWx, dWh, db = lstm_step_backward(dnext_h, dnext_c, cache[:-1])
        H = dnext_h.shape[1]
        pos = [order.index(g) for g in "ifog"]          # the block where gate g lives
        cols = numpy.concatenate([numpy.arange(p * H, (p + 1) * H) for p in pos])
        out = [numpy.empty_like(a) for a in (dWx, dWh, db)]
        for o, a in zip(out, (dWx, dWh, db)):
            o[..., cols] = a
        return dx, dh, dc, *out
    return bwd


def _fwd(order):
    def fwd(x, h, c, Wx, Wh, b):
        nh, nc, cache = lstm_step_forward(x, h, c, Wx, Wh, b, order=order)
        H = h.shape[1]
        pos = [order.index(g) for g in "ifog"]
        cols = numpy.concatenate([numpy.arange(p * H, (p + 1) * H) for p in pos])
        # cache with the weights in i, f, o, g order so the step backward applies unchanged
        return nh, nc, cache[:3] + (Wx[:, cols], Wh[:, cols]) + cache[5:] + ((Wx, Wh),)
    return fwd


def test_the_reordered_plant_is_a_correct_lstm_for_its_own_packing():
    rng = numpy.random.default_rng(0)
    B, D, H = 2, 3, 2
    x, h, c = rng.uniform(-1, 1, (B, D)), rng.uniform(-1, 1, (B, H)), rng.uniform(-1, 1, (B, H))
    Wx, Wh, b = rng.uniform(-1, 1, (D, 4 * H)), rng.uniform(-1, 1, (H, 4 * H)), rng.uniform(-1, 1, 4 * H)
    dh, dc = rng.uniform(-1, 1, (B, H)), rng.uniform(-1, 1, (B, H))
    fwd, bwd = _fwd("fgio"), _ordered_backward("fgio")
    args = [x, h, c, Wx, Wh, b]
    got = bwd(dh, dc, fwd(*args)[2])
    for j, g in enumerate(got):
        def loss(a, j=j):
            call = list(args)
            call[j] = a
            nh, nc, _ = fwd(*call)
            return numpy.array(float((nh * dh).sum() + (nc * dc).sum()))
        numpy.testing.assert_allclose(g, central_difference(loss, args[j]), atol=1e-7)


def test_a_gate_order_mistake_is_named_in_check_cell():
    r = check_cell("lstm", forward=_fwd("fgio"), backward=_ordered_backward("fgio"),
                   layout=CS231nLayout("lstm"), max_examples=20, seed=1)
    assert not r.ok
    assert "your gate order looks like f, g, i, o, not i, f, o, g" in str(r), str(r)
    assert r.example_mismatches and "non-degenerate case" in str(r)


def test_a_forward_only_gate_order_mistake_is_named_and_the_right_order_is_not():
    r = check_cell("lstm", forward=_fwd("ifgo"), layout=CS231nLayout("lstm"), max_examples=20, seed=2)
    assert "your gate order looks like i, f, g, o, not i, f, o, g" in str(r), str(r)
    assert sum("gate order" in d for d in r.diagnosis) == 1


# ---- the mirror-form GRU: h = (1 - z) h_prev + z n, in the seed layout of gru_cho -------------
def mirror_gru(p, x, state):
    h = state[0]
    r = sigmoid(x @ p["W_xr"].T + h @ p["W_hr"].T + p["b_r"])
    z = sigmoid(x @ p["W_xz"].T + h @ p["W_hz"].T + p["b_z"])
    n = numpy.tanh(x @ p["W_xn"].T + (r * h) @ p["W_hn"].T + p["b_n"])
    return ((1 - z) * h + z * n,)


def test_the_mirror_gru_is_gru_cho_with_z_negated():
    """Independent of the engine: sigmoid(-a) = 1 - sigmoid(a), evaluated."""
    rng = numpy.random.default_rng(1)
    p = {k: rng.uniform(-1, 1, s) for k, s in [("W_xr", (2, 3)), ("W_hr", (2, 2)), ("b_r", 2),
                                                ("W_xz", (2, 3)), ("W_hz", (2, 2)), ("b_z", 2),
                                                ("W_xn", (2, 3)), ("W_hn", (2, 2)), ("b_n", 2)]}
    x, h = rng.uniform(-1, 1, (1, 3)), rng.uniform(-1, 1, (1, 2))
    neg = {k: (-v if k.endswith("z") else v) for k, v in p.items()}
    z = sigmoid(x @ neg["W_xz"].T + h @ neg["W_hz"].T + neg["b_z"])
    r = sigmoid(x @ p["W_xr"].T + h @ p["W_hr"].T + p["b_r"])
    n = numpy.tanh(x @ p["W_xn"].T + (r * h) @ p["W_hn"].T + p["b_n"])
    numpy.testing.assert_allclose(mirror_gru(p, x, (h,))[0], z * h + (1 - z) * n, rtol=1e-12)


def test_the_mirror_gru_is_diagnosed_as_a_sign_flip_of_z():
    r = check_cell("gru_cho", forward=mirror_gru, max_examples=20, seed=3)
    assert not r.ok
    assert "gate z's pre-activation has the opposite sign" in str(r), str(r)


# ---- the same in a whole sequence ---------------------------------------------------------------
def test_a_gate_order_mistake_in_a_sequence_is_named():
    def lstm_forward(x, h0, Wx, Wh, b):
        fwd, h, c, out = _fwd("fgio"), h0, numpy.zeros_like(h0), []
        for t in range(x.shape[1]):
            h, c, _ = fwd(x[:, t], h, c, Wx, Wh, b)
            out.append(h)
        return numpy.stack(out, axis=1), None
    r = check_sequence("lstm", lstm_forward, layout=CS231nLayout("lstm"), max_examples=20, seed=4)
    assert "your gate order looks like f, g, i, o, not i, f, o, g" in str(r), str(r)
