"""ObjectLayout and layers that keep caches and gradients on ``self`` across calls: a fresh
object per case (a class or factory is called, an instance deep-copied), backward on the object
whose forward ran on the same case, forward re-run first when backward is checked alone.
The layers wrap the CS231n plants, which test_verify_conformance proves by central differences."""
import numpy
import pytest

from verify import CS231nLayout, ObjectLayout, check_cell, check_sequence

from test_layout_kinds import SeqRNN, _bugged
from test_verify_conformance import lstm_step_backward, lstm_step_forward

N = 20
LAY = ObjectLayout(CS231nLayout("lstm"), params=None, grads="grads")
OBJ = ObjectLayout(CS231nLayout("rnn_tanh"))


class StackLayer:
    """An LSTM step layer as used inside a time loop: every forward pushes its cache on
    ``self.caches``, every backward pops one and adds its gradients into ``self.grads``."""

    def __init__(self):
        self.caches, self.grads = [], None

    def forward(self, x, h, c):
        nh, nc, cache = lstm_step_forward(x, h, c, self.Wx, self.Wh, self.b)
        self.caches.append(cache)
        return nh, nc

    def backward(self, dh, dc):
        dx, dprev_h, dprev_c, dWx, dWh, db = lstm_step_backward(dh, dc, self.caches.pop())
        new = {"dWx": dWx, "dWh": dWh, "db": db}
        self.grads = new if self.grads is None else {k: self.grads[k] + new[k] for k in new}
        return dx, dprev_h, dprev_c


def test_the_stack_layer_is_the_plant_it_wraps_and_accumulates_across_calls():
    rng = numpy.random.default_rng(0)
    D, H, B = 3, 2, 2
    o = StackLayer()
    o.Wx, o.Wh, o.b = rng.uniform(-1, 1, (D, 4 * H)), rng.uniform(-1, 1, (H, 4 * H)), rng.uniform(-1, 1, 4 * H)
    x, h, c = rng.uniform(-1, 1, (B, D)), rng.uniform(-1, 1, (B, H)), rng.uniform(-1, 1, (B, H))
    dh, dc = rng.uniform(-1, 1, (B, H)), rng.uniform(-1, 1, (B, H))
    want = lstm_step_backward(dh, dc, lstm_step_forward(x, h, c, o.Wx, o.Wh, o.b)[2])
    for _ in range(2):
        o.forward(x, h, c)
        o.backward(dh, dc)
    numpy.testing.assert_allclose(o.grads["dWx"], 2 * want[3])    # kept across calls


def test_a_layer_keeping_caches_and_gradients_across_calls_passes_as_class_or_instance():
    assert check_cell("lstm", forward=StackLayer, backward=StackLayer, layout=LAY,
                      max_examples=N, seed=5).ok
    inst = StackLayer()
    r = check_cell("lstm", forward=inst, backward=inst, layout=LAY, max_examples=N, seed=5)
    assert r.ok, str(r)
    assert inst.caches == [] and inst.grads is None           # the instance itself is not used


def test_backward_checked_alone_runs_forward_on_the_same_case_first():
    r = check_cell("lstm", backward=StackLayer(), layout=LAY, max_examples=N, seed=5)
    assert r.ok, str(r)


def test_one_object_shared_by_every_case_is_caught_not_trusted():
    """A factory that hands back the same object makes its gradients add up over cases:
    the check must fail (it would pass only if cases were run on fresh objects by luck)."""
    shared = StackLayer()
    r = check_cell("lstm", forward=lambda: shared, backward=lambda: shared, layout=LAY,
                   max_examples=N, seed=5)
    assert not r.ok, str(r)


def test_a_sequence_layer_instance_is_copied_per_case():
    inst = SeqRNN()
    assert check_sequence("rnn_tanh", inst, inst, layout=OBJ, max_examples=N, seed=1).ok
    assert not hasattr(inst, "xs") and not hasattr(inst, "grads")
    bad = _bugged("assign_last")()
    r = check_sequence("rnn_tanh", bad, bad, layout=OBJ, max_examples=N, seed=1)
    assert not r.ok and "contribution (step T-1)" in str(r), str(r)


def test_something_that_is_neither_a_factory_nor_a_layer_is_a_one_line_error():
    with pytest.raises(TypeError, match="forward must be a function, got int"):
        check_cell("lstm", forward=42, layout=LAY)
    with pytest.raises(TypeError, match="backward must be a function, got int"):
        check_sequence("rnn_tanh", None, 42, layout=OBJ)
