"""The layout base class and the three step calling conventions a layout can use.

A layout translates the reference's parameters (the seed's names, ``derive.kernels``' ``PARAMS``;
row-vector batches ``x`` (B, D), states (B, H)) to a user's and back, and calls the user's step
functions. The conventions (``convention=`` of :class:`verify.packed.PackedLayout`):

* ``seed``: ``forward(params, x, state) -> state``,
  ``backward(params, x, state, dstate) -> (grads, dx, dstate_prev)``;
* ``torch``: ``forward(x, state, weights) -> state``,
  ``backward(x, state, weights, dstate) -> (grads, dx, dstate_prev)``;
* ``cs231n``: ``forward(x, *state, Wx, Wh, b) -> (*state_next, cache)``,
  ``backward(*dstate_next, cache) -> (dx, *dstate_prev, dWx, dWh, db)``.

``state`` and ``dstate`` are tuples in the cell's ``STATE`` order (``h`` then ``c``).
"""
from __future__ import annotations

import numpy

from .cellarg import resolve_cell
from .strategies import param_shapes

__all__ = ["Layout", "GradView", "STEP_CONVENTIONS"]


class GradView:
    """One block of a user's gradient and the seed parameter it must equal."""

    def __init__(self, label, param, array):
        self.label, self.param, self.array = label, param, array

    @property
    def what(self):
        """How a message names the block: the user's key (and slice), then the cell's
        parameter in parentheses when that is another name (``grad_Whh (W_hh)``)."""
        return self.label if self.label == self.param else f"{self.label} ({self.param})"

    def __repr__(self):
        return f"GradView({self.label!r} -> {self.param})"


def _kind(out):
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)}"
    return type(out).__name__


def _as_states(out, n, what):
    """A state tuple from a user's return value (a lone array is accepted when n == 1)."""
    if n == 1 and not isinstance(out, (tuple, list)):
        out = (out,)
    if not isinstance(out, (tuple, list)) or len(out) != n:
        raise TypeError(f"{what} must return {n} state array(s), got {_kind(out)}")
    return tuple(out)


def _three(out):
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise TypeError(f"backward must return (grads, dx, dstate_prev), got {_kind(out)}")
    return out


def _seed_fwd(L, fn, P, x, state):
    return _as_states(fn(P, x, tuple(state)), len(L.states), "forward"), None


def _seed_bwd(L, fn, ctx, P, x, state, dstate):
    grads, dx, dprev = _three(fn(P, x, tuple(state), tuple(dstate)))
    return grads, dx, _as_states(dprev, len(L.states), "backward's dstate_prev")


def _torch_fwd(L, fn, P, x, state):
    return _as_states(fn(x, tuple(state), P), len(L.states), "forward"), None


def _torch_bwd(L, fn, ctx, P, x, state, dstate):
    grads, dx, dprev = _three(fn(x, tuple(state), P, tuple(dstate)))
    return grads, dx, _as_states(dprev, len(L.states), "backward's dstate_prev")


def _cs_args(L, P):
    return [P[L.names[k]] for k in ("Wx", "Wh", "b")]


def _cs_fwd(L, fn, P, x, state):
    out, n = fn(x, *state, *_cs_args(L, P)), len(L.states)
    if not isinstance(out, (tuple, list)) or len(out) != n + 1:
        raise TypeError(f"forward must return ({', '.join('next_' + s for s in L.states)}, "
                        f"cache), got {_kind(out)}")
    return _as_states(tuple(out[:n]), n, "forward"), out[n]


def _cs_bwd(L, fn, ctx, P, x, state, dstate):
    out, n = fn(*dstate, ctx), len(L.states)
    if not isinstance(out, (tuple, list)) or len(out) != n + 4:
        raise TypeError(f"backward must return (dx, {', '.join('dprev_' + s for s in L.states)}, "
                        f"dWx, dWh, db), got {_kind(out)}")
    dx, dprev, (dWx, dWh, db) = out[0], tuple(out[1:n + 1]), out[n + 1:]
    g = {"d" + L.names[k]: v for k, v in zip(("Wx", "Wh", "b"), (dWx, dWh, db))}
    return g, dx, _as_states(dprev, n, "backward's dprev")


#: name -> (user_args(layout, P), call_forward, call_backward)
STEP_CONVENTIONS = {
    "seed": (lambda L, P: {"params": P}, _seed_fwd, _seed_bwd),
    "torch": (lambda L, P: {"weights": P}, _torch_fwd, _torch_bwd),
    "cs231n": (lambda L, P: dict(zip(("Wx", "Wh", "b"), _cs_args(L, P))), _cs_fwd, _cs_bwd),
}


class Layout:
    """Base class: identity packing, seed calling convention, row vectors with a batch axis."""
    name = "seed"
    batch_axis = True

    def __init__(self, cell):
        """``cell``: a built-in cell's name, a :class:`derive.Cell` or a ``.toml`` spec path."""
        self.cell = resolve_cell(cell)
        self.states = tuple(self.cell.states)
        self.param_names = list(param_shapes(self.cell))

    # -- parameters ----------------------------------------------------------------------
    def to_user(self, params: dict) -> dict:
        """Seed-named parameters -> the user's arrays (fresh copies)."""
        return {k: numpy.array(params[k], copy=True) for k in self.param_names}

    def from_user(self, user: dict) -> dict:
        """The user's arrays -> seed-named parameters."""
        return {k: numpy.array(user[k], copy=True) for k in self.param_names}

    def user_args(self, user_params) -> dict:
        """The parameters as the user's functions receive them, keyed by how a message
        names them (``params``, one dict argument)."""
        return {"params": user_params}

    def grad_views(self, user_grads) -> list:
        """The user's gradients cut into blocks, each labelled and paired with the seed
        parameter whose gradient it must equal."""
        return [GradView(k, k, user_grads[k]) for k in self.param_names]

    # -- vectors ---------------------------------------------------------------------------
    def vec_in(self, a):
        """A reference array (..., B, n) as the user's code takes it (identity: row vectors)."""
        return a

    def vec_out(self, a):
        """A user's array back to the reference's (..., B, n)."""
        return a

    # -- calling conventions -------------------------------------------------------------
    def call_forward(self, fn, user_params, x, state):
        """Run the user's forward; returns (new state tuple, context for backward)."""
        return _seed_fwd(self, fn, user_params, x, state)

    def call_backward(self, fn, ctx, user_params, x, state, dstate):
        """Run the user's backward; returns (user grads dict, dx, dstate_prev tuple)."""
        return _seed_bwd(self, fn, ctx, user_params, x, state, dstate)

    def accepts(self, fn) -> bool:
        """Can ``fn`` be given as forward/backward? (A function; objects: ObjectLayout.)"""
        return callable(fn)

    def describe(self) -> str:
        return f"{self.name} layout of {self.cell.name}"
