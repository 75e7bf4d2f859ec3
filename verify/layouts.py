"""Weight-layout adapters: how a user's implementation stores a cell's parameters and how
its step functions are called.

The reference (``derive.kernels``) keys parameters by the seed's names (``W_xi``, ``W_hi``,
``b_i``, ... as in ``PARAMS``), row-vector batches: ``x`` (B, D), states (B, H). A layout
translates both ways and knows the user's calling convention:

* :class:`SeedLayout`: the seed's names, unpacked (the kernels' own API);
  ``forward(params, x, state) -> state`` and
  ``backward(params, x, state, dstate) -> (grads, dx, dstate_prev)``.
* :class:`TorchLayout`: PyTorch's packed state dict (``weight_ih_l0`` = rows of the gates
  stacked in PyTorch's order, ``i, f, g, o`` for the LSTM; two biases whose sum is the
  seed's bias), read from the cell's ``[torch]`` table;
  ``forward(x, state, weights) -> state`` and
  ``backward(x, state, weights, dstate) -> (grads, dx, dstate_prev)``.
* :class:`CS231nLayout`: CS231n-style packed ``Wx (D, kH)``, ``Wh (H, kH)``, ``b (kH,)``
  with the LSTM gate order ``i, f, o, g``;
  ``forward(x, *state, Wx, Wh, b) -> (*state_next, cache)`` and
  ``backward(*dstate_next, cache) -> (dx, *dstate_prev, dWx, dWh, db)``
  (``lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)`` and friends).

``state`` and ``dstate`` are tuples in the cell's ``STATE`` order (``h`` then ``c``).
"""
from __future__ import annotations

import numpy

import derive

from .cellarg import resolve_cell
from .strategies import param_shapes

__all__ = ["Layout", "SeedLayout", "TorchLayout", "CS231nLayout", "GradView", "CS231N_GATES",
           "layout_for"]


class GradView:
    """One block of a user's gradient and the seed parameter it must equal."""

    def __init__(self, label, param, array):
        self.label, self.param, self.array = label, param, array

    def __repr__(self):
        return f"GradView({self.label!r} -> {self.param})"


class Layout:
    """Base class: identity packing, seed calling convention."""
    name = "seed"

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
        return [GradView(f"d{k}", k, user_grads[k]) for k in self.param_names]

    # -- calling conventions -------------------------------------------------------------
    def call_forward(self, fn, user_params, x, state):
        """Run the user's forward; returns (new state tuple, context for backward)."""
        out = fn(user_params, x, tuple(state))
        return _as_states(out, len(self.states), "forward"), None

    def call_backward(self, fn, ctx, user_params, x, state, dstate):
        """Run the user's backward; returns (user grads dict, dx, dstate_prev tuple)."""
        out = fn(user_params, x, tuple(state), tuple(dstate))
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise TypeError(f"backward must return (grads, dx, dstate_prev), got {_kind(out)}")
        grads, dx, dprev = out
        return grads, dx, _as_states(dprev, len(self.states), "backward's dstate_prev")

    def describe(self) -> str:
        return f"{self.name} layout of {self.cell.name}"


class SeedLayout(Layout):
    """The seed's parameter names, unpacked: exactly the kernels' ``PARAMS``.

    ``forward(params, x, state) -> new state tuple``;
    ``backward(params, x, state, dstate) -> (grads, dx, dstate_prev)``. ``x`` is (B, D),
    ``state``/``dstate`` tuples of (B, H) arrays in ``STATE`` order."""
    name = "seed"


