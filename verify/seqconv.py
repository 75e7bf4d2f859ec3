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
* ``object`` (:class:`~verify.objects.ObjectLayout`): ``obj.forward(xs, *state0) -> hs``,
  ``obj.backward(dhs) -> (dxs, *dstate0)``, gradients on the object;
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


def _tm(a, batch_first, layout=None):
    """Time-major row vectors from the user's array (batch_first: swap the first two axes;
    then the layout's ``vec_out``: columns or no batch axis)."""
    if a is None:
        return None
    a = numpy.swapaxes(numpy.asarray(a), 0, 1) if batch_first else a
    return layout.vec_out(a) if layout is not None else a


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
        xs = self.layout.vec_in(xs)
        return numpy.ascontiguousarray(numpy.swapaxes(xs, 0, 1)) if self.batch_first else xs

    def user_s(self, states):
        """States (B, H) as the user's code takes them (columns, or 1-D without a batch axis)."""
        return None if states is None else tuple(self.layout.vec_in(s) for s in states)

    def ref_s(self, states):
        return None if states is None else tuple(
            None if s is None else self.layout.vec_out(numpy.asarray(s)) for s in states)

    def forward_args(self, user_params, xs, state0):
        """{label: object} of everything handed to forward (for the in-place check)."""
        return {**self.layout.user_args(user_params), "xs": xs, "state0": state0}

    def call_forward(self, fn, user_params, xs, state0):
        out = fn(user_params, xs, self.user_s(state0))
        if not isinstance(out, (tuple, list)) or len(out) not in (2, 3):
            raise TypeError("forward must return (hs, cache) or (hs, final_state, cache)")
        final = _states(out[1], len(self.states)) if len(out) == 3 else None
        return _tm(out[0], self.batch_first, self.layout), self.ref_s(final), out[-1]

    def backward_args(self, user_params, dhs, dfinal):
        return {**self.layout.user_args(user_params), "dhs": dhs, "dfinal": dfinal}

    def call_backward(self, fn, ctx, user_params, xs, state0, dhs, dfinal):
        out = fn(user_params, ctx, dhs, self.user_s(dfinal))
        if not isinstance(out, (tuple, list)) or len(out) not in (2, 3):
            raise TypeError("backward must return (grads, dstate0) or (grads, dstate0, dxs)")
        dxs = _tm(out[2], self.batch_first, self.layout) if len(out) == 3 else None
        return out[0], dxs, self.ref_s(_states(out[1], len(self.states)))


class CS231nConvention(Convention):
    """CS231n's ``rnn_forward``/``lstm_forward`` (batch-major, h0 only)."""
    name = "cs231n"
    takes_state = ("h",)
    final_upstream = False

    def forward_args(self, user_params, xs, state0):
        return {"x": xs, "h0": state0[0], **self.layout.user_args(user_params)}

    def call_forward(self, fn, user_params, xs, state0):
        out = fn(xs, self.user_s(state0)[0], *self.layout.user_args(user_params).values())
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError("forward must return (h, cache)")
        return _tm(out[0], self.batch_first, self.layout), None, out[1]

    def backward_args(self, user_params, dhs, dfinal):
        return {"dh": dhs}

    def call_backward(self, fn, ctx, user_params, xs, state0, dhs, dfinal):
        out = fn(dhs, ctx)
        if not isinstance(out, (tuple, list)) or len(out) != 5:
            raise TypeError("backward must return (dx, dh0, dWx, dWh, db)")
        dx, dh0, dWx, dWh, db = out
        n = len(self.states)
        dprev = None if dh0 is None else self.ref_s((dh0,)) + (None,) * (n - 1)
        names = getattr(self.layout, "names", {"Wx": "Wx", "Wh": "Wh", "b": "b"})
        grads = {"d" + names[k]: v for k, v in zip(("Wx", "Wh", "b"), (dWx, dWh, db))}
        return grads, _tm(dx, self.batch_first, self.layout), dprev


