"""How :func:`verify.check_sequence` calls a user's whole-sequence functions, per layout.

Internally a sequence is time-major: ``xs`` (T, B, D), ``hs``/``dhs`` (T, B, H), states
(B, H) tuples in the cell's ``STATE`` order. ``batch_first=True`` hands the user (B, T, ·)
arrays instead (and reads theirs back the same way). The conventions:

* ``seed`` (:class:`~verify.layouts.SeedLayout`, the kernels' own API):
  ``forward(params, xs, state0) -> (hs, cache)`` (or ``(hs, final_state, cache)``) and
  ``backward(params, cache, dhs, dfinal) -> (grads, dstate0)`` or ``(grads, dstate0, dxs)``;
* ``cs231n`` (:class:`~verify.layouts.CS231nLayout`, batch-major): ``rnn_forward(x, h0, Wx,
  Wh, b) -> (h, cache)``, ``rnn_backward(dh, cache) -> (dx, dh0, dWx, dWh, db)``; the LSTM's
  ``lstm_forward`` takes ``h0`` only (c0 = 0) and no gradient reaches the final states;
* ``torch`` (:class:`~verify.layouts.TorchLayout`, time-major by default as PyTorch):
  ``forward(x, state0, weights) -> (output, h_n)`` (``(output, (h_n, c_n))`` for two states;
  ``state0`` is ``h0`` or ``(h0, c0)``) and ``backward(x, state0, weights, doutput, dstate_n)
  -> (grads, dx, dstate0)``.

Each convention returns, after the forward: ``(hs, final or None, ctx)``; after the
backward: ``(user grads, dxs or None, dstate0 tuple or None)``; ``None`` means "not
returned" (a missing output, named unless skipped).
"""
from __future__ import annotations

import numpy

__all__ = ["Convention", "convention_for"]


def _tm(a, batch_first):
    """Time-major from the user's array (batch_first: swap the first two axes)."""
    return None if a is None else (numpy.swapaxes(numpy.asarray(a), 0, 1) if batch_first else a)


def _states(obj, n):
    if obj is None:
        return None
    if n == 1 and not isinstance(obj, (tuple, list)):
        return (obj,)
    if not isinstance(obj, (tuple, list)) or len(obj) != n:
        raise TypeError(f"expected {n} state array(s), got {type(obj).__name__}")
    return tuple(obj)


class Convention:
    """Base: the seed (kernels') calling convention."""
    name = "seed"
    takes_state = ("h", "c")        # initial states the user's forward takes (others are 0)
    final_upstream = True           # can a gradient on the final states be passed?
    zero_upstream = frozenset()     # states whose final upstream gradient is kept at 0

    def __init__(self, layout, batch_first=False):
        self.layout, self.batch_first = layout, batch_first
        self.states = layout.states

    def user_x(self, xs):
        return numpy.ascontiguousarray(numpy.swapaxes(xs, 0, 1)) if self.batch_first else xs

    def forward_args(self, user_params, xs, state0):
        """{label: object} of everything handed to forward (for the in-place check)."""
        return {**self.layout.user_args(user_params), "xs": xs, "state0": state0}

    def call_forward(self, fn, user_params, xs, state0):
        out = fn(user_params, xs, state0)
        if not isinstance(out, (tuple, list)) or len(out) not in (2, 3):
            raise TypeError("forward must return (hs, cache) or (hs, final_state, cache)")
        final = _states(out[1], len(self.states)) if len(out) == 3 else None
        return _tm(out[0], self.batch_first), final, out[-1]

    def backward_args(self, user_params, dhs, dfinal):
        return {**self.layout.user_args(user_params), "dhs": dhs, "dfinal": dfinal}

    def call_backward(self, fn, ctx, user_params, xs, state0, dhs, dfinal):
        out = fn(user_params, ctx, dhs, dfinal)
        if not isinstance(out, (tuple, list)) or len(out) not in (2, 3):
            raise TypeError("backward must return (grads, dstate0) or (grads, dstate0, dxs)")
        dxs = _tm(out[2], self.batch_first) if len(out) == 3 else None
        return out[0], dxs, _states(out[1], len(self.states))


class CS231nConvention(Convention):
    """CS231n's ``rnn_forward``/``lstm_forward`` (batch-major, h0 only)."""
    name = "cs231n"
    takes_state = ("h",)
    final_upstream = False

    def forward_args(self, user_params, xs, state0):
        return {"x": xs, "h0": state0[0], **self.layout.user_args(user_params)}

    def call_forward(self, fn, user_params, xs, state0):
        out = fn(xs, state0[0], user_params["Wx"], user_params["Wh"], user_params["b"])
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError("forward must return (h, cache)")
        return _tm(out[0], self.batch_first), None, out[1]

    def backward_args(self, user_params, dhs, dfinal):
        return {"dh": dhs}

    def call_backward(self, fn, ctx, user_params, xs, state0, dhs, dfinal):
        out = fn(dhs, ctx)
        if not isinstance(out, (tuple, list)) or len(out) != 5:
            raise TypeError("backward must return (dx, dh0, dWx, dWh, db)")
        dx, dh0, dWx, dWh, db = out
        n = len(self.states)
        dprev = None if dh0 is None else (dh0,) + (None,) * (n - 1)
        return {"dWx": dWx, "dWh": dWh, "db": db}, _tm(dx, self.batch_first), dprev


class TorchConvention(Convention):
    """PyTorch-style ``(output, h_n)`` returns; ``weights`` keyed ``weight_ih_l0`` ..."""
    name = "torch"

    def _s0(self, state0):
        return state0[0] if len(self.states) == 1 else tuple(state0)

    def forward_args(self, user_params, xs, state0):
        return {"x": xs, "state0": state0, **self.layout.user_args(user_params)}

    def call_forward(self, fn, user_params, xs, state0):
        out = fn(xs, self._s0(state0), user_params)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError("forward must return (output, h_n) or (output, (h_n, c_n))")
        return _tm(out[0], self.batch_first), _states(out[1], len(self.states)), None

    def backward_args(self, user_params, dhs, dfinal):
        return {"doutput": dhs, "dstate_n": dfinal}

    def call_backward(self, fn, ctx, user_params, xs, state0, dhs, dfinal):
        out = fn(xs, self._s0(state0), user_params, dhs, self._s0(dfinal))
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise TypeError("backward must return (grads, dx, dstate0)")
        return out[0], _tm(out[1], self.batch_first), _states(out[2], len(self.states))


def convention_for(layout, batch_first=None):
    """The sequence convention of ``layout`` (by its ``name``); ``batch_first`` defaults to
    the convention's own (CS231n: batch-major; seed, torch: time-major)."""
    table = {"seed": Convention, "cs231n": CS231nConvention, "torch": TorchConvention}
    cls = table.get(getattr(layout, "seq_convention", layout.name))
    if cls is None:
        raise ValueError(f"layout {layout.name!r} has no sequence convention; known: "
                         f"{', '.join(table)}")
    bf = (cls is CS231nConvention) if batch_first is None else bool(batch_first)
    return cls(layout, bf)
