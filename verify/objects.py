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

Deep-Learning-from-Scratch-style layers (``TimeRNN(Wx, Wh, b, stateful=True)`` with
``self.params = [Wx, Wh, b]`` and ``self.grads = [dWx, dWh, db]``):

* ``init_args``: the constructor's positional arguments, each a key of ``base``'s user
  parameters (that case's array) or ``"D"`` / ``"H"`` (that case's sizes); ``init_kwargs``:
  its keyword arguments, literal values (``{"stateful": True}``). Without them a class is
  called with no arguments, and a class whose ``__init__`` requires some is a one-line error;
* ``order``: the parameters and the gradients are lists in this order of keys
  (``obj.params = [P[k] for k in order]``; ``obj.grads[j]`` is the gradient of ``order[j]``,
  named ``grads[j]`` in messages);
* ``state``: the cell states a stateful sequence layer reads from attributes: the checker
  sets them before ``obj.forward(xs)`` (``state=("h",)``: ``obj.h = h0``; a dict maps a
  state to another attribute name) and reads the final states from them afterwards; the
  states not listed start at 0. ``dstate``: where ``backward`` leaves the initial states'
  gradients (``("dh",)``: ``obj.dh``; a dict maps a state to its attribute); without it they
  are read from ``backward``'s return value as above.
"""
from __future__ import annotations

import copy
import inspect

import numpy

from .layout_base import GradView, Layout, _as_states
from .strategies import param_shapes, resolve

__all__ = ["ObjectLayout"]


class ObjectLayout(Layout):
    """See the module docstring."""

    def __init__(self, base, *, params="params", grads="grads", forward_method="forward",
                 backward_method="backward", grad_prefix="d", init_args=None, init_kwargs=None,
                 order=None, state=None, dstate=None, batch_first=None):
        if not isinstance(base, Layout):
            raise TypeError(f"base must be a verify layout, got {type(base).__name__}")
        self.base, self.cell, self.states = base, base.cell, base.states
        self.param_names, self.name = base.param_names, f"object({base.name})"
        self.params_attr, self.grads_attr = params, grads
        self.fwd, self.bwd, self.prefix = forward_method, backward_method, grad_prefix
        self.seq_batch_first = batch_first
        shapes = param_shapes(self.cell)
        keys = list(base.to_user({n: numpy.zeros(resolve(s, 2, 2)) for n, s in shapes.items()}))
        self.init_args = None if init_args is None else tuple(init_args)
        self.init_kwargs = None if init_kwargs is None else dict(init_kwargs)
        for a in self.init_args or ():
            if a not in keys and a not in ("D", "H"):
                raise ValueError(f"init_args names {a!r}, which is neither a parameter key of the "
                                 f"{base.name} layout ({', '.join(keys)}) nor D or H")
        self.order = None if order is None else tuple(order)
        if self.order is not None:
            if sorted(self.order) != sorted(keys):
                raise ValueError(f"order {list(self.order)} must list each parameter key of the "
                                 f"{base.name} layout once: {', '.join(keys)}")
            if params is None or grads is None:
                raise ValueError("order= keeps the parameters and gradients as lists: give "
                                 "params= and grads= attribute names")
        self.state_attrs = _attrs("state", state, self.states, "")
        self.dstate_attrs = _attrs("dstate", dstate, self.states, "d")

    def to_user(self, params):
        return self.base.to_user(params)

    def from_user(self, user):
        return self.base.from_user(user)

    def user_args(self, user_params):
        return {"params": user_params}

    def grad_views(self, user_grads):
        views = self.base.grad_views(user_grads)
        if self.order is None:
            return views
        by_len = sorted(enumerate(self.order), key=lambda jk: -len(jk[1]))

        def relabel(lbl):                      # "Wx[:, 3:6].T" -> "grads[0][:, 3:6].T"
            for j, k in by_len:
                if lbl == k or lbl.startswith((k + "[", k + ".", k + "+")):
                    return f"{self.grads_attr}[{j}]" + lbl[len(k):]
            return lbl
        return [GradView(relabel(v.label), v.param, v.array) for v in views]

    seq_convention = "object"

    @property
    def batch_axis(self):
        return getattr(self.base, "batch_axis", True)

    def vec_in(self, a):
        return self.base.vec_in(a)

    def vec_out(self, a):
        return self.base.vec_out(a)

    def grads_of(self, obj, user_params):
        """The parameter gradients the object keeps (``obj.<grads>``, a dict or with ``order``
        a list, or ``obj.d<key>``), as a dict."""
        if self.grads_attr is None:
            return {self.prefix + k: getattr(obj, self.prefix + k) for k in user_params}
        grads = getattr(obj, self.grads_attr)
        if self.order is None:
            return grads
        if not isinstance(grads, (list, tuple)) or len(grads) != len(self.order):
            raise TypeError(f"obj.{self.grads_attr} must be a list of {len(self.order)} gradients "
                            f"({', '.join(self.order)}), got {_what(grads)}")
        return dict(zip(self.order, grads))

    def _instance(self, fn):
        return not isinstance(fn, type) and (hasattr(fn, self.fwd) or hasattr(fn, self.bwd))

    def accepts(self, fn):
        """A class, a factory or an instance with the forward/backward methods; a class whose
        ``__init__`` requires arguments needs ``init_args``/``init_kwargs`` (one-line error)."""
        if isinstance(fn, type) and self.init_args is None and self.init_kwargs is None:
            try:
                need = [p.name for p in inspect.signature(fn).parameters.values()
                        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                               p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            except (TypeError, ValueError):     # no signature: let the call say
                need = []
            if need:
                raise TypeError(f"{fn.__name__}() needs argument(s) {', '.join(need)}: pass "
                                f"ObjectLayout(..., init_args=(...), init_kwargs={{...}}) or a factory")
        return callable(fn) or self._instance(fn)

    def _init_value(self, a, user_params):
        if a in user_params:
            return user_params[a]
        seed, sizes = self.base.from_user(user_params), {}
        for n, shape in param_shapes(self.cell).items():
            sizes.update(zip(shape, numpy.shape(seed[n])))
        return sizes[a]

    def make(self, factory, user_params):
        """A fresh object from ``factory`` (a class or factory: called, with ``init_args`` /
        ``init_kwargs``; an instance: a deep copy) with the parameters set on it."""
        if self._instance(factory):
            obj = copy.deepcopy(factory)
        else:
            args = [self._init_value(a, user_params) for a in self.init_args or ()]
            obj = factory(*args, **(self.init_kwargs or {}))
        if self.params_attr is None:
            for k, v in user_params.items():
                setattr(obj, k, v)
        elif self.order is not None:
            setattr(obj, self.params_attr, [user_params[k] for k in self.order])
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


def _what(obj):
    return f"a {type(obj).__name__} of {len(obj)}" if isinstance(obj, (list, tuple)) else type(obj).__name__


def _attrs(label, spec, states, prefix):
    """``{state: attribute}`` from a tuple of attribute names (``prefix + state`` each) or a dict."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        raise TypeError(f"{label} must be a tuple of names or a dict, got the string {spec!r}")
    table = dict(spec) if isinstance(spec, dict) else {
        (a[len(prefix):] if prefix and a.startswith(prefix) else a): a for a in spec}
    bad = [s for s in table if s not in states]
    if bad:
        raise ValueError(f"{label} names {bad[0]!r}, not a state of the cell ({', '.join(states)})")
    return table
