"""PackedLayout: a declared packing instead of an adapter. LSTM steps written here for Keras's
packing (kernel (D, 4H), order i, f, c, o), ONNX's (W (4H, D), order i, o, f, c, B = [Wb, Rb]),
one matrix on concat[h, x, 1] (bias as its last column) and a bias-free one; the mirror-form
GRU through mirror_gru_layout. Each plant is first checked against central differences."""
import numpy
import pytest

from verify import PackedLayout, check_cell, check_sequence, keras_layout, mirror_gru_layout, onnx_layout
from verify.oracles import central_difference

from test_diagnoses import mirror_gru
from test_verify_conformance import lstm_step_backward, lstm_step_forward
from test_sequence import sigmoid

N = 20


class PackedLSTM:
    """An LSTM step on a = pre(x, h) with gate blocks in ``order``; ``style`` picks the packing:
    'keras' (x @ kernel + h @ recurrent_kernel + bias), 'onnx' (x @ W.T + h @ R.T + B[:4H] +
    B[4H:]), 'hx1' (concat[h, x, 1] @ W.T), 'nobias' (x @ Wx.T + h @ Wh.T)."""

    def __init__(self, style, order):
        self.style, self.order = style, order

    def pre(self, p, x, h):
        s = self.style
        if s == "keras":
            return x @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"]
        if s == "onnx":
            H4 = p["W"].shape[0]
            return x @ p["W"].T + h @ p["R"].T + p["B"][:H4] + p["B"][H4:]
        if s == "hx1":
            return numpy.hstack([h, x, numpy.ones((x.shape[0], 1))]) @ p["W"].T
        return x @ p["Wx"].T + h @ p["Wh"].T

    def pre_backward(self, p, x, h, da):
        s = self.style
        if s == "keras":
            return {"dkernel": x.T @ da, "drecurrent_kernel": h.T @ da, "dbias": da.sum(0)}, \
                da @ p["kernel"].T, da @ p["recurrent_kernel"].T
        if s == "onnx":
            db = da.sum(0)
            return {"dW": da.T @ x, "dR": da.T @ h, "dB": numpy.concatenate([db, db])}, \
                da @ p["W"], da @ p["R"]
        if s == "hx1":
            H = h.shape[1]
            z = numpy.hstack([h, x, numpy.ones((x.shape[0], 1))])
            dz = da @ p["W"]
            return {"dW": da.T @ z}, dz[:, H:-1], dz[:, :H]
        return {"dWx": da.T @ x, "dWh": da.T @ h}, da @ p["Wx"], da @ p["Wh"]

    def _gates(self, a, H):
        blk = {g: a[:, j * H:(j + 1) * H] for j, g in enumerate(self.order)}
        return sigmoid(blk["i"]), sigmoid(blk["f"]), sigmoid(blk["o"]), numpy.tanh(blk["c"])

    def forward(self, p, x, state):
        h, c = state
        i, f, o, g = self._gates(self.pre(p, x, h), h.shape[1])
        c2 = f * c + i * g
        return o * numpy.tanh(c2), c2

    def backward(self, p, x, state, dstate):
        h, c = state
        H = h.shape[1]
        i, f, o, g = self._gates(self.pre(p, x, h), H)
        c2 = f * c + i * g
        tc = numpy.tanh(c2)
        dh2, dc2 = dstate
        dc = dc2 + dh2 * o * (1 - tc ** 2)
        d = {"i": dc * g * i * (1 - i), "f": dc * c * f * (1 - f), "o": dh2 * tc * o * (1 - o),
             "c": dc * i * (1 - g ** 2)}
        da = numpy.hstack([d[k] for k in self.order])
        grads, dx, dh = self.pre_backward(p, x, h, da)
        return grads, dx, (dh, dc * f)


def _params(style, rng, D=3, H=2):
    u = lambda *s: rng.uniform(-1, 1, s)  # noqa: E731
    return {"keras": {"kernel": u(D, 4 * H), "recurrent_kernel": u(H, 4 * H), "bias": u(4 * H)},
            "onnx": {"W": u(4 * H, D), "R": u(4 * H, H), "B": u(8 * H)},
            "hx1": {"W": u(4 * H, H + D + 1)},
            "nobias": {"Wx": u(4 * H, D), "Wh": u(4 * H, H)}}[style]


