"""Deep-Learning-from-Scratch-style layers through ObjectLayout: constructors that take the
parameters (init_args / init_kwargs), parameters and gradients kept as lists (order=), and
stateful TimeRNN / TimeLSTM layers whose forward(xs) reads the initial state from self.h
(self.c) and whose backward leaves dh0 in self.dh. The plants (the book's code, with one bug
each where said) are proved by central differences first."""
import numpy as np
import pytest

from verify import ObjectLayout, PackedLayout, check_cell, check_sequence
from verify.oracles import central_difference

N = 25


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


class RNN:
    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.cache = None

    def forward(self, x, h_prev):
        Wx, Wh, b = self.params
        h_next = np.tanh(np.dot(h_prev, Wh) + np.dot(x, Wx) + b)
        self.cache = (x, h_prev, h_next)
        return h_next

    def backward(self, dh_next):
        Wx, Wh, b = self.params
        x, h_prev, h_next = self.cache
        dt = dh_next * (1 - h_next ** 2)
        self.grads[0][...] = np.dot(x.T, dt)
        self.grads[1][...] = np.dot(h_prev.T, dt)
        self.grads[2][...] = np.sum(dt, axis=0)
        return np.dot(dt, Wx.T), np.dot(dt, Wh.T)


class LSTM:                                   # gate blocks f, g, i, o
    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.cache = None

    def forward(self, x, h_prev, c_prev):
        Wx, Wh, b = self.params
        H = h_prev.shape[1]
        A = np.dot(x, Wx) + np.dot(h_prev, Wh) + b
        f, g = sigmoid(A[:, :H]), np.tanh(A[:, H:2 * H])
        i, o = sigmoid(A[:, 2 * H:3 * H]), sigmoid(A[:, 3 * H:])
        c_next = f * c_prev + g * i
        h_next = o * np.tanh(c_next)
        self.cache = (x, h_prev, c_prev, i, f, g, o, c_next)
        return h_next, c_next

    def backward(self, dh_next, dc_next):
        Wx, Wh, b = self.params
        x, h_prev, c_prev, i, f, g, o, c_next = self.cache
        tc = np.tanh(c_next)
        ds = dc_next + (dh_next * o) * (1 - tc ** 2)
        dA = np.hstack((ds * c_prev * f * (1 - f), ds * i * (1 - g ** 2),
                        ds * g * i * (1 - i), dh_next * tc * o * (1 - o)))
        self.grads[0][...] = np.dot(x.T, dA)
        self.grads[1][...] = np.dot(h_prev.T, dA)
        self.grads[2][...] = dA.sum(axis=0)
        return np.dot(dA, Wx.T), np.dot(dA, Wh.T), ds * f


class TimeLayer:
    """TimeRNN / TimeLSTM: batch-major xs (N, T, D); ``bug`` plants one mistake."""
    Step, states, bug = RNN, ("h",), None

    def __init__(self, Wx, Wh, b, stateful=False):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.layers, self.stateful, self.dh = None, stateful, None
        for s in self.states:
            setattr(self, s, None)

    def forward(self, xs):
        N, T, D = xs.shape
        H = self.params[1].shape[0]
        self.layers, hs = [], np.empty((N, T, H), dtype=xs.dtype)
        for s in self.states:
            if not self.stateful or getattr(self, s) is None or self.bug == "ignores_state":
                setattr(self, s, np.zeros((N, H), dtype=xs.dtype))
        for t in range(T):
            layer = self.Step(*self.params)
            out = layer.forward(xs[:, t, :], *(getattr(self, s) for s in self.states))
            for s, v in zip(self.states, out if len(self.states) > 1 else (out,)):
                setattr(self, s, v)
            hs[:, t, :] = self.h
            self.layers.append(layer)
        return hs

    def backward(self, dhs):
        N, T, H = dhs.shape
        dxs = np.empty((N, T, self.params[0].shape[0]), dtype=dhs.dtype)
        carry, grads = [0] * len(self.states), [0, 0, 0]
        for t in reversed(range(T)):
            layer = self.layers[t]
            out = layer.backward(dhs[:, t, :] + carry[0], *carry[1:])
            dxs[:, t, :], carry = out[0], list(out[1:])
            if self.bug == "no_carry_c":
                carry[1:] = [0] * (len(carry) - 1)
            for i, grad in enumerate(layer.grads):
                if self.bug == "assign":
                    self.grads[i][...] = grad         # BUG: inside the loop, '=' not '+='
                else:
                    grads[i] += grad
        if self.bug != "assign":
            for i, grad in enumerate(grads):
                self.grads[i][...] = grad
        self.dh = carry[0]
        return dxs


