"""Activations computed in place: observed by spying on the generated module's primitive
(how often it runs per step, over which blocks, with which values), not by reading its text."""
import numpy

import derive
from derive.codegen.module import generate

T, B, D, H = 3, 2, 3, 4


def _in_place_calls(monkeypatch, name, fn):
    """Run the forward pass of ``name``'s kernels over T steps, recording the shape of every
    call ``fn(x, out=x)`` (an activation computed in place, out over x's memory) and the
    values it received."""
    k = derive.kernels(name)
    calls, real = [], getattr(k, fn)

    def spy(x, out=None):
        if out is not None and numpy.shares_memory(x, out):
            calls.append((x.shape, x.copy()))
        return real(x, out=out)

    monkeypatch.setattr(k, fn, spy)
    p = k.init_params(D, H, rng=0)
    xs = numpy.random.default_rng(1).standard_normal((T, B, D))
    return k, p, xs, k.forward(p, xs)[1], calls


def test_gates_are_activated_in_place_once_per_function(monkeypatch):
    """LSTM: the recurrent products are laid out sigmoid gates first (i, f, o) then g, so the
    forward loop calls sigmoid once per step over the three gates (3, B, H) and tanh once
    over g, in place, and the gate values backward reads are contiguous (B, H) blocks."""
    from derive.core.primitives import Sigmoid, Tanh
    plan = generate(derive.cell("lstm")).plan
    (step_group,) = [g for g in plan.groups if not g.hoisted]
    assert [s.activation.function for s in step_group.slots] == [Sigmoid] * 3 + [Tanh]
    _, _, _, cache, calls = _in_place_calls(monkeypatch, "lstm", "sigmoid")
    assert [shape for shape, _ in calls] == [(3, B, H)] * T
    _, _, _, _, tanh_calls = _in_place_calls(monkeypatch, "lstm", "tanh")
    assert [shape for shape, _ in tanh_calls] == [(1, B, H)] * T
    for gate in "ifgo":
        assert cache["V"][gate].shape == (T, B, H) and cache["V"][gate][0].flags.c_contiguous


def test_in_place_activation_needs_an_unused_preactivation(monkeypatch):
    """Peephole LSTM: i and f add W_c* c_{t-1} before their sigmoid (known before the step's
    math), so one in-place sigmoid per step sees the two preactivations including that term
    (checked against W x + U h_prev + b + W_c* c_prev from the cache); o reads the new c, so
    it is computed in the math function. ReLU RNN: backward needs the preactivation a itself
    (relu' has no output form), so nothing is done in place."""
    k, p, xs, cache, calls = _in_place_calls(monkeypatch, "lstm_peephole", "sigmoid")
    assert [shape for shape, _ in calls] == [(2, B, H)] * T
    h_prev, c_prev = cache["S"][0][0], cache["S"][1][0]
    for j, gate in enumerate("if"):
        pre = (xs[0] @ p[f"W_x{gate}"].T + h_prev @ p[f"W_h{gate}"].T + p[f"b_{gate}"]
               + p[f"W_c{gate}"] * c_prev)
        numpy.testing.assert_allclose(calls[0][1][j], pre, rtol=1e-12, atol=1e-12)
    relu = generate(derive.cell("rnn_relu")).plan
    assert not any(s.activation for g in relu.groups for s in g.slots)
    assert not any(g.gate_major for g in relu.groups)
