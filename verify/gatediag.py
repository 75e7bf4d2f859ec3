"""Gate-order and sign-flip diagnoses, measured: re-run the user's code with the gate blocks
packed in another order (or one gate's block negated) and see whether it then matches.

The gates of a cell are read from its parameter names: the last letter of a name's last
``_`` part is its gate (``W_xi``, ``W_hi``, ``b_i`` -> gate ``i``; ``b_xn``, ``b_hn`` -> ``n``);
the rest is its role. Gates can be permuted when they have the same roles. Gate letters are
printed as the cell's equations name the gate's activation (``c`` -> ``g`` when the cell has
an equation ``g``, as in the LSTM's candidate).

:class:`Remapped` wraps a layout: the user receives ``P'[a] = s_a P[sigma(a)]`` (block of gate
``a`` filled with gate ``sigma(a)``'s parameters, negated when ``s_a = -1``). Code that reads
the block where the layout puts gate ``a`` as gate ``sigma(a)`` (or negates gate a's
pre-activation) computes the true cell on ``P`` and then matches the reference; its gradient
block at ``a`` is then ``s_a dL/dP[sigma(a)]``, which :meth:`Remapped.grad_views` compares.
:func:`find` tries every permutation (k! for k gates) and every single flip.
"""
from __future__ import annotations

from itertools import permutations

import numpy

from .layout_base import GradView, Layout
from .strategies import param_shapes

__all__ = ["gates", "Remapped", "find"]


def gates(cell):
    """``{gate letter: {role: param name}}`` in the order of the cell's parameters."""
    out = {}
    for n in param_shapes(cell):
        part = n.split("_")[-1]
        out.setdefault(part[-1], {})[n[:len(n) - 1]] = n
    return out


def label(cell, g):
    """The letter a message uses for gate ``g``."""
    eqs = {str(e.lhs) for e in cell.equations}
    return "g" if g == "c" and "g" in eqs and "c" in eqs else g


class Remapped(Layout):
    """``base`` with gate blocks filled from other gates (``sigma``) and negated (``flips``)."""

    def __init__(self, base, sigma, flips=()):
        self.base, self.cell, self.states = base, base.cell, base.states
        self.param_names, self.name = base.param_names, base.name
        table = gates(self.cell)
        self.src, self.sign = {}, {}
        for a, roles in table.items():
            for role, n in roles.items():
                self.src[n] = table[sigma.get(a, a)][role]
                self.sign[n] = -1.0 if a in flips else 1.0
        for attr in ("seq_convention", "batch_axis", "names", "convention", "fwd", "bwd",
                     "make", "grads_of"):
            if hasattr(base, attr):
                setattr(self, attr, getattr(base, attr))

    def __getattr__(self, name):            # everything else as the base layout has it
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def to_user(self, params):
        return self.base.to_user({n: self.sign[n] * numpy.asarray(params[self.src[n]])
                                  for n in self.param_names})

    def from_user(self, user):
        return self.base.from_user(user)

    def user_args(self, user_params):
        return self.base.user_args(user_params)

    def grad_views(self, user_grads):
        return [GradView(v.label, self.src[v.param], None if v.array is None
                         else self.sign[v.param] * numpy.asarray(v.array))
                for v in self.base.grad_views(user_grads)]

    def vec_in(self, a):
        return self.base.vec_in(a)

    def vec_out(self, a):
        return self.base.vec_out(a)

    def call_forward(self, *a):
        return self.base.call_forward(*a)

    def call_backward(self, *a):
        return self.base.call_backward(*a)


def _order(layout):
    """The gate letters in the order the layout packs them."""
    if isinstance(getattr(layout, "order", None), list):          # verify.packed.PackedLayout
        return list(layout.order)
    if isinstance(getattr(layout, "gates", None), list):
        keys = [n for g in layout.gates for n in g]
    elif isinstance(getattr(layout, "keys", None), dict):
        keys = [n for ns in layout.keys.values() for n in ns]
    else:
        keys = layout.param_names
    seen = []
    for n in keys:
        g = n.split("_")[-1][-1]
        if g not in seen:
            seen.append(g)
    return seen


def find(layout, matches):
    """Sentences for every remapping under which ``matches(remapped_layout)`` is True."""
    cell = layout.cell
    table = gates(cell)
    out = []
    letters = list(table)
    order = _order(layout)
    same = len({tuple(sorted(r)) for r in table.values()}) == 1
    if same and len(letters) > 1:
        for perm in permutations(letters):
            sigma = dict(zip(letters, perm))
            if perm == tuple(letters):
                continue
            if matches(Remapped(layout, sigma)):
                theirs = ", ".join(label(cell, sigma[a]) for a in order)
                ours = ", ".join(label(cell, a) for a in order)
                out.append(f"your gate order looks like {theirs}, not {ours}")
    for a in letters:
        if matches(Remapped(layout, {}, flips=(a,))):
            g = label(cell, a)
            out.append(f"gate {g}'s pre-activation has the opposite sign in your code "
                       f"(sigmoid(-{g}bar) = 1 - {g}: e.g. the mirror form of a GRU's update gate)"
                       if len(table) > 1 else "the pre-activation has the opposite sign in your code")
    return out