class TimeRNN(TimeLayer):
    pass


class TimeLSTM(TimeLayer):
    Step, states = LSTM, ("h", "c")


def bugged(cls, bug):
    return type(f"{cls.__name__}_{bug}", (cls,), {"bug": bug})


def _case(rng, gates, N=2, T=3, D=3, H=2):
    return ([rng.uniform(-1, 1, s) for s in [(D, gates * H), (H, gates * H), (gates * H,)]],
            rng.uniform(-1, 1, (N, T, D)), [rng.uniform(-1, 1, (N, H)) for _ in range(2)],
            rng.uniform(-1, 1, (N, T, H)))


def _run(cls, params, xs, s0, dhs):
    layer = cls(*[p.copy() for p in params], stateful=True)
    for s, v in zip(cls.states, s0):
        setattr(layer, s, v.copy())
    hs = layer.forward(xs.copy())
    return hs, layer


@pytest.mark.parametrize("cls,bug,wrong", [
    (TimeRNN, None, set()), (TimeRNN, "assign", {"Wx", "Wh", "b"}), (TimeRNN, "ignores_state", None),
    (TimeLSTM, None, set()), (TimeLSTM, "no_carry_c", {"Wx", "Wh", "b", "xs", "h0"})])
def test_the_book_plants_are_what_they_say(cls, bug, wrong):
    """Gradients of L = sum(dhs * hs) by central differences against what backward gives."""
    rng = np.random.default_rng(0)
    params, xs, s0, dhs = _case(rng, 1 if cls is TimeRNN else 4)
    s0 = s0[:len(cls.states)]
    good = cls                                  # the loss is that of the correct layer

    def L(params=params, xs=xs, h0=s0[0]):
        return np.array(float((_run(good, params, xs, [h0] + s0[1:], dhs)[0] * dhs).sum()))
    fd = {k: central_difference(lambda a, j=j: L(params=[a if i == j else p for i, p in enumerate(params)]),
                                params[j]) for j, k in enumerate(("Wx", "Wh", "b"))}
    fd["xs"] = central_difference(lambda a: L(xs=a), xs)
    fd["h0"] = central_difference(lambda a: L(h0=a), s0[0])
    plant = bugged(cls, bug) if bug else cls
    hs, layer = _run(plant, params, xs, s0, dhs)
    if bug == "ignores_state":                  # a forward bug: hs is that of h0 = 0
        assert not np.allclose(hs, _run(cls, params, xs, s0, dhs)[0])
        np.testing.assert_allclose(hs, _run(cls, params, xs, [0 * s for s in s0], dhs)[0])
        return
    dxs = layer.backward(dhs)
    got = {**dict(zip(("Wx", "Wh", "b"), layer.grads)), "xs": dxs, "h0": layer.dh}
    for k, want in fd.items():
        assert np.allclose(got[k], want, atol=1e-7) == (k not in wrong), k


def _layout(cell, gate_order, state):
    """The book's layers; ``state`` None: a step layer (no stateful, no state attributes)."""
    base = PackedLayout(cell, gate_order=gate_order, orientation="cols", packing="stacked")
    seq = {} if state is None else {"init_kwargs": {"stateful": True}, "state": state,
                                    "dstate": ("dh",), "batch_first": True}
    return ObjectLayout(base, params="params", grads="grads", order=("Wx", "Wh", "b"),
                        init_args=("Wx", "Wh", "b"), **seq)


RNN_LAYOUT = _layout("rnn_tanh", None, ("h",))
LSTM_LAYOUT = _layout("lstm", "fgio", ("h", "c"))


