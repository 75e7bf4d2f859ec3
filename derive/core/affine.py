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
from derive.core.reduction import is_row_scalar
from derive.core.symbols import DIMS, PrevState, Var


#: How messages print an expression; the printing layer registers its text printer here
#: (core imports no printer), SymPy's str until then.
_TEXT: list = [str]


def register_text(fn) -> None:
    _TEXT[:] = [fn]


def text_of(e) -> str:
    return _TEXT[0](e)


class NotAffine(CellError):
    """The cell's update is not affine in its state (or its A_t is not diagonal)."""


class NotDiagonal(NotAffine):
    """The update is affine as far as the diagonal form can tell, but a block of A_t has a
    matrix factor (the matrix form, :func:`right_affine_form`, may still apply)."""


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


def _state_of(e, deps):
    """The first state ``e`` depends on (through a previous state or a named value), else None."""
    for sym in e.atoms(MatrixSymbol):
        if isinstance(sym, PrevState):
            return sym.state
        if isinstance(sym, Var) and deps.get(sym.name):
            return sorted(deps[sym.name])[0]
    return None


def _dependent_atom(poly: VecPoly, deps):
    """(atom, state) of the first atom of ``poly`` that depends on a state, else None."""
    for m, _ in poly.terms:
        for atom in m:
            st = _state_of(atom, deps)
            if st is not None:
                return atom, st
    return None


def _dependent_factor(f, deps):
    """(f, state) when the matrix factor ``f`` depends on a state, else None."""
    st = _state_of(f, deps)
    return None if st is None else (f, st)


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
                    raise NotDiagonal(f"cell {cell.name!r}: d{s}_t/d{r}_(t-1) = "
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


@dataclass(frozen=True)
class RightAffineForm:
    """``S_t = S_{t-1} M_t + B_t`` for the one state ``S`` (an H x H matrix) that the step reads
    back: its step-Jacobian block is the linear map ``dS -> dS M_t`` (Kronecker form
    ``I (x) M_t^T`` on the row-major vectorisation), ``M_t`` free of every state. The other
    states (``readouts``, e.g. Gated DeltaNet's ``o_t = S_t q_t``) are never read back, so
    they follow from ``S_t`` step by step. Composition: ``(M, B) then (M', B') =
    (M M', B M' + B')``; adjoint: ``delta S_{t-1} = delta S_t M_t^T`` plus the local term."""
    cell: object
    state: str
    M: tuple              # M_t = sum c R: ((c, R), ...), c a scalar expression (None: 1),
                          # R an H x H product of vectors (k k^T) or the identity
    offset: object        # B_t = S_t at S_{t-1} = 0 (vectorised, as the equation)
    readouts: tuple       # the states the step never reads back

    def matrix(self):
        """M_t as one expression: sum c R, each scalar c broadcast (a Hadamard factor), a
        coefficient -c written as a subtraction."""
        from sympy import MatMul
        from derive.core.build import add, hadamard, scale
        terms = []
        for c, R in self.M:
            if c is None:
                terms.append(R)
            elif isinstance(c, MatMul) and c.args[0] == -1:
                terms.append(scale(-1, hadamard([MatMul(*c.args[1:]) if len(c.args) > 2
                                                 else c.args[1], R])))
            else:
                terms.append(hadamard([c, R]))
        return add(terms, self.M[0][1].shape)


def _right_factor(chain, n):
    """R with ``chain`` (applied last item first to vec(X), X n x n) = vec(X R), or None when
    some factor acts on the rows of X (then the map is not a right multiplication)."""
    from sympy import Identity
    from derive.core.matrixstate import KronRight, KronRightT
    from derive.core.algebra import matmul as mm, transpose as tr
    R = Identity(n)
    for f in reversed(chain):
        if isinstance(f, KronRightT):                 # G -> G w
            R = mm(R, f.a)
        elif isinstance(f, KronRight):                # u -> u w^T
            R = mm(R, tr(f.a))
        else:
            return None
    return R if R.shape == (n, n) else None


def _is_scalar(poly: VecPoly) -> bool:
    """Every atom of ``poly`` is one number per batch row (:func:`is_row_scalar`)."""
    return all(is_row_scalar(a) for m, _ in poly.terms for a in m)


def right_affine_form(cell) -> RightAffineForm:
    """The :class:`RightAffineForm` of ``cell``; :class:`NotAffine` with the reason when the
    step reads back anything but one H x H matrix state, or its self block depends on a
    state or is not a right multiplication. A block free of every state is constant in the
    state, so the update is exactly affine in it (the Jacobian of the derived equation)."""
    deps = state_dependent(cell)
    read = [s for s in cell.states
            if any(cell.prev[s] in eq.rhs.atoms(MatrixSymbol) for eq in cell.equations)]
    if len(read) != 1:
        raise NotAffine(f"cell {cell.name!r}: the step reads back {len(read)} states "
                        f"({', '.join(read) or 'none'}); a matrix scan takes exactly one")
    s = read[0]
    if s not in cell.matrix_states():
        raise NotAffine(f"cell {cell.name!r}: state {s} is not an H x H matrix")
    n = DIMS["H"]
    lm = cell.jacobian_linmap(s, s)
    parts = []
    for term in lm.terms:
        found = _dependent_atom(term.lead, deps) or next(
            (f for f in (_dependent_atom(c, deps) if isinstance(c, VecPoly) else _dependent_factor(c, deps)
                         for c in term.chain) if f), None)
        if found:
            atom, st = found
            raise NotAffine(f"cell {cell.name!r} is not affine in its state: d{s}_t/d{s}_(t-1) "
                            f"contains {text_of(atom)}, which depends on {st}_(t-1)")
        R = _right_factor(term.chain, n) if _is_scalar(term.lead) else None
        if R is None:
            raise NotAffine(f"cell {cell.name!r}: d{s}_t/d{s}_(t-1) = {text_of(lm.to_expr())} "
                            f"is neither diagonal nor a right multiplication dS -> dS M_t")
        parts.append((None if term.lead.is_one() else term.lead.to_expr(), R))
    if not parts:
        raise NotAffine(f"cell {cell.name!r}: {s}_t does not depend on {s}_(t-1)")
    rhs = expand_dependent(cell, cell.definition(s), deps)
    zero = {p: ZeroMatrix(*p.shape) for p in cell.prev.values()}
    offset = VecPoly.from_expr(_zeroed(rhs.xreplace(zero))).to_expr()
    return RightAffineForm(cell, s, tuple(parts), offset, tuple(r for r in cell.states if r != s))


def scan_form(cell):
    """The cell's scan: its :class:`AffineForm` (every block diagonal), else its
    :class:`RightAffineForm`; :class:`NotAffine` with the diagonal form's reason when neither
    exists (the matrix form's reason when only a non-diagonal block stood in the way)."""
    try:
        return affine_form(cell)
    except NotDiagonal as exc:
        try:
            return right_affine_form(cell)
        except NotAffine as exc2:
            raise exc2 from exc


def _zeroed(e):
    """e with every product that has a zero factor (a bilinear node, a Hadamard or matrix
    product) replaced by a zero of its shape, bottom-up."""
    from sympy import HadamardProduct, MatMul
    from derive.core.matrixstate import MatTVec, MatVec, Outer
    if not e.args or not hasattr(e, "shape"):
        return e
    args = [_zeroed(a) for a in e.args]
    if isinstance(e, (Outer, MatVec, MatTVec, HadamardProduct, MatMul)) \
            and any(isinstance(a, ZeroMatrix) for a in args):
        return ZeroMatrix(*e.shape)
    return e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e
