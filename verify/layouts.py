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

import derive

from .cellarg import resolve_cell
from .layout_base import GradView, Layout, _as_states, _kind  # noqa: F401 - re-exported
from .packed import PackedLayout
from .strategies import param_shapes

__all__ = ["Layout", "SeedLayout", "TorchLayout", "CS231nLayout", "GradView", "CS231N_GATES",
           "layout_for"]


class SeedLayout(PackedLayout):
    """The seed's parameter names, unpacked: exactly the kernels' ``PARAMS``
    (``PackedLayout(cell, packing="per_gate")``).

    ``forward(params, x, state) -> new state tuple``;
    ``backward(params, x, state, dstate) -> (grads, dx, dstate_prev)``. ``x`` is (B, D),
    ``state``/``dstate`` tuples of (B, H) arrays in ``STATE`` order."""

    def __init__(self, cell):
        super().__init__(cell, packing="per_gate", name="seed")


class TorchLayout(PackedLayout):
    """PyTorch's packed ``weight_ih_l0``/``weight_hh_l0``/``bias_ih_l0``/``bias_hh_l0``: the
    cell's ``[torch]`` table as a ``PackedLayout`` dict packing, torch calling convention.

    A seed bias listed under both PyTorch biases is their sum; ``to_user`` splits it as
    ``bias_ih = b/2 + 1/8`` and ``bias_hh = b/2 - 1/8`` so an implementation that ignores one
    of the two is caught.

    ``forward(x, state, weights) -> new state tuple``;
    ``backward(x, state, weights, dstate) -> (grads, dx, dstate_prev)``, ``grads`` keyed
    like ``weights``. ``x`` is (B, D), ``state``/``dstate`` tuples of (B, H) arrays."""

    def __init__(self, cell):
        c = resolve_cell(cell)
        table = c.torch
        if not table:
            raise ValueError(f"cell {c.name!r} has no PyTorch layout ([torch] table); "
                             f"cells with one: "
                             + ", ".join(n for n in derive.cells() if derive.cell(n).torch))
        self.keys = {k: list(v) for k, v in table.items() if k not in ("module", "nonlinearity")}
        super().__init__(c, packing=self.keys, convention="torch", name="torch",
                         grad_names={k: k for k in self.keys})
        ih, hh = set(self.keys.get("bias_ih_l0", ())), set(self.keys.get("bias_hh_l0", ()))
        self.summed = ih & hh


#: CS231n's packing: (input matrix, recurrent matrix, bias) per gate, in CS231n's order.
CS231N_GATES = {
    "lstm": [("W_xi", "W_hi", "b_i"), ("W_xf", "W_hf", "b_f"), ("W_xo", "W_ho", "b_o"),
             ("W_xc", "W_hc", "b_c")],
    "rnn_tanh": [("W_xh", "W_hh", "b_h")],
    "rnn_sigmoid": [("W_xh", "W_hh", "b_h")],
    "rnn_relu": [("W_xh", "W_hh", "b_h")],
}


class CS231nLayout(PackedLayout):
    """``Wx (D, kH)``, ``Wh (H, kH)``, ``b (kH,)``: the transposed gate matrices side by side,
    gate order ``i, f, o, g`` for the LSTM (``gates`` overrides the packing); a
    ``PackedLayout`` with ``orientation="cols"`` and the cs231n calling convention.

    ``forward(x, *state, Wx, Wh, b) -> (*new_state, cache)``;
    ``backward(*dstate, cache) -> (dx, *dstate_prev, dWx, dWh, db)``."""

    def __init__(self, cell, gates=None):
        c = resolve_cell(cell)
        gates = gates if gates is not None else CS231N_GATES.get(c.name)
        if gates is None:
            raise ValueError(f"no CS231n packing known for cell {c.name!r} (known: "
                             f"{', '.join(CS231N_GATES)}); pass gates=[(W_x, W_h, b), ...]")
        shapes = param_shapes(c)
        covered = sorted(n for g in gates for n in g)
        if covered != sorted(shapes):
            raise ValueError(f"gates {gates} do not cover the parameters of "
                             f"{c.name!r}: {', '.join(shapes)}")
        self.gates = [tuple(g) for g in gates]
        want = (("H", "D"), ("H", "H"), ("H",))
        for g in self.gates:
            bad = [n for n, w in zip(g, want) if shapes[n] != w]
            if len(g) != 3 or bad:
                what = (f"{bad[0]} is {' x '.join(shapes[bad[0]])}" if bad
                        else f"{len(g)} parameters")
                raise ValueError(f"cannot lay out cell {c.name!r} in the CS231n packing: "
                                 f"each gate is (W_x: H x D, W_h: H x H, b: H), gate {g} has {what}")
        packing = {k: [g[j] for g in self.gates] for j, k in enumerate(("Wx", "Wh", "b"))}
        super().__init__(c, packing=packing, orientation="cols", convention="cs231n", name="cs231n")


def layout_for(cell, name="seed"):
    """A layout by name: ``seed``, ``torch`` or ``cs231n``."""
    table = {"seed": SeedLayout, "torch": TorchLayout, "cs231n": CS231nLayout}
    if name not in table:
        raise ValueError(f"unknown layout {name!r}; layouts: {', '.join(table)}")
    return table[name](cell)
