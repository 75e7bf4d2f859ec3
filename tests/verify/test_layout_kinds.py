"""Each kind of implementation checked with one Layout(...) and no wrapper: planted code written
here (correct, wrong forward, wrong backward), central differences (verify.oracles) on the
planted code proving each plant, then the checker's verdict and diagnosis.

Kinds: per-gate (H, D+H) matrices on concat[h, x] with column vectors and (H, 1) biases; one
sample as 1-D vectors with the bias as row 0 of one weight matrix; a class-based layer over a
sequence keeping its cache and gradients on self; a peephole LSTM through a dict packing; the
assign_last and reversed_upstream loop bugs."""
import numpy
import pytest

from verify import (CS231nLayout, ObjectLayout, PackedLayout, SeedLayout, TorchLayout,
                    check_cell, check_sequence)
from verify.oracles import central_difference

N = 25


def sig(a):
    return 1 / (1 + numpy.exp(-a))


def _fd(loss, arrays):
    """Central differences of a scalar loss with respect to each array in ``arrays`` (a dict)."""
    out = {}
    for k in arrays:
        def f(a, k=k):
            return numpy.array(loss({**arrays, k: a}))
        out[k] = central_difference(f, arrays[k])
    return out


# ---- 1. per-gate (H, D+H) on concat[h, x], column vectors x (D, B), biases (H, 1) -----------
GATES = "ifgo"
COLS = PackedLayout("lstm", packing="per_gate_concat_hx", vectors="columns",
                    names={f"W_{g}": f"W{g}" for g in GATES} | {f"b_{g}": f"b{g}" for g in GATES})


def col_forward(p, x, state, swap=False):
    h, c = state
    z = numpy.vstack([h, x])
    i, f = sig(p["Wi"] @ z + p["bi"]), sig(p["Wf"] @ z + p["bf"])
    if swap:                                            # planted: i and f read from each other's block
        i, f = f, i
    g, o = numpy.tanh(p["Wg"] @ z + p["bg"]), sig(p["Wo"] @ z + p["bo"])
    c2 = f * c + i * g
    return o * numpy.tanh(c2), c2


def col_backward(p, x, state, dstate, bug=False):
    h, c = state
    dh, dc = dstate
    z = numpy.vstack([h, x])
    i, f = sig(p["Wi"] @ z + p["bi"]), sig(p["Wf"] @ z + p["bf"])
    g, o = numpy.tanh(p["Wg"] @ z + p["bg"]), sig(p["Wo"] @ z + p["bo"])
    c2 = f * c + i * g
    tc = numpy.tanh(c2)
    dc2 = dc + (0 if bug else dh * o * (1 - tc ** 2))      # planted: h's path into c dropped
    das = {"i": dc2 * g * i * (1 - i), "f": dc2 * c * f * (1 - f), "g": dc2 * i * (1 - g ** 2),
           "o": dh * tc * o * (1 - o)}
    grads, dz = {}, 0
    for k, da in das.items():
        grads["dW" + k], grads["db" + k] = da @ z.T, da.sum(axis=1, keepdims=True)
        dz = dz + p["W" + k].T @ da
    H = h.shape[0]
    return grads, dz[H:], (dz[:H], dc2 * f)


def _col_case(rng, D=2, H=3, B=2):
    p = {f"W{g}": rng.uniform(-1, 1, (H, H + D)) for g in GATES}
    p.update({f"b{g}": rng.uniform(-1, 1, (H, 1)) for g in GATES})
    return p, rng.uniform(-1, 1, (D, B)), (rng.uniform(-1, 1, (H, B)), rng.uniform(-1, 1, (H, B))), \
        (rng.uniform(-1, 1, (H, B)), rng.uniform(-1, 1, (H, B)))


@pytest.mark.parametrize("bug", [False, True])
def test_the_column_plants_are_what_they_say(bug):
    p, x, s, (dh, dc) = _col_case(numpy.random.default_rng(0))

    def loss(a):
        h2, c2 = col_forward({k: a[k] for k in p}, a["x"], (a["h"], a["c"]))
        return float((dh * h2).sum() + (dc * c2).sum())
    fd = _fd(loss, {**p, "x": x, "h": s[0], "c": s[1]})
    grads, dx, (dhp, dcp) = col_backward(p, x, s, (dh, dc), bug=bug)
    got = {**{k[1:]: v for k, v in grads.items()}, "x": dx, "h": dhp, "c": dcp}
    wrong = {k for k in fd if not numpy.allclose(got[k], fd[k], atol=1e-7)}
    assert wrong == (set() if not bug else set(fd) - {"Wo", "bo"}), wrong   # o does not see c
    assert not numpy.allclose(col_forward(p, x, s, swap=True)[1], col_forward(p, x, s)[1])


