"""Index notation for symbolic sizes: a derived Jacobian block read entry by entry.

:func:`index_block` proves, for symbolic n (hidden size) and m (input size), that entry
(i, k) of a derived block ``d s_t / d s'_(t-1)`` equals SymPy's ``diff`` of the
index-notation forward pass of ``s_t[i]`` with respect to ``s'_(t-1)[k]``
(:class:`IndexNotation` reads a cell's matrix expressions entry by entry).
"""
from __future__ import annotations

import sympy
from sympy import (DiagMatrix, HadamardProduct, Identity, IndexedBase, KroneckerDelta, MatAdd,
                   MatMul, MatrixSymbol, OneMatrix, Piecewise, Sum, Transpose, ZeroMatrix)

from derive.core.binary import Binary
from derive.core.matrixstate import MatTVec, MatVec, Outer
from derive.core.reduction import Broadcast, SumOf
from derive.core.primitives import Elementwise
from derive.core.symbols import DIMS, Input, PrevState, Var

from .explicit import scalar_equal
from .proof import Proof

__all__ = ["N_SYM", "M_SYM", "I_IDX", "K_IDX", "IndexNotation", "strip_range", "index_supported",
           "index_block"]


#: The symbolic sizes of index notation: H = n, D = m.
N_SYM = sympy.Symbol("n", integer=True, positive=True)
M_SYM = sympy.Symbol("m", integer=True, positive=True)
I_IDX = sympy.Symbol("i", integer=True)
K_IDX = sympy.Symbol("k", integer=True)


class IndexNotation:
    """Matrix expressions of a cell read entry by entry: ``(A B)[i, k] = sum_j A[i, j] B[j, k]``,
    ``diag(v)[i, k] = delta_ik v_i``, ``(u * v)_i = u_i v_i``, ``f(u)_i = f(u_i)``.

    Leaves become ``IndexedBase`` entries; summation runs over ``0..n-1`` or ``0..m-1``.
    With ``inline=True`` every equation variable is replaced by its definition (the forward
    pass as one scalar expression per entry); summation indices inside a variable's
    definition are named after the variable, so the same variable reads the same wherever
    it appears. With ``inline=False`` variables stay ``IndexedBase`` entries and functions
    print by name: the readable form.
    """

    def __init__(self, cell, inline=True):
        self.cell = cell
        self.inline = inline
        self._templates: dict = {}
        self.sizes = {DIMS["H"]: N_SYM, DIMS["D"]: M_SYM}

    def size(self, d):
        return sympy.sympify(d).xreplace(self.sizes)

    def leaf(self, sym, i, j):
        base = IndexedBase(sym.name)
        return base[i] if sym.shape[1] == 1 else base[i, j]

    def var(self, name, i):
        if not self.inline:
            return IndexedBase(name)[i]
        if name not in self._templates:
            slot = sympy.Symbol(f"_{name}_slot", integer=True)
            counter = iter(range(10 ** 6))
            fresh = lambda: sympy.Symbol(f"j_{name}{next(counter)}", integer=True)  # noqa: E731
            self._templates[name] = (slot, self.entry(self.cell.definition(name), slot, 0, fresh))
        slot, tmpl = self._templates[name]
        return tmpl.xreplace({slot: i})

    def entry(self, e, i, j, fresh):
        """Entry (i, j) of the matrix expression e (j = 0 for a column vector)."""
        if isinstance(e, Var):
            return self.var(e.name, i)
        if isinstance(e, MatrixSymbol):
            return self.leaf(e, i, j)
        if isinstance(e, MatAdd):
            return sympy.Add(*[self.entry(a, i, j, fresh) for a in e.args])
        if isinstance(e, MatMul):
            c, mats = e.as_coeff_matrices()
            idx = [i] + [fresh() for _ in mats[:-1]] + [j]
            body = sympy.Mul(*[self.entry(m, idx[q], idx[q + 1], fresh)
                               for q, m in enumerate(mats)])
            limits = [(idx[q + 1], 0, self.size(m.shape[1]) - 1) for q, m in enumerate(mats[:-1])]
            return c * (Sum(body, *limits) if limits else body)
        if isinstance(e, HadamardProduct):
            return sympy.Mul(*[self.entry(a, i, j, fresh) for a in e.args])
        if isinstance(e, Elementwise):
            inner = self.entry(e.arg, i, j, fresh)
            return type(e).scalar(inner) if self.inline else sympy.Function(e.name)(inner)
        if isinstance(e, DiagMatrix):
            return KroneckerDelta(i, j) * self.entry(e.args[0], i, 0, fresh)
        if isinstance(e, Transpose):
            return self.entry(e.arg, j, i, fresh)
        if isinstance(e, (OneMatrix,)):
            return sympy.S.One
        if isinstance(e, ZeroMatrix):
            return sympy.S.Zero
        if isinstance(e, Identity):
            return KroneckerDelta(i, j)
        raise TypeError(f"no index form for {type(e).__name__}: {e}")

    def block_entry(self, expr, i=I_IDX, k=K_IDX):
        """Entry (i, k) of a derived matrix expression, sums over Kronecker deltas done and
        their range conditions stripped (see :func:`strip_range`)."""
        counter = iter(range(10 ** 6))
        fresh = lambda: sympy.Symbol(f"t{next(counter)}", integer=True)  # noqa: E731
        return strip_range(self.entry(expr, i, k, fresh).doit(), {i: N_SYM, k: N_SYM})