@pytest.mark.parametrize("style", ["keras", "onnx", "hx1", "nobias"])
def test_the_packed_plants_match_central_differences(style):
    rng = numpy.random.default_rng(0)
    m, p = PackedLSTM(style, "ifco"), _params(style, rng)
    x, h, c = rng.uniform(-1, 1, (2, 3)), rng.uniform(-1, 1, (2, 2)), rng.uniform(-1, 1, (2, 2))
    dh, dc = rng.uniform(-1, 1, (2, 2)), rng.uniform(-1, 1, (2, 2))
    loss = lambda p2, x2, h2, c2: numpy.array(float(  # noqa: E731
        (m.forward(p2, x2, (h2, c2))[0] * dh).sum() + (m.forward(p2, x2, (h2, c2))[1] * dc).sum()))
    grads, dx, (dhp, dcp) = m.backward(p, x, (h, c), (dh, dc))
    for k in p:
        numpy.testing.assert_allclose(grads["d" + k], central_difference(
            lambda a, k=k: loss({**p, k: a}, x, h, c), p[k]), atol=1e-7)
    numpy.testing.assert_allclose(dx, central_difference(lambda a: loss(p, a, h, c), x), atol=1e-7)
    numpy.testing.assert_allclose(dhp, central_difference(lambda a: loss(p, x, a, c), h), atol=1e-7)
    numpy.testing.assert_allclose(dcp, central_difference(lambda a: loss(p, x, h, a), c), atol=1e-7)


LAYOUTS = {
    "keras": (lambda: keras_layout("lstm"), "ifco"),
    "onnx": (lambda: onnx_layout("lstm"), "iofc"),
    "hx1": (lambda: PackedLayout("lstm", gate_order="ifgo", packing="concat_hx", bias="last"), "ifco"),
    "nobias": (lambda: PackedLayout("lstm", bias="absent"), "ifco"),
}


@pytest.mark.parametrize("style", list(LAYOUTS))
def test_each_packing_passes_with_its_declared_layout(style):
    make, order = LAYOUTS[style]
    m = PackedLSTM(style, order)
    r = check_cell("lstm", forward=m.forward, backward=m.backward, layout=make(), max_examples=N, seed=1)
    assert r.ok, str(r)


def test_a_keras_lstm_whole_sequence_through_the_same_layout():
    m = PackedLSTM("keras", "ifco")

    def fwd(p, xs, s0):
        s, hs = s0, []
        for x in xs:
            s = m.forward(p, x, s)
            hs.append(s[0])
        return numpy.stack(hs), (xs, s0)
    assert check_sequence("lstm", fwd, layout=keras_layout("lstm"), max_examples=N, seed=2).ok


def test_a_keras_lstm_checked_with_the_onnx_layout_fails_and_the_order_is_named():
    m = PackedLSTM("keras", "ifco")
    lay = PackedLayout("lstm", gate_order="iofc", orientation="cols", packing="stacked",
                       names={"Wx": "kernel", "Wh": "recurrent_kernel", "b": "bias"})
    r = check_cell("lstm", forward=m.forward, layout=lay, max_examples=N, seed=3)
    assert not r.ok and "your gate order looks like i, f, g, o, not i, o, f, g" in str(r), str(r)


def test_the_mirror_gru_passes_with_the_mirror_layout():
    assert check_cell("gru_cho", forward=mirror_gru, layout=mirror_gru_layout(), max_examples=N, seed=4).ok


def test_bad_declarations_are_one_line_errors():
    with pytest.raises(ValueError, match="not a permutation of the gates of 'lstm'"):
        PackedLayout("lstm", gate_order="ifo")
    with pytest.raises(ValueError, match="packing must be one of"):
        PackedLayout("lstm", packing="diagonal")
    with pytest.raises(ValueError, match="cannot pack cell 'lstm_peephole'"):
        PackedLayout("lstm_peephole")
    with pytest.raises(ValueError, match="needs packing='concat_xh'"):
        PackedLayout("lstm", bias="first")


# ---- a class-based layer: cache and gradients on self -----------------------------------------
class LSTMLayer:
    """CS231n packing; ``self.Wx`` ... set from outside; gradients in ``self.grads``."""

    def forward(self, x, h, c):
        nh, nc, self.cache = lstm_step_forward(x, h, c, self.Wx, self.Wh, self.b)
        return nh, nc

    def backward(self, dh, dc):
        dx, dprev_h, dprev_c, dWx, dWh, db = lstm_step_backward(dh, dc, self.cache)
        self.grads = {"dWx": dWx, "dWh": dWh, "db": db}
        return dx, dprev_h, dprev_c


def test_a_class_based_layer_through_the_object_adapter():
    from verify import CS231nLayout, ObjectLayout
    lay = ObjectLayout(CS231nLayout("lstm"), params=None, grads="grads")
    r = check_cell("lstm", forward=LSTMLayer, backward=LSTMLayer, layout=lay, max_examples=N, seed=5)
    assert r.ok, str(r)

    class Wrong(LSTMLayer):
        def backward(self, dh, dc):
            out = super().backward(dh, dc)
            self.grads["db"] = 0 * self.grads["db"]
            return out
    r = check_cell("lstm", forward=Wrong, backward=Wrong, layout=lay, max_examples=N, seed=5)
    assert not r.ok and "db[" in str(r)