def test_a_stateful_time_rnn_with_list_params_passes_and_its_bugs_are_named():
    assert check_sequence("rnn_tanh", TimeRNN, TimeRNN, layout=RNN_LAYOUT, max_examples=N, seed=1).ok
    bad = bugged(TimeRNN, "assign")
    r = check_sequence("rnn_tanh", bad, bad, layout=RNN_LAYOUT, max_examples=N, seed=1)
    assert not r.ok and "contribution (step 0" in str(r), str(r)
    assert "grads[0]" in str(r) and "grads[1]" in str(r), str(r)     # the list entries named
    r = check_sequence("rnn_tanh", bugged(TimeRNN, "ignores_state"), layout=RNN_LAYOUT,
                       max_examples=N, seed=1)
    assert not r.ok and "forward hs" in str(r), str(r)


def test_a_stateful_time_lstm_passes_and_a_cell_state_not_carried_is_named():
    ok = check_sequence("lstm", TimeLSTM, TimeLSTM, layout=LSTM_LAYOUT, skip=("dc0",),
                        max_examples=N, seed=2)
    assert ok.ok, str(ok)
    r = check_sequence("lstm", TimeLSTM, TimeLSTM, layout=LSTM_LAYOUT, max_examples=N, seed=2)
    assert not r.ok and "dc0" in str(r) and "skip=('dc0',)" in str(r), str(r)   # never computed
    bad = bugged(TimeLSTM, "no_carry_c")
    r = check_sequence("lstm", bad, bad, layout=LSTM_LAYOUT, skip=("dc0",), max_examples=N, seed=2)
    assert not r.ok and "cell-state gradient is not carried back" in str(r), str(r)


def test_step_layers_taking_their_parameters_in_init_pass_check_cell():
    lay = _layout("lstm", "fgio", None)
    assert check_cell("lstm", forward=LSTM, backward=LSTM, layout=lay, max_examples=N, seed=3).ok
    lay = _layout("rnn_tanh", None, None)
    assert check_cell("rnn_tanh", forward=RNN, backward=RNN, layout=lay, max_examples=N, seed=3).ok


def test_sizes_as_constructor_arguments():
    class Sized(RNN):
        def __init__(self, D, H):
            super().__init__(np.zeros((D, H)), np.zeros((H, H)), np.zeros(H))
    base = PackedLayout("rnn_tanh", orientation="cols", packing="stacked")
    lay = ObjectLayout(base, order=("Wx", "Wh", "b"), init_args=("D", "H"))
    assert check_cell("rnn_tanh", forward=Sized, backward=Sized, layout=lay, max_examples=N, seed=4).ok


def test_bad_object_layouts_are_one_line_errors():
    base = PackedLayout("rnn_tanh", orientation="cols", packing="stacked")
    with pytest.raises(TypeError, match=r"RNN\(\) needs argument\(s\) Wx, Wh, b: pass ObjectLayout"):
        check_cell("rnn_tanh", forward=RNN, layout=ObjectLayout(base, order=("Wx", "Wh", "b")))
    with pytest.raises(ValueError, match=r"init_args names 'W', which is neither a parameter key"):
        ObjectLayout(base, init_args=("W",))
    with pytest.raises(ValueError, match=r"order \['Wx', 'Wh'\] must list each parameter key"):
        ObjectLayout(base, order=("Wx", "Wh"))
    with pytest.raises(ValueError, match=r"state names 'c', not a state of the cell \(h\)"):
        ObjectLayout(base, state=("c",))
    short = type("Short", (RNN,), {"backward": lambda self, dh: (RNN.backward(self, dh), setattr(
        self, "grads", self.grads[:2]))[0]})
    lay = ObjectLayout(base, order=("Wx", "Wh", "b"), init_args=("Wx", "Wh", "b"))
    r = check_cell("rnn_tanh", forward=short, backward=short, layout=lay, max_examples=5, seed=1)
    assert "obj.grads must be a list of 3 gradients (Wx, Wh, b), got a list of 2" in str(r), str(r)
