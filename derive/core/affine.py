"""Affine recurrences, found from the derived step Jacobian: s_t = A_t s_{t-1} + b_t.

A cell is affine in its state when every block ``J_sr = d s_t / d r_{t-1}`` of its step
Jacobian is free of every state (no previous state among its leaves once the equation names
are written out). Then the step is ``s_t = sum_r J_sr r_{t-1} + b_s`` exactly, with

* ``A_t = J`` (the derived blocks; each block a diagonal ``diag(a_sr)`` here, so ``A_t`` is,
  unit by unit, an S x S matrix over the S states: 1 x 1 for minGRU and minLSTM, the 2 x 2
  rotation-scaling ``[[l_re, -l_im], [l_im, l_re]]`` for the LRU in real form);
* ``b_s = s_t`` at ``s_{t-1} = 0`` (the state's equation with every previous state set to 0);
* the composition of two steps ``(A, b) then (A', b')`` is ``(A' A, A' b + b')``, associative,
  so the states are prefix compositions (a parallel scan);
* the adjoint recursion ``delta s_{t-1} = A_t^T delta s_t + g_{t-1}``, affine too (a reverse scan).

:func:`affine_form` checks the identity ``s_t - (sum_r a_sr * r_{t-1} + b_s) = 0`` in the
Hadamard-polynomial algebra and raises :class:`NotAffine` naming the state and the term that
depends on a state otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass

from sympy import MatrixSymbol, ZeroMatrix

from derive.core.algebra import VecPoly
from derive.core.cell import CellError
from derive.core.symbols import PrevState, Var


#: How messages print an expression; the printing layer registers its text printer here
#: (core imports no printer), SymPy's str until then.
_TEXT: list = [str]


def register_text(fn) -> None:
    _TEXT[:] = [fn]


def text_of(e) -> str:
    return _TEXT[0](e)


class NotAffine(CellError):
    """The cell's update is not affine in its state (or its A_t is not diagonal)."""


@dataclass(frozen=True)
class AffineForm:
    """``s_t = A_t s_{t-1} + b_t``: ``coeff[(s, r)]`` is the vector on the diagonal of the
    block ``d s_t / d r_{t-1}`` (missing: a zero block), ``offset[s]`` is ``b_s``; both are
    expressions in the input, the parameters and the state-free named values."""
    cell: object
    coeff: tuple          # ((s, r), a_sr) pairs, in state order
    offset: tuple         # (s, b_s) pairs, in state order

    @property
    def states(self) -> tuple:
        return self.cell.states

    def a(self, s, r):
        return dict(self.coeff).get((s, r))

    def b(self, s):
        return dict(self.offset)[s]


def state_dependent(cell) -> dict:
    """{equation name: the previous states it depends on, transitively}."""
    out: dict = {}
    for eq in cell.equations:
        deps = set()
        for sym in eq.rhs.atoms(MatrixSymbol):
            if isinstance(sym, PrevState):
                deps.add(sym.state)
            elif isinstance(sym, Var) and sym.name in out:
                deps |= out[sym.name]
        out[eq.lhs.name] = deps
    return out


def expand_dependent(cell, e, deps, keep=()):
    """e with every named value that depends on a state (``deps``: :func:`state_dependent`)
    replaced by its definition, except the names in ``keep``."""
    sub = {}
    for sym in e.atoms(Var):
        if deps.get(sym.name) and sym.name not in keep:
            sub[sym] = expand_dependent(cell, cell.definition(sym.name), deps, keep)
    return e.xreplace(sub) if sub else e


def _dependent_atom(poly: VecPoly, deps):
    """(atom, state) of the first atom of ``poly`` that depends on a state, else None."""
    for m, _ in poly.terms:
        for atom in m:
            for sym in atom.atoms(MatrixSymbol):
                if isinstance(sym, PrevState):
                    return atom, sym.state
                if isinstance(sym, Var) and deps.get(sym.name):
                    return atom, sorted(deps[sym.name])[0]
    return None


def affine_form(cell) -> AffineForm:
    """The :class:`AffineForm` of ``cell``; :class:`NotAffine` naming the state and the term
    that depends on a state (or the block that is not diagonal) when there is none."""
    deps = state_dependent(cell)
    coeff, offset = [], []
    for s in cell.states:
        for r in cell.states:
            lm = cell.jacobian_linmap(s, r)
            for term in lm.terms:
                found = _dependent_atom(term.lead, deps)
                if found:
                    atom, st = found
                    raise NotAffine(f"cell {cell.name!r} is not affine in its state: "
                                    f"d{s}_t/d{r}_(t-1) contains {text_of(atom)}, which "
                                    f"depends on {st}_(t-1)")
                if term.chain:
                    raise NotAffine(f"cell {cell.name!r}: d{s}_t/d{r}_(t-1) = "
                                    f"{text_of(lm.to_expr())} is not diagonal (a matrix factor "
                                    f"{text_of(term.chain[0])}); only diagonal A_t is supported")
            if lm.terms:
                coeff.append(((s, r), lm.terms[0].lead.to_expr()))
        rhs = expand_dependent(cell, cell.definition(s), deps)
        zero = {p: ZeroMatrix(*p.shape) for p in cell.prev.values()}
        b = VecPoly.from_expr(rhs.xreplace(zero))
        rebuilt = b
        for (s2, r), a in coeff:
            if s2 == s:
                rebuilt = rebuilt + VecPoly.from_expr(a) * VecPoly.atom(cell.prev[r])
        if not (VecPoly.from_expr(rhs) - rebuilt).is_zero():
            raise NotAffine(f"cell {cell.name!r}: {s}_t is not sum_r a_{s}r * r_(t-1) + b_{s}")
        offset.append((s, b.to_expr()))
    return AffineForm(cell, tuple(coeff), tuple(offset))