class TorchLayout(Layout):
    """PyTorch's packed ``weight_ih_l0``/``weight_hh_l0``/``bias_ih_l0``/``bias_hh_l0``.

    A seed bias listed under both PyTorch biases is their sum; ``to_user`` splits it as
    ``bias_ih = b/2 + 1/8`` and ``bias_hh = b/2 - 1/8`` so an implementation that ignores one
    of the two is caught.

    ``forward(x, state, weights) -> new state tuple``;
    ``backward(x, state, weights, dstate) -> (grads, dx, dstate_prev)``, ``grads`` keyed
    like ``weights``. ``x`` is (B, D), ``state``/``dstate`` tuples of (B, H) arrays."""
    name = "torch"

    def __init__(self, cell):
        super().__init__(cell)
        table = self.cell.torch
        if not table:
            raise ValueError(f"cell {self.cell.name!r} has no PyTorch layout ([torch] table); "
                             f"cells with one: "
                             + ", ".join(n for n in derive.cells() if derive.cell(n).torch))
        self.keys = {k: list(v) for k, v in table.items() if k not in ("module", "nonlinearity")}
        ih, hh = set(self.keys.get("bias_ih_l0", ())), set(self.keys.get("bias_hh_l0", ()))
        self.summed = ih & hh

    def to_user(self, params):
        out = {}
        for key, names in self.keys.items():
            blocks = []
            for n in names:
                v = numpy.asarray(params[n])
                if n in self.summed:
                    v = v / 2 + (0.125 if key == "bias_ih_l0" else -0.125)
                blocks.append(v)
            out[key] = numpy.concatenate(blocks, axis=0).astype(numpy.asarray(params[names[0]]).dtype)
        return out

    def _blocks(self, key, arr):
        H = self.cell_hidden(arr, key)
        return [(n, arr[j * H:(j + 1) * H], j * H, (j + 1) * H) for j, n in enumerate(self.keys[key])]

    def cell_hidden(self, arr, key):
        k = len(self.keys[key])
        rows = numpy.asarray(arr).shape[0]
        if rows % k:
            raise ValueError(f"{key} has {rows} rows, not a multiple of {k}")
        return rows // k

    def from_user(self, user):
        out = {}
        for key in self.keys:
            for n, block, _, _ in self._blocks(key, numpy.asarray(user[key])):
                out[n] = out[n] + block if n in out and n in self.summed else numpy.array(block, copy=True)
        return {k: out[k] for k in self.param_names}

    def grad_views(self, user_grads):
        views = []
        for key in self.keys:
            for n, block, lo, hi in self._blocks(key, numpy.asarray(user_grads[key])):
                views.append(GradView(f"d{key}[{lo}:{hi}]", n, block))
        return views

    def user_args(self, user_params):
        return {"weights": user_params}

    def call_forward(self, fn, user_params, x, state):
        return _as_states(fn(x, tuple(state), user_params), len(self.states), "forward"), None

    def call_backward(self, fn, ctx, user_params, x, state, dstate):
        out = fn(x, tuple(state), user_params, tuple(dstate))
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise TypeError(f"backward must return (grads, dx, dstate_prev), got {_kind(out)}")
        grads, dx, dprev = out
        return grads, dx, _as_states(dprev, len(self.states), "backward's dstate_prev")


#: CS231n's packing: (input matrix, recurrent matrix, bias) per gate, in CS231n's order.
CS231N_GATES = {
    "lstm": [("W_xi", "W_hi", "b_i"), ("W_xf", "W_hf", "b_f"), ("W_xo", "W_ho", "b_o"),
             ("W_xc", "W_hc", "b_c")],
    "rnn_tanh": [("W_xh", "W_hh", "b_h")],
    "rnn_sigmoid": [("W_xh", "W_hh", "b_h")],
    "rnn_relu": [("W_xh", "W_hh", "b_h")],
}