def test_per_gate_concat_column_code_passes_and_its_bugs_are_named():
    assert check_cell("lstm", forward=col_forward, backward=col_backward, layout=COLS,
                      max_examples=N, seed=1).ok
    r = check_cell("lstm", forward=lambda p, x, s: col_forward(p, x, s, swap=True), layout=COLS,
                   max_examples=N, seed=1)
    assert not r.ok and "your gate order looks like f, i, g, o, not i, f, g, o" in str(r), str(r)
    r = check_cell("lstm", forward=col_forward, backward=lambda *a: col_backward(*a, bug=True),
                   layout=COLS, max_examples=N, seed=1)
    assert not r.ok and "backward" in str(r) and "dWi" in str(r), str(r)


# ---- 2. one sample, 1-D vectors, bias as row 0 of W (1+D+H, H) on [1, x, h] --------------------
ONE = PackedLayout("rnn_tanh", packing="concat_xh", bias="first", orientation="cols",
                   batch_axis=False)


def one_forward(p, x, state, bug=False):
    (h,) = state
    a = numpy.concatenate([[1.0], x, h]) @ p["W"]
    return (numpy.tanh(a) if not bug else numpy.tanh(a) * 0.5 + 0.5 * a,)


def one_backward(p, x, state, dstate, bug=False):
    (h,), (dh,) = state, dstate
    z = numpy.concatenate([[1.0], x, h])
    hn = numpy.tanh(z @ p["W"])
    da = dh * (1 - hn ** 2)
    dz = p["W"] @ (da if not bug else dh)                 # planted: tanh' dropped on dz
    D = x.shape[0]
    return {"dW": numpy.outer(z, da)}, dz[1:1 + D], (dz[1 + D:],)


@pytest.mark.parametrize("bug", [False, True])
def test_the_one_sample_plants_are_what_they_say(bug):
    rng = numpy.random.default_rng(1)
    D, H = 2, 3
    W, x, h, dh = rng.uniform(-1, 1, (1 + D + H, H)), rng.uniform(-1, 1, D), rng.uniform(-1, 1, H), \
        rng.uniform(-1, 1, H)
    fd = _fd(lambda a: float((dh * one_forward({"W": a["W"]}, a["x"], (a["h"],))[0]).sum()),
             {"W": W, "x": x, "h": h})
    g, dx, (dhp,) = one_backward({"W": W}, x, (h,), (dh,), bug=bug)
    assert numpy.allclose(g["dW"], fd["W"], atol=1e-7)
    assert numpy.allclose(dx, fd["x"], atol=1e-7) != bug
    assert numpy.allclose(dhp, fd["h"], atol=1e-7) != bug


def test_one_sample_code_with_the_bias_in_row_0_passes_and_its_bugs_are_named():
    assert check_cell("rnn_tanh", forward=one_forward, backward=one_backward, layout=ONE,
                      max_examples=N, seed=1).ok
    r = check_cell("rnn_tanh", forward=lambda *a: one_forward(*a, bug=True), layout=ONE,
                   max_examples=N, seed=1)
    assert not r.ok and "forward" in str(r)
    r = check_cell("rnn_tanh", forward=one_forward, backward=lambda *a: one_backward(*a, bug=True),
                   layout=ONE, max_examples=N, seed=1)
    text = str(r)
    assert not r.ok and "dx" in text, text


# ---- 3. a class-based layer over a sequence, gradients on self ----------------------------------
class SeqRNN:
    """h_t = tanh(x_t Wx + h_{t-1} Wh + b) over xs (T, B, D); grads in self.grads."""
    bug = None

    def forward(self, xs, h0):
        self.xs, self.hs, h = xs, [h0], h0
        for x in xs:
            h = numpy.tanh(x @ self.params["Wx"] + h @ self.params["Wh"] + self.params["b"])
            self.hs.append(h)
        return numpy.array(self.hs[1:])

    def backward(self, dhs):
        P, T = self.params, len(self.xs)
        g = {"dWx": 0 * P["Wx"], "dWh": 0 * P["Wh"], "db": 0 * P["b"]}
        dxs, dprev = numpy.zeros_like(self.xs), 0 * self.hs[0]
        for t in reversed(range(T)):
            up = dhs[T - 1 - t] if self.bug == "reversed_upstream" else dhs[t]
            da = (up + dprev) * (1 - self.hs[t + 1] ** 2)
            step = {"dWx": self.xs[t].T @ da, "dWh": self.hs[t].T @ da, "db": da.sum(0)}
            for k in g:
                if self.bug != "assign_last" or t == T - 1:   # planted: only step T-1 kept
                    g[k] = g[k] + step[k]
            dxs[t], dprev = da @ P["Wx"].T, da @ P["Wh"].T
        self.grads = g
        return dxs, dprev


