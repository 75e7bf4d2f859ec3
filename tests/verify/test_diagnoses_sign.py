"""Sign flips named in check_cell and check_sequence reports, by the one measured explanation
check_loss uses (verify.gradfit): a gradient exactly minus the reference, or one gate's block
of a packed gradient exactly minus. The plants are proved by central differences first."""
import numpy

from verify import CS231nLayout, check_cell, check_sequence
from verify.gradfit import SIGN_FLIP, explain
from verify.oracles import central_difference

from test_sequence import _fd_case, _fd_grads, rnn_backward, rnn_forward
from test_verify_conformance import lstm_step_forward, rnn_step_backward, rnn_step_forward

N = 25


def lstm_step_backward_df_sign(dnext_h, dnext_c, cache):
    """A CS231n LSTM step backward with df written with the wrong sign: every block of the
    forget gate's weight and bias gradients is exactly minus the true one."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tc = numpy.tanh(next_c)
    do, dc = dnext_h * tc, dnext_c + dnext_h * o * (1 - tc ** 2)
    di, dg, dprev_c = dc * g, dc * i, dc * f
    df = -dc * prev_c                                   # BUG: dc * prev_c
    da = numpy.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)])
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_step_backward_db_sign(dnext_h, cache):
    dx, dh, dWx, dWh, db = rnn_step_backward(dnext_h, cache)
    return dx, dh, dWx, dWh, -db                        # BUG: the bias gradient negated


def rnn_backward_dWx_sign(dh, cache):
    dx, dh0, dWx, dWh, db = rnn_backward(dh, cache)
    return dx, dh0, -dWx, dWh, db                       # BUG: dWx negated


def _step_fd(forward, args, dstate):
    """Central differences of L = sum(dstate * forward(*args)[:k]) for every argument."""
    def loss(j, a):
        call = list(args)
        call[j] = a
        out = forward(*call)
        return numpy.array(sum(float((d * o).sum()) for d, o in zip(dstate, out)))
    return [central_difference(lambda a, j=j: loss(j, a), args[j]) for j in range(len(args))]


def test_the_sign_plants_are_what_they_say():
    rng = numpy.random.default_rng(0)
    B, D, H = 2, 3, 2
    x, h, c = rng.uniform(-1, 1, (B, D)), rng.uniform(-1, 1, (B, H)), rng.uniform(-1, 1, (B, H))
    Wx, Wh, b = rng.uniform(-1, 1, (D, 4 * H)), rng.uniform(-1, 1, (H, 4 * H)), rng.uniform(-1, 1, 4 * H)
    dh, dc = rng.uniform(-1, 1, (B, H)), rng.uniform(-1, 1, (B, H))
    fd = _step_fd(lstm_step_forward, [x, h, c, Wx, Wh, b], (dh, dc))
    got = lstm_step_backward_df_sign(dh, dc, lstm_step_forward(x, h, c, Wx, Wh, b)[2])
    f = numpy.zeros(4 * H, bool)
    f[H:2 * H] = True                                   # the forget gate's columns
    for g, want in zip(got[3:], fd[3:]):                # dWx, dWh, db: f block exactly minus
        numpy.testing.assert_allclose(g[..., f], -want[..., f], atol=1e-7)
        numpy.testing.assert_allclose(g[..., ~f], want[..., ~f], atol=1e-7)
    assert not numpy.allclose(got[0], fd[0], atol=1e-3)   # dx is wrong, but not a multiple
    assert explain(got[0], fd[0], 1e-7, 1e-5) == ""
    rx, rh = rng.uniform(-1, 1, (D, H)), rng.uniform(-1, 1, (H, H))
    rb = rng.uniform(-1, 1, H)
    fd = _step_fd(rnn_step_forward, [x, h, rx, rh, rb], (dh,))
    got = rnn_step_backward_db_sign(dh, rnn_step_forward(x, h, rx, rh, rb)[1])
    numpy.testing.assert_allclose(got[4], -fd[4], atol=1e-7)
    for g, want in zip(got[:4], fd[:4]):
        numpy.testing.assert_allclose(g, want, atol=1e-7)
    x, h0, Wx, Wh, b, dhs = _fd_case(rng)
    fd = _fd_grads(rnn_forward, x, h0, Wx, Wh, b, dhs)
    got = rnn_backward_dWx_sign(dhs, rnn_forward(x, h0, Wx, Wh, b)[1])
    numpy.testing.assert_allclose(got[2], -fd[2], atol=1e-7)
    for j in (0, 1, 3, 4):
        numpy.testing.assert_allclose(got[j], fd[j], atol=1e-7)


def test_a_gate_block_with_the_opposite_sign_is_a_sign_flip_in_check_cell():
    r = check_cell("lstm", forward=lstm_step_forward, backward=lstm_step_backward_df_sign,
                   layout=CS231nLayout("lstm"), max_examples=N, seed=1)
    assert not r.ok
    flips = [d for d in r.diagnosis if d.endswith(SIGN_FLIP)]
    assert len(flips) == 1, str(r)
    assert all(f"({n})" in flips[0] for n in ("W_xf", "W_hf", "b_f")), str(r)
    assert not any(f"({n})" in flips[0] for n in ("W_xi", "W_xo", "W_xc", "b_i")), str(r)
    assert "dx" not in flips[0].split(":")[0].split(", ")


def test_a_whole_gradient_with_the_opposite_sign_is_a_sign_flip_in_check_cell():
    r = check_cell("rnn_tanh", forward=rnn_step_forward, backward=rnn_step_backward_db_sign,
                   layout=CS231nLayout("rnn_tanh"), max_examples=N, seed=2)
    assert not r.ok
    assert any(d.startswith("db") and d.endswith(SIGN_FLIP) for d in r.diagnosis), str(r)
    assert f"({SIGN_FLIP})" in str(r.mismatches[0]), str(r)


def test_a_gradient_with_the_opposite_sign_is_a_sign_flip_in_check_sequence():
    r = check_sequence("rnn_tanh", rnn_forward, rnn_backward_dWx_sign,
                       layout=CS231nLayout("rnn_tanh"), max_examples=N, seed=3)
    assert not r.ok
    assert any(d.startswith("dWx") and d.endswith(SIGN_FLIP) for d in r.diagnosis), str(r)
    assert not any("dWh" in d or d.startswith("dx") for d in r.diagnosis), str(r)


def test_one_explanation_for_all_three_checks():
    """check_loss, check_cell and check_sequence say the same words for the same fact."""
    g = numpy.array([1.0, -2.0, 3.0])
    assert explain(-g, g, 1e-9, 1e-7) == SIGN_FLIP
    assert explain(2 * g, g, 1e-9, 1e-7) == "off by a constant factor 2"
    assert explain(numpy.array([3.0]), numpy.array([1.0]), 1e-9, 1e-7) == ""   # one entry: any c fits
    assert explain(numpy.array([-1.0]), numpy.array([1.0]), 1e-9, 1e-7) == SIGN_FLIP
    assert explain(numpy.array([0.4, 0.1]), numpy.array([0.5, 0.1]), 1e-9, 1e-7) == ""  # one entry off
    assert explain(numpy.array([0.4, -0.4, 0.1]), numpy.array([0.5, -0.9, 0.1]), 1e-9, 1e-7).startswith(
        "clipped to [-0.4, 0.4]")