class CS231nLayout(Layout):
    """``Wx (D, kH)``, ``Wh (H, kH)``, ``b (kH,)``: the transposed gate matrices side by side,
    gate order ``i, f, o, g`` for the LSTM (``gates`` overrides the packing).

    ``forward(x, *state, Wx, Wh, b) -> (*new_state, cache)``;
    ``backward(*dstate, cache) -> (dx, *dstate_prev, dWx, dWh, db)``."""
    name = "cs231n"

    def __init__(self, cell, gates=None):
        super().__init__(cell)
        gates = gates if gates is not None else CS231N_GATES.get(self.cell.name)
        if gates is None:
            raise ValueError(f"no CS231n packing known for cell {self.cell.name!r} (known: "
                             f"{', '.join(CS231N_GATES)}); pass gates=[(W_x, W_h, b), ...]")
        covered = sorted(n for g in gates for n in g)
        if covered != sorted(self.param_names):
            raise ValueError(f"gates {gates} do not cover the parameters of "
                             f"{self.cell.name!r}: {', '.join(self.param_names)}")
        self.gates = [tuple(g) for g in gates]
        shapes, want = param_shapes(self.cell), (("H", "D"), ("H", "H"), ("H",))
        for g in self.gates:
            bad = [n for n, w in zip(g, want) if shapes[n] != w]
            if len(g) != 3 or bad:
                what = (f"{bad[0]} is {' x '.join(shapes[bad[0]])}" if bad
                        else f"{len(g)} parameters")
                raise ValueError(f"cannot lay out cell {self.cell.name!r} in the CS231n packing: "
                                 f"each gate is (W_x: H x D, W_h: H x H, b: H), gate {g} has {what}")

    def user_args(self, user_params):
        return {k: user_params[k] for k in ("Wx", "Wh", "b")}

    def to_user(self, params):
        Wx = numpy.concatenate([numpy.asarray(params[g[0]]).T for g in self.gates], axis=1)
        Wh = numpy.concatenate([numpy.asarray(params[g[1]]).T for g in self.gates], axis=1)
        b = numpy.concatenate([numpy.asarray(params[g[2]]) for g in self.gates], axis=0)
        return {"Wx": Wx, "Wh": Wh, "b": b}

    def _H(self, user):
        return numpy.asarray(user["Wh"]).shape[0]

    def from_user(self, user):
        H = self._H(user)
        out = {}
        for j, (wx, wh, b) in enumerate(self.gates):
            sl = slice(j * H, (j + 1) * H)
            out[wx] = numpy.array(numpy.asarray(user["Wx"])[:, sl].T, copy=True)
            out[wh] = numpy.array(numpy.asarray(user["Wh"])[:, sl].T, copy=True)
            out[b] = numpy.array(numpy.asarray(user["b"])[sl], copy=True)
        return {k: out[k] for k in self.param_names}

    def grad_views(self, user_grads):
        H = numpy.asarray(user_grads["dWh"]).shape[0]
        views = []
        for j, (wx, wh, b) in enumerate(self.gates):
            lo, hi = j * H, (j + 1) * H
            views.append(GradView(f"dWx[:, {lo}:{hi}].T", wx, numpy.asarray(user_grads["dWx"])[:, lo:hi].T))
            views.append(GradView(f"dWh[:, {lo}:{hi}].T", wh, numpy.asarray(user_grads["dWh"])[:, lo:hi].T))
            views.append(GradView(f"db[{lo}:{hi}]", b, numpy.asarray(user_grads["db"])[lo:hi]))
        return views

    def call_forward(self, fn, user_params, x, state):
        out = fn(x, *state, user_params["Wx"], user_params["Wh"], user_params["b"])
        n = len(self.states)
        if not isinstance(out, (tuple, list)) or len(out) != n + 1:
            raise TypeError(f"forward must return ({', '.join('next_' + s for s in self.states)}, "
                            f"cache), got {_kind(out)}")
        return _as_states(tuple(out[:n]), n, "forward"), out[n]

    def call_backward(self, fn, ctx, user_params, x, state, dstate):
        out = fn(*dstate, ctx)
        n = len(self.states)
        if not isinstance(out, (tuple, list)) or len(out) != n + 4:
            raise TypeError(f"backward must return (dx, {', '.join('dprev_' + s for s in self.states)}, "
                            f"dWx, dWh, db), got {_kind(out)}")
        dx, dprev, (dWx, dWh, db) = out[0], tuple(out[1:n + 1]), out[n + 1:]
        return {"dWx": dWx, "dWh": dWh, "db": db}, dx, _as_states(dprev, n, "backward's dprev")


def layout_for(cell, name="seed"):
    """A layout by name: ``seed``, ``torch`` or ``cs231n``."""
    table = {"seed": SeedLayout, "torch": TorchLayout, "cs231n": CS231nLayout}
    if name not in table:
        raise ValueError(f"unknown layout {name!r}; layouts: {', '.join(table)}")
    return table[name](cell)


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