def _bugged(bug):
    return type("Bugged", (SeqRNN,), {"bug": bug})


OBJ = ObjectLayout(CS231nLayout("rnn_tanh"))


@pytest.mark.parametrize("bug", [None, "assign_last", "reversed_upstream"])
def test_the_sequence_object_plants_are_what_they_say(bug):
    rng = numpy.random.default_rng(2)
    T, B, D, H = 4, 2, 2, 3
    P = {"Wx": rng.uniform(-1, 1, (D, H)), "Wh": rng.uniform(-1, 1, (H, H)), "b": rng.uniform(-1, 1, H)}
    xs, h0, dhs = rng.uniform(-1, 1, (T, B, D)), rng.uniform(-1, 1, (B, H)), rng.uniform(-1, 1, (T, B, H))

    def loss(a):
        o = SeqRNN()
        o.params = {k: a[k] for k in P}
        return float((dhs * o.forward(a["xs"], a["h0"])).sum())
    fd = _fd(loss, {**P, "xs": xs, "h0": h0})
    o = _bugged(bug)()
    o.params = P
    o.forward(xs, h0)
    dxs, dh0 = o.backward(dhs)
    got = {"Wx": o.grads["dWx"], "Wh": o.grads["dWh"], "b": o.grads["db"], "xs": dxs, "h0": dh0}
    wrong = {k for k in fd if not numpy.allclose(got[k], fd[k], atol=1e-7)}
    want = {None: set(), "assign_last": {"Wx", "Wh", "b"}, "reversed_upstream": set(fd)}[bug]
    assert wrong == want, wrong


@pytest.mark.parametrize("bug,words", [
    ("assign_last", "contribution (step T-1)"),
    ("reversed_upstream", "upstream gradients are used in reversed order")])
def test_a_class_based_sequence_layer_passes_and_its_loop_bugs_are_named(bug, words):
    r = check_sequence("rnn_tanh", SeqRNN, SeqRNN, layout=OBJ, max_examples=N, seed=1)
    assert r.ok, str(r)
    r = check_sequence("rnn_tanh", _bugged(bug), _bugged(bug), layout=OBJ, max_examples=N, seed=1)
    assert not r.ok and words in str(r), str(r)


# ---- 4. gates of different shapes: a peephole LSTM through a dict packing; torch GRU ----------
def test_a_dict_packing_lays_out_a_peephole_lstm_and_round_trips():
    L = PackedLayout("lstm_peephole", packing={
        "Wx": ["W_xi", "W_xf", "W_xc", "W_xo"], "Wh": ["W_hi", "W_hf", "W_hc", "W_ho"],
        "b": ["b_i", "b_f", "b_c", "b_o"],
        "P": ["W_ci", "W_cf", "W_co"]},
        orientation="cols")
    rng = numpy.random.default_rng(5)
    seed = {n: rng.uniform(-1, 1, (3, 2) if n.startswith("W_x") else (3, 3) if n.startswith("W_h")
                           else (3,)) for n in L.param_names}
    user = L.to_user(seed)
    assert user["Wx"].shape == (2, 12) and user["b"].shape == (12,)
    back = L.from_user(user)
    for n in L.param_names:
        numpy.testing.assert_allclose(back[n], seed[n])
    assert user["P"].shape == (9,)


def test_torch_layout_is_a_packed_layout_and_keeps_gru_b_xn_b_hn_apart():
    L = TorchLayout("gru")
    assert isinstance(L, PackedLayout) and L.convention == "torch"
    assert isinstance(SeedLayout("lstm"), PackedLayout) and isinstance(CS231nLayout("lstm"), PackedLayout)
    rng = numpy.random.default_rng(6)
    seed = {n: rng.uniform(-1, 1, (3, 2) if n.startswith("W_x") else (3, 3) if n.startswith("W_h")
                           else (3,)) for n in L.param_names}
    back = L.from_user(L.to_user(seed))
    for n in L.param_names:
        numpy.testing.assert_allclose(back[n], seed[n], atol=1e-12)