class TorchConvention(Convention):
    """PyTorch-style ``(output, h_n)`` returns; ``weights`` keyed ``weight_ih_l0`` ..."""
    name = "torch"

    def _s0(self, state0):
        state0 = self.user_s(state0)
        if state0 is None:
            return None
        return state0[0] if len(self.states) == 1 else tuple(state0)

    def forward_args(self, user_params, xs, state0):
        return {"x": xs, "state0": state0, **self.layout.user_args(user_params)}

    def call_forward(self, fn, user_params, xs, state0):
        out = fn(xs, self._s0(state0), user_params)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError("forward must return (output, h_n) or (output, (h_n, c_n))")
        return (_tm(out[0], self.batch_first, self.layout),
                self.ref_s(_states(out[1], len(self.states))), None)

    def backward_args(self, user_params, dhs, dfinal):
        return {"doutput": dhs, "dstate_n": dfinal}

    def call_backward(self, fn, ctx, user_params, xs, state0, dhs, dfinal):
        out = fn(xs, self._s0(state0), user_params, dhs, self._s0(dfinal))
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise TypeError("backward must return (grads, dx, dstate0)")
        return (out[0], _tm(out[1], self.batch_first, self.layout),
                self.ref_s(_states(out[2], len(self.states))))


class ObjectConvention(Convention):
    """Class-based layers (:class:`~verify.objects.ObjectLayout`): a fresh object per case,
    ``obj.forward(xs, *state0) -> hs`` (or ``(hs, final_state)``), ``obj.backward(dhs) ->
    (dxs, *dstate0)`` (or ``dxs`` alone), the parameter gradients read from the object.
    Stateful layers (``ObjectLayout(state=...)``): the initial states are set as attributes,
    ``obj.forward(xs) -> hs``, the final states read back from the same attributes, the
    initial states' gradients from the ``dstate`` attributes when given."""
    name = "object"
    final_upstream = False

    def __init__(self, layout, batch_first=False):
        super().__init__(layout, batch_first)
        if layout.state_attrs:
            self.takes_state = tuple(s for s in self.states if s in layout.state_attrs)

    def forward_args(self, user_params, xs, state0):
        return {"params": user_params, "xs": xs, "state0": state0}

    def _forward(self, obj, xs, state0):
        attrs = self.layout.state_attrs
        if attrs:
            for s, v in zip(self.states, self.user_s(state0)):
                if s in attrs:
                    setattr(obj, attrs[s], v)
            hs = getattr(obj, self.layout.fwd)(xs)
            final = (tuple(getattr(obj, attrs[s], None) for s in self.states)
                     if all(s in attrs for s in self.states) else None)
            return hs, self.ref_s(final)
        out = getattr(obj, self.layout.fwd)(xs, *self.user_s(state0))
        if isinstance(out, (tuple, list)) and len(out) == 2:
            return out[0], self.ref_s(_states(out[1], len(self.states)))
        return out, None

    def call_forward(self, fn, user_params, xs, state0):
        obj = self.layout.make(fn, user_params)
        hs, final = self._forward(obj, xs, state0)
        return _tm(hs, self.batch_first, self.layout), final, obj

    def backward_args(self, user_params, dhs, dfinal):
        return {"dhs": dhs}

    def call_backward(self, fn, ctx, user_params, xs, state0, dhs, dfinal):
        obj = ctx
        if obj is None:                      # backward checked alone: run forward first
            obj = self.layout.make(fn, user_params)
            self._forward(obj, xs, state0)
        out = getattr(obj, self.layout.bwd)(dhs)
        if self.layout.dstate_attrs:
            d0 = self.ref_s(tuple(getattr(obj, self.layout.dstate_attrs[s], None)
                                  if s in self.layout.dstate_attrs else None for s in self.states))
            dxs = out[0] if isinstance(out, (tuple, list)) else out
        elif isinstance(out, (tuple, list)):
            dxs, d0 = out[0], (self.ref_s(_states(tuple(out[1:]), len(self.states)))
                               if len(out) > 1 else None)
        else:
            dxs, d0 = out, None
        return self.layout.grads_of(obj, user_params), _tm(dxs, self.batch_first, self.layout), d0


def convention_for(layout, batch_first=None):
    """The sequence convention of ``layout`` (by its ``name``); ``batch_first`` defaults to
    the convention's own (CS231n: batch-major; seed, torch: time-major)."""
    table = {"seed": Convention, "cs231n": CS231nConvention, "torch": TorchConvention,
             "object": ObjectConvention}
    cls = table.get(getattr(layout, "seq_convention", layout.name))
    if cls is None:
        raise ValueError(f"layout {layout.name!r} has no sequence convention; known: "
                         f"{', '.join(table)}")
    if batch_first is None:                  # the layout's own default (ObjectLayout), else the convention's
        batch_first = getattr(layout, "seq_batch_first", None)
    bf = (cls is CS231nConvention) if batch_first is None else bool(batch_first)
    bf = bf and getattr(layout, "batch_axis", True)     # no batch axis: (T, n) sequences
    return cls(layout, bf)
