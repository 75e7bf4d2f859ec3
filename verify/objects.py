"""Class-based layers: an object with ``forward``/``backward`` methods that keeps its cache and
its gradients on ``self``, checked without a wrapper.

    check_cell("lstm", forward=MyLSTMCell, backward=MyLSTMCell,
               layout=ObjectLayout(CS231nLayout("lstm"), params=None, grads="grads"))

``forward`` and ``backward`` given to the check are the class (or any zero-argument factory);
for every case a fresh object is made and its parameters set: with ``params="params"`` as one
dict attribute (``obj.params = {...}``, keyed like ``base``'s user parameters), with
``params=None`` one attribute per key (``obj.Wx = ...``). Then, per step:

* ``obj.forward(x, *state) -> new state`` (a lone array for one state);
* ``obj.backward(*dstate) -> (dx, *dstate_prev)``; the parameter gradients are read from
  ``obj.<grads>`` (a dict keyed like ``base``'s gradient dict), or with ``grads=None`` from
  attributes ``obj.d<key>``.

The method names are ``forward_method`` / ``backward_method``. ``base`` (any layout) fixes the
parameter packing and names; only the calling convention is the object's.
"""
from __future__ import annotations

from .layouts import Layout, _as_states

__all__ = ["ObjectLayout"]


class ObjectLayout(Layout):
    """See the module docstring."""

    def __init__(self, base, *, params="params", grads="grads", forward_method="forward",
                 backward_method="backward", grad_prefix="d"):
        if not isinstance(base, Layout):
            raise TypeError(f"base must be a verify layout, got {type(base).__name__}")
        self.base, self.cell, self.states = base, base.cell, base.states
        self.param_names, self.name = base.param_names, f"object({base.name})"
        self.params_attr, self.grads_attr = params, grads
        self.fwd, self.bwd, self.prefix = forward_method, backward_method, grad_prefix

    def to_user(self, params):
        return self.base.to_user(params)

    def from_user(self, user):
        return self.base.from_user(user)

    def user_args(self, user_params):
        return {"params": user_params}

    def grad_views(self, user_grads):
        return self.base.grad_views(user_grads)

    def _make(self, factory, user_params):
        obj = factory()
        if self.params_attr is None:
            for k, v in user_params.items():
                setattr(obj, k, v)
        else:
            setattr(obj, self.params_attr, user_params)
        return obj

    def call_forward(self, fn, user_params, x, state):
        obj = self._make(fn, user_params)
        out = getattr(obj, self.fwd)(x, *state)
        return _as_states(out, len(self.states), f"{self.fwd}"), obj

    def call_backward(self, fn, ctx, user_params, x, state, dstate):
        obj = ctx
        if obj is None:                      # backward checked alone: run forward first
            obj = self._make(fn, user_params)
            getattr(obj, self.fwd)(x, *state)
        out = getattr(obj, self.bwd)(*dstate)
        n = len(self.states)
        if not isinstance(out, (tuple, list)) or len(out) != n + 1:
            raise TypeError(f"{self.bwd} must return (dx, {', '.join('dprev_' + s for s in self.states)})")
        if self.grads_attr is None:
            grads = {self.prefix + k: getattr(obj, self.prefix + k) for k in user_params}
        else:
            grads = getattr(obj, self.grads_attr)
        return grads, out[0], _as_states(tuple(out[1:]), n, f"{self.bwd}'s dstate_prev")