def strip_range(expr, ranges: dict):
    """Replace ``Piecewise((e, cond), (0, True))`` by ``e`` when ``cond`` only says that free
    indices lie in their ranges (``ranges``: index -> size; index in 0..size-1), which holds
    by construction. Anything else is left alone (and then fails the comparison)."""
    def implied(rel):
        free = [s for s in rel.free_symbols if s in ranges]
        if len(free) != 1 or not isinstance(rel, sympy.core.relational.Relational):
            return False
        s = free[0]
        return all(rel.subs(s, v) == sympy.true for v in (0, ranges[s] - 1)) and \
            sympy.Poly(rel.lhs - rel.rhs, s).degree() <= 1

    def strip(pw):
        (e, cond), *rest = pw.args
        conds = sympy.And.make_args(cond)
        if all(c == sympy.true or implied(c) for c in conds) and \
                all(r.expr == 0 for r in rest):
            return e
        return pw
    return expr.replace(lambda a: isinstance(a, Piecewise), strip)


def index_supported(cell) -> bool:
    """True when every matrix product in the cell's equations acts on the input or a previous
    state (no ``W @ var``): then every derived entry (i, k) reduces to one term per chain
    and the comparison needs no normalisation of nested sums. Cells with products such as
    ``W_co @ c`` (full peepholes) or ``W_hn @ (r * h_prev)`` (Cho's GRU) are outside it, and
    so are cells with max/min (their derivative, a step, has no opaque-function form here),
    reductions (sums over the units) and matrix states."""
    for eq in cell.equations:
        if eq.rhs.atoms(Binary, SumOf, Broadcast, Outer, MatVec, MatTVec):
            return False
        for mm in [eq.rhs] + list(eq.rhs.atoms(MatMul)):
            if isinstance(mm, MatMul):
                mats = mm.as_coeff_matrices()[1]
                if len(mats) > 1 and not isinstance(mats[-1], (Input, PrevState)):
                    return False
    return True


def index_block(cell, of: str, wrt: str, block=None) -> Proof:
    """Dimension-generic: entry (i, k) of the derived ``d of_t / d wrt_{t-1}`` equals SymPy's
    ``diff`` of the index-notation forward expression of ``of_i`` w.r.t. ``wrt_prev[k]``,
    for symbolic n (hidden size) and m (input size). ``block`` replaces the engine's
    result (to show that a wrong form is rejected)."""
    block = cell.jacobian(of, wrt) if block is None else block
    readable = IndexNotation(cell, inline=False).block_entry(block)
    p = Proof(f"{cell.name}: for all n, m and 0 <= i, k < n: "
              f"d{of}_t[i]/d{wrt}_(t-1)[k] = {readable}")
    ix = IndexNotation(cell, inline=True)
    forward = ix.var(of, I_IDX)
    target = IndexedBase(cell.prev[wrt].name)[K_IDX]
    p.step(f"derived block (engine): d{of}_t/d{wrt}_(t-1) = {block}")
    p.step(f"its entry (i, k) in index notation: {readable}")
    p.step(f"forward pass in index notation: {of}_t[i] = {forward}")
    oracle = strip_range(sympy.diff(forward, target).doit(), {I_IDX: N_SYM, K_IDX: N_SYM})
    p.step(f"SymPy: d/d{target} of it = {oracle} (sums over Kronecker deltas done, "
           f"the range condition 0 <= k < n stripped)", not oracle.has(Piecewise))
    derived = ix.block_entry(block)
    p.step("derived entry with every variable expanded equals the SymPy derivative "
           "(rational identity in the transcendental nodes)",
           scalar_equal(derived, oracle, fallback=False))
    return p
