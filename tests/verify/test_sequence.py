"""verify.check_sequence against whole-sequence code written here by hand: CS231n-style
rnn_forward / rnn_backward and lstm_forward / lstm_backward, correct and with each classic
loop bug planted. Independent central differences (verify.oracles) on the planted code prove
that each plant is what its name says, before the checker's verdict and diagnosis are tested."""
import time

import numpy
import pytest

from verify import CS231nLayout, check_sequence
from verify.oracles import central_difference

N = 30


def sigmoid(x):
    return 1 / (1 + numpy.exp(-x))


# ---- CS231n-style tanh RNN over a sequence: x (N, T, D), h (N, T, H) --------------------------
def rnn_forward(x, h0, Wx, Wh, b, reverse=False):
    N, T, _ = x.shape
    h, prev = numpy.zeros((N, T, Wh.shape[0]), dtype=x.dtype), h0
    order = range(T - 1, -1, -1) if reverse else range(T)
    for t in order:
        prev = numpy.tanh(x[:, t] @ Wx + prev @ Wh + b)
        h[:, t] = prev
    return h, (x, h0, Wx, Wh, h, reverse)


def rnn_backward(dh, cache, bug=None):
    x, h0, Wx, Wh, h, _ = cache
    N, T, D = x.shape
    dx, dWx, dWh = numpy.zeros_like(x), numpy.zeros_like(Wx), numpy.zeros_like(Wh)
    db, dprev = numpy.zeros(Wh.shape[0]), numpy.zeros_like(h0)
    for t in reversed(range(T)):
        dnext = dh[:, t] if bug == "no_recurrent_h" else dh[:, t] + dprev
        da = dnext * (1 - h[:, t] ** 2)
        prev = h[:, t - 1] if t else h0
        dx[:, t] = da @ Wx.T
        if bug == "assign":
            dWx, dWh, db = x[:, t].T @ da, prev.T @ da, da.sum(axis=0)
        else:
            dWx += x[:, t].T @ da
            dWh += prev.T @ da
            db += da.sum(axis=0)
        dprev = da @ Wh.T
    dh0 = numpy.zeros_like(h0) if bug == "no_dh0" else dprev
    return dx, dh0, dWx, dWh, db


# ---- CS231n-style LSTM over a sequence, gate order i, f, o, g; c0 = 0 -------------------------
def lstm_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    H = h0.shape[1]
    prev_h, prev_c = h0, numpy.zeros_like(h0)
    h, steps = numpy.zeros((N, T, H)), []
    for t in range(T):
        a = x[:, t] @ Wx + prev_h @ Wh + b
        i, f, o, g = (sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H]),
                      numpy.tanh(a[:, 3 * H:]))
        c = f * prev_c + i * g
        steps.append((x[:, t], prev_h, prev_c, i, f, o, g, c))
        prev_h, prev_c = o * numpy.tanh(c), c
        h[:, t] = prev_h
    return h, (steps, Wx, Wh, h0)


def lstm_backward(dh, cache, bug=None):
    steps, Wx, Wh, h0 = cache
    T = len(steps)
    dx = numpy.zeros((dh.shape[0], T, Wx.shape[0]))
    dWx, dWh, db = numpy.zeros_like(Wx), numpy.zeros_like(Wh), numpy.zeros(Wx.shape[1])
    dprev_h, dprev_c = numpy.zeros_like(h0), numpy.zeros_like(h0)
    for t in reversed(range(T)):
        x, prev_h, prev_c, i, f, o, g, c = steps[t]
        dnext_h = dh[:, t] if bug == "no_recurrent_h" else dh[:, t] + dprev_h
        dnext_c = 0 if bug == "no_carry_c" else dprev_c
        tc = numpy.tanh(c)
        do = dnext_h * tc
        dc = dnext_c + dnext_h * o * (1 - tc ** 2)
        da = numpy.hstack([dc * g * i * (1 - i), dc * prev_c * f * (1 - f), do * o * (1 - o),
                           dc * i * (1 - g ** 2)])
        dx[:, t] = da @ Wx.T
        dWx += x.T @ da
        dWh += prev_h.T @ da
        db += da.sum(axis=0)
        dprev_h, dprev_c = da @ Wh.T, dc * f
    return dx, dprev_h, dWx, dWh, db


def _bugged(fn, bug):
    return lambda dh, cache: fn(dh, cache, bug=bug)


# ---- the plants are what they say: central differences of L = sum(dh * h) -----------------
def _fd_case(rng, D=3, H=3, T=4, N=2, gates=1):
    return (rng.uniform(-1, 1, (N, T, D)), rng.uniform(-1, 1, (N, H)),
            rng.uniform(-1, 1, (D, gates * H)), rng.uniform(-1, 1, (H, gates * H)),
            rng.uniform(-1, 1, gates * H), rng.uniform(-1, 1, (N, T, H)))


def _fd_grads(forward, x, h0, Wx, Wh, b, dh):
    """dL/d(x, h0, Wx, Wh, b) of L = sum(dh * h) by central differences (verify.oracles)."""
    args = [x, h0, Wx, Wh, b]
    out = []
    for j in range(5):
        def loss(a, j=j):
            call = list(args)
            call[j] = a
            return float((forward(*call)[0] * dh).sum())
        out.append(central_difference(lambda a: numpy.array(loss(a)), args[j]))
    return out


