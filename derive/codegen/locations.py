"""Where each value of a kernel plan lives, the one table the emitter reads.

``place_values(plan)`` maps every symbol the generated driver refers to (parameters, the
input, previous and new states, product slots, activations computed in place, values
before the loop, per-step locals, backward deltas, adjoints and group products) to a
:class:`Location`: the code that reads it inside the forward loop at step ``t``, from the
cache at step ``t`` (backward, Jacobian), and as a whole sequence. ``shape`` is the value's
shape kind (:data:`SHAPES`, :func:`shape_kind`): every batched value today is a vector of
``rows`` entries (``(B, rows)`` per step) and a matrix parameter is a ``"matrix"``; the
``"scalar"`` ``(B, 1)`` and ``"matrix"`` ``(B, H, H)`` kinds of batched values are declared
for the quantities to come.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import sympy

from derive.codegen.exprs import symbols_in
from derive.codegen.ir import FrozenMap
from derive.core.reduction import DimSize
from derive.core.symbols import DIMS, Cotangent, Incoming, Input, Param, PrevState


SHAPES = FrozenMap((            # shape kind -> one step's array of a batched value
    ("scalar", "(B, 1)"),
    ("vector", "(B, rows)"),
    ("matrix", "(B, rows, cols)"),      # as (B, H, H)
))


def shape_kind(sym) -> str:
    """The shape kind of a symbol: ``"scalar"`` (1 x 1), ``"vector"`` (n x 1) or
    ``"matrix"`` (n x m, m != 1)."""
    if sym.shape[1] != 1:
        return "matrix"
    return "scalar" if sym.shape[0] == 1 else "vector"


@dataclass(frozen=True)
class Location:
    """One value's place: ``kind`` is one of param, input, prev_state, state, slot,
    gate (a product or activation in a gate-major buffer), const (before the loop,
    parameters only), sequence (before the loop, per step), local (computed in the step),
    incoming, product (a backward G_t W_stack), adjoint (a backward local)."""
    kind: str
    rows: object                    # a size in H and D
    step: str | None = None         # code inside the forward loop at step t
    cached: str | None = None       # code from the cache at step t (backward, jacobian)
    sequence: str | None = None     # code of the whole (T, B, rows) array
    kept: str | None = None         # what forward stores in the cache for a stored value
    shape: str = "vector"           # a key of SHAPES

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise ValueError(f"Location: unknown shape kind {self.shape!r} "
                             f"(one of {', '.join(SHAPES)})")


def size_code(n) -> str:
    """Code of a size or offset: a sum of multiples of H and D (and H * H, the entries of a
    matrix state), such as "2 * H + D"."""
    n = sympy.expand(n)
    parts = []
    for d in sorted(n.free_symbols, key=lambda s: (s.name != "H", s.name)):
        c2 = n.coeff(d, 2)
        if c2:
            parts.append(f"{d} * {d}" if c2 == 1 else f"{c2} * {d} * {d}")
        c = n.coeff(d)
        if c:
            parts.append(str(d) if c == 1 else f"{c} * {d}")
    return " + ".join(parts) if parts else str(n)


def hidden_code(cell, states="s0") -> str:
    """Code of H from a tuple of state arrays: the width of the first vector state (the
    states of a cell may be scalars, vectors and vectorised H x H matrices)."""
    for k, s in enumerate(cell.states):
        if tuple(cell.state_shapes[s]) == (DIMS["H"], 1):
            return f"{states}[{k}].shape[1]"
    k = next(k for k, s in enumerate(cell.states) if cell.state_shapes[s][0] != 1)
    return f"round({states}[{k}].shape[1] ** 0.5)"


def span(widths, j, n=1) -> str:
    """Slice of blocks j .. j+n-1 of a row laid out as blocks of the given widths."""
    a, b = sum(widths[:j], sympy.Integer(0)), sum(widths[:j + n], sympy.Integer(0))
    return f"{'' if a == 0 else size_code(a)}:{size_code(b)}"


def param_code(name) -> str:
    return f'p["{name}"]'


def constants_of(plan) -> set:
    """Values before the loop that depend on parameters only (kept once, not per step)."""
    const = set()
    for v, rhs in plan.pre.assigns:
        if all(isinstance(x, Param) or x in const for x in symbols_in(rhs)):
            const.add(v)
    return const


def _symbols_of(plan):
    """Every symbol the driver may read or write, in a deterministic order."""
    seen = {}

    def take(syms):
        for s in syms:
            seen.setdefault(s, None)

    take(plan.cell.params.values())
    for g in plan.groups:
        take([g.operand])
        for s in g.slots:
            take([s.sym])
            if s.activation is not None:
                take([s.activation.output])
                take(x for t in s.activation.extra for x in symbols_in(t))
    stages = [plan.pre, *plan.fwd, *plan.bwd] + [st.lean for st in plan.bwd if st.lean]
    for st in stages:
        take(st.inputs)
        take(d for d, _ in st.assigns)
        take(st.outputs)
        take(o.value for o in st.outs + st.aliases)
    take(plan.stored)
    take(plan.state_vars.values())
    take(plan.jac.inputs)
    take(plan.jac.outputs)
    take(g.psym for g in plan.groups if g.psym is not None)
    return list(seen)


def place_values(plan) -> FrozenMap:
    """symbol -> :class:`Location` for every symbol of the plan (see the module docstring)."""
    index = {s: k for k, s in enumerate(plan.cell.states)}
    var_state = {v: s for s, v in plan.state_vars.items()}
    level = {v: -1 for v, _ in plan.pre.assigns}
    for k, st in enumerate(plan.fwd):
        level.update({v: k for v, _ in st.assigns})
    const = constants_of(plan)
    stored = set(plan.stored)
    slot_at = {s.sym: (g, j) for g in plan.groups for j, s in enumerate(g.slots)}
    act_at = {s.activation.output: (g, j) for g in plan.groups
              for j, s in enumerate(g.slots) if s.activation is not None}
    products = {g.psym: g for g in plan.groups if g.psym is not None}

    def locate(sym):
        rows = sym.shape[0]
        if isinstance(sym, DimSize):
            code = f"numpy.full((1,), {sym.name}, dt)"  # H as a (1,) array of the dtype
            return Location("param", rows, code, code, code, shape="scalar")
        if isinstance(sym, Param):
            code = param_code(sym.name)
            return Location("param", rows, code, code, code)
        if isinstance(sym, Input):
            return Location("input", rows, "xs[t]", "xs[t]", "xs")
        if isinstance(sym, PrevState):
            k = index[sym.state]
            return Location("prev_state", rows, f"_S_{k}[t]", f"_S_{k}[t]", f"_S_{k}[:T]")
        if isinstance(sym, Incoming):
            return Location("incoming", rows, cached=f"_in_{index[sym.state]}")
        if sym in products:
            return Location("product", rows, cached=sym.name)
        if isinstance(sym, Cotangent):
            return Location("adjoint", rows, cached=f"_b_{sym.name}")
        if sym in act_at:
            g, j = act_at[sym]
            return Location("gate", rows, f"_a{g.index}[{j}]", f"_V_{sym.name}[t]",
                            f"_V_{sym.name}", kept=f"_A{g.index}[:, {j}]")
        if sym in slot_at:
            g, j = slot_at[sym]
            where = span(g.widths, j)
            if g.gate_major:
                step, kind = f"_a{g.index}[{j}]", "gate"
            elif g.hoisted:
                step, kind = f"_Z{g.index}[t, :, {where}]", "slot"
            else:
                step, kind = f"_z{g.index}[:, {where}]", "slot"
            return Location(kind, rows, step, sequence=f"_Z{g.index}[..., {where}]")
        kept = f"_V_{sym.name}" if sym in stored else None
        if sym in var_state:
            k = index[var_state[sym]]
            return Location("state", rows, f"_v_{sym.name}", f"_S_{k}[t + 1]", f"_S_{k}[1:]")
        if sym in const:
            code = f"_V_{sym.name}"
            return Location("const", rows, code, code, code, kept)
        if level.get(sym) == -1:
            return Location("sequence", rows, f"_V_{sym.name}[t]", f"_V_{sym.name}[t]",
                            f"_V_{sym.name}", kept)
        return Location("local", rows, f"_v_{sym.name}", f"_V_{sym.name}[t]", f"_V_{sym.name}",
                        kept)

    return FrozenMap(tuple((sym, replace(locate(sym), shape=shape_kind(sym)))
                           for sym in _symbols_of(plan)))
