"""Class-based layers: an object with ``forward``/``backward`` methods that keeps its cache and
its gradients on ``self``, checked without a wrapper.

    check_cell("lstm", forward=MyLSTMCell, backward=MyLSTMCell,
               layout=ObjectLayout(CS231nLayout("lstm"), params=None, grads="grads"))

``forward`` and ``backward`` given to the check are the class (or any zero-argument factory),
or an instance (deep-copied per case; the instance itself is never called). For every case a
fresh object is made, so caches and gradients an object keeps on ``self`` across calls (a
stack of caches, ``self.dW += ...``) start empty, and backward always runs on the object whose
forward ran on the same case (forward is run first when backward is checked alone). Its
parameters are set: with ``params="params"`` as one
dict attribute (``obj.params = {...}``, keyed like ``base``'s user parameters), with
``params=None`` one attribute per key (``obj.Wx = ...``). Then, per step:

* ``obj.forward(x, *state) -> new state`` (a lone array for one state);
* ``obj.backward(*dstate) -> (dx, *dstate_prev)``; the parameter gradients are read from
  ``obj.<grads>`` (a dict keyed like ``base``'s gradient dict), or with ``grads=None`` from
  attributes ``obj.d<key>``.

Whole sequences (:func:`verify.check_sequence`): ``obj.forward(xs, *state0) -> hs`` (or
``(hs, final_state)``), ``obj.backward(dhs) -> (dxs, *dstate0)`` (or ``dxs`` alone).

The method names are ``forward_method`` / ``backward_method``. ``base`` (any layout) fixes the
parameter packing and names; only the calling convention is the object's.
"""
from __future__ import annotations

import copy

from .layout_base import Layout, _as_states

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

    seq_convention = "object"

    @property
    def batch_axis(self):
        return getattr(self.base, "batch_axis", True)

    def vec_in(self, a):
        return self.base.vec_in(a)

    def vec_out(self, a):
        return self.base.vec_out(a)

    def grads_of(self, obj, user_params):
        """The parameter gradients the object keeps (``obj.<grads>`` or ``obj.d<key>``)."""
        if self.grads_attr is None:
            return {self.prefix + k: getattr(obj, self.prefix + k) for k in user_params}
        return getattr(obj, self.grads_attr)

    def accepts(self, fn):
        """A class, a factory or an instance with the forward/backward methods."""
        return callable(fn) or hasattr(fn, self.fwd) or hasattr(fn, self.bwd)

    def make(self, factory, user_params):
        """A fresh object from ``factory`` (a class or factory: called; an instance: a deep
        copy) with the parameters set on it."""
        instance = not isinstance(factory, type) and (hasattr(factory, self.fwd)
                                                       or hasattr(factory, self.bwd))
        obj = copy.deepcopy(factory) if instance else factory()
        if self.params_attr is None:
            for k, v in user_params.items():
                setattr(obj, k, v)
        else:
            setattr(obj, self.params_attr, user_params)
        return obj

    def call_forward(self, fn, user_params, x, state):
        obj = self.make(fn, user_params)
        out = getattr(obj, self.fwd)(self.vec_in(x), *(self.vec_in(s) for s in state))
        return tuple(self.vec_out(s) for s in _as_states(out, len(self.states), f"{self.fwd}")), obj

    def call_backward(self, fn, ctx, user_params, x, state, dstate):
        obj = ctx
        if obj is None:                      # backward checked alone: run forward first
            obj = self.make(fn, user_params)
            getattr(obj, self.fwd)(self.vec_in(x), *(self.vec_in(s) for s in state))
        out = getattr(obj, self.bwd)(*(self.vec_in(s) for s in dstate))
        n = len(self.states)
        if not isinstance(out, (tuple, list)) or len(out) != n + 1:
            raise TypeError(f"{self.bwd} must return (dx, {', '.join('dprev_' + s for s in self.states)})")
        dprev = _as_states(tuple(out[1:]), n, f"{self.bwd}'s dstate_prev")
        return (self.grads_of(obj, user_params), self.vec_out(out[0]),
                tuple(self.vec_out(s) for s in dprev))