@pytest.mark.parametrize("which", ["rnn", "lstm"])
def test_the_correct_plants_match_central_differences(which):
    rng = numpy.random.default_rng(3)
    fwd, bwd, gates = (rnn_forward, rnn_backward, 1) if which == "rnn" else (lstm_forward, lstm_backward, 4)
    x, h0, Wx, Wh, b, dh = _fd_case(rng, gates=gates)
    fd = _fd_grads(fwd, x, h0, Wx, Wh, b, dh)
    got = bwd(dh, fwd(x, h0, Wx, Wh, b)[1])
    for g, f in zip(got, fd):
        numpy.testing.assert_allclose(g, f, atol=1e-7)


@pytest.mark.parametrize("which,bug,wrong", [
    ("rnn", "no_recurrent_h", {0, 1, 2, 3, 4}), ("rnn", "assign", {2, 3, 4}),
    ("rnn", "no_dh0", {1}), ("lstm", "no_recurrent_h", {0, 1, 2, 3, 4}),
    ("lstm", "no_carry_c", {0, 1, 2, 3, 4})])
def test_each_planted_bug_differs_from_central_differences_where_it_says(which, bug, wrong):
    """The buggy backward is wrong on exactly the outputs the bug touches (indices into
    (dx, dh0, dWx, dWh, db)), right on the others, and dx is right at the last step."""
    rng = numpy.random.default_rng(4)
    fwd, bwd, gates = (rnn_forward, rnn_backward, 1) if which == "rnn" else (lstm_forward, lstm_backward, 4)
    x, h0, Wx, Wh, b, dh = _fd_case(rng, gates=gates)
    fd = _fd_grads(fwd, x, h0, Wx, Wh, b, dh)
    got = bwd(dh, fwd(x, h0, Wx, Wh, b)[1], bug=bug)
    for j, (g, f) in enumerate(zip(got, fd)):
        assert (not numpy.allclose(g, f, atol=1e-6)) == (j in wrong), (bug, j)
    numpy.testing.assert_allclose(got[0][:, -1], fd[0][:, -1], atol=1e-7)


# ---- verdicts and diagnoses --------------------------------------------------------------------
def test_correct_cs231n_rnn_and_lstm_pass():
    r = check_sequence("rnn_tanh", rnn_forward, rnn_backward, layout=CS231nLayout("rnn_tanh"),
                       max_examples=N, seed=1)
    assert r.ok, str(r)
    r = check_sequence("lstm", lstm_forward, lstm_backward, layout=CS231nLayout("lstm"),
                       max_examples=N, seed=1)
    assert r.ok, str(r)


@pytest.mark.parametrize("which,bug,words", [
    ("rnn", "no_recurrent_h", "not added to dh"),
    ("rnn", "assign", "'=' where '+=' was needed"),
    ("rnn", "no_dh0", "initial-state gradient (dh0) is missing"),
    ("lstm", "no_recurrent_h", "not added to dh"),
    ("lstm", "no_carry_c", "cell-state gradient is not carried back")])
def test_each_loop_bug_fails_and_is_named(which, bug, words):
    cell, fwd, bwd = ("rnn_tanh", rnn_forward, rnn_backward) if which == "rnn" else ("lstm", lstm_forward, lstm_backward)
    r = check_sequence(cell, fwd, _bugged(bwd, bug), layout=CS231nLayout(cell), max_examples=N, seed=2)
    assert not r.ok
    text = str(r)
    assert words in text, text
    assert sum("diagnosis:" in line for line in text.splitlines()) == 1, text
    assert "non-degenerate case: T=4, B=2, D=3, H=3" in text


def test_the_step_a_gradient_diverges_from_is_reported():
    r = check_sequence("rnn_tanh", rnn_forward, _bugged(rnn_backward, "no_recurrent_h"),
                       layout=CS231nLayout("rnn_tanh"), max_examples=N, seed=2)
    dx = [m for m in r.example_mismatches if m.what == "dx"]
    assert dx and "wrong at step(s) 0..2 of T=4" in dx[0].message, str(r)


def test_the_minimal_case_has_two_steps_not_one():
    r = check_sequence("rnn_tanh", rnn_forward, _bugged(rnn_backward, "no_recurrent_h"),
                       layout=CS231nLayout("rnn_tanh"), max_examples=N, seed=5)
    assert r.case["xs"].shape[0] == 2, str(r)


def test_a_time_reversed_forward_is_named():
    fwd = lambda x, h0, Wx, Wh, b: rnn_forward(x, h0, Wx, Wh, b, reverse=True)  # noqa: E731
    r = check_sequence("rnn_tanh", fwd, layout=CS231nLayout("rnn_tanh"), max_examples=N, seed=3)
    assert not r.ok and "time reversed" in str(r), str(r)


def test_same_seed_same_verdict_and_minimal_case():
    run = lambda: check_sequence("rnn_tanh", rnn_forward, _bugged(rnn_backward, "assign"),  # noqa: E731
                                 layout=CS231nLayout("rnn_tanh"), max_examples=N, seed=11)
    a, b = run(), run()
    assert str(a) == str(b) and a.examples == b.examples


def test_an_lstm_check_at_default_settings_takes_under_5_seconds():
    """Benchmark guard (the target is 5 s; generous here for a shared machine)."""
    t, cpu = time.perf_counter(), time.process_time()
    r = check_sequence("lstm", lstm_forward, lstm_backward, layout=CS231nLayout("lstm"), seed=0)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    assert r.ok, str(r)
    print(f"check_sequence lstm default: {wall:.2f} s wall, {cpu:.2f} s CPU, {r.examples} cases")
    assert cpu < 15
