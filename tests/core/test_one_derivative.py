"""One derivative per node (issue 13): reverse mode is the transpose of the registered JVP.

* structure, stated as behaviour: a node type registered with its local Jacobians alone
  (``rules.defjvp``) can be pulled back; there is no table of hand-written VJPs, and the
  only reverse-only rule is the bilinear transpose of ``k M_1 ... M_n v`` w.r.t. a matrix;
* every local cotangent the engine's ``pull_back`` gives, for every equation of every
  built-in cell and every leaf of its right side (vector and matrix), equals SymPy's
  ``Matrix.jacobian(...)^T ct`` (vector leaves) or ``d(ct . rhs)/dM[i, j]`` (matrix
  parameters) of the explicit n x n expansion (:mod:`verify.explicit`), an oracle that uses
  nothing of the engine.
"""
import pytest
import sympy
from sympy import ImmutableMatrix, MatMul, MatrixSymbol
from sympy.matrices.expressions import MatrixExpr

import derive
from derive.core.reduction import DimSize
from derive.core import rules
from derive.core.algebra import VecPoly
from derive.core.linmap import LinMap
from derive.core.rules import pull_back, sum_cotangents
from derive.core.symbols import DIMS, Cotangent, Input, Param, Var, adjoint_name
from verify.explicit import entries_equal, evaluate, expand, symbol_matrix

N, D = 2, 3            # H != D, so a missing or misplaced transpose has the wrong shape


# -- structure, as behaviour -----------------------------------------------------------

class Double(MatrixExpr):
    """2 u: a node type the engine has never seen."""

    @property
    def shape(self):
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):
        return 2 * self.args[0]._entry(i, j, **kwargs)


def test_a_node_registered_with_only_its_jvp_can_be_pulled_back():
    """Registering the local Jacobian d(2u)/du = 2 I is all reverse mode needs: u receives
    (2 I)^T ct = 2 ct, and forward mode gives 2 J(u)."""
    u = Var("u", DIMS["H"], 1)
    ct = Cotangent("delta_z", DIMS["H"], 1)
    rules.defjvp(Double)(lambda e: [(e.args[0], LinMap.identity(e.shape[0]).scaled(2))])
    try:
        got = []
        pull_back(Double(u), VecPoly.atom(ct), lambda sym, c: got.append((sym, c)))
        assert got == [(u, VecPoly.atom(ct).scaled(2))]

        def J(sub):
            return LinMap.identity(DIMS["H"]) if sub == u else LinMap.zero((sub.shape[0], DIMS["H"]))
        J.zero = lambda rows: LinMap.zero((rows, DIMS["H"]))
        assert rules.jvp(Double(u), J).to_expr() == LinMap.identity(DIMS["H"]).scaled(2).to_expr()
    finally:
        del rules.PARTIALS[Double]


def test_no_hand_written_vjp_remains():
    """The rules register one derivative per node: no VJP table, no rule with a ``vjp``; the
    only transpose written by hand is MatMul's, w.r.t. its matrix factors (bilinear)."""
    assert not hasattr(rules, "VJP")
    assert all(not hasattr(r, "vjp") for r in rules.PARTIALS.values())
    assert set(rules.BILINEAR) == {MatMul}


def test_bilinear_transpose_of_a_chain_of_matrices():
    """k A B v with k = 3: the oracle d(ct . 3ABv)/d(A, B, v) against the engine's
    cotangents 3 ct (Bv)^T, 3 A^T ct v^T and 3 B^T A^T ct."""
    H, Dm = DIMS["H"], DIMS["D"]
    A, B, v = Param("A", H, H), Param("B", H, Dm), Input("v", Dm, 1)
    ct = Cotangent("delta_z", H, 1)
    e = MatMul(sympy.Integer(3), A, B, v, evaluate=False)
    got = {}
    pull_back(e, VecPoly.atom(ct), lambda s, c: got.setdefault(s, []).append(c))
    mats = {s: symbol_matrix(s.name, N if s.shape[0] == H else D,
                             1 if s.shape[1] == 1 else (N if s.shape[1] == H else D))
            for s in (A, B, v, ct)}
    sub = {**mats, H: N, Dm: D}
    loss = (mats[ct].T * evaluate(e.xreplace(sub)))[0, 0]
    assert set(got) == {A, B, v}
    for s in (A, B, v):
        derived = _to_expr(sum_cotangents(got[s], s.shape))
        oracle = ImmutableMatrix(mats[s].rows, mats[s].cols, [sympy.diff(loss, x) for x in mats[s]])
        assert not entries_equal(evaluate(derived.xreplace(sub)), oracle), s


# -- every local cotangent of every built-in cell, against SymPy ------------------------

def _to_expr(ct):
    return ct.to_expr() if isinstance(ct, VecPoly) else ct


def _equations(name):
    cell = derive.cell(name)
    return [(name, k, eq) for k, eq in enumerate(cell.equations + cell.readout)]


def _rows(sym):
    """The explicit size of a vector symbol: N for H rows, N^2 for a matrix state, 1 for a
    scalar, D for D rows (a readout of LRU)."""
    return {DIMS["H"]: N, DIMS["H"] ** 2: N * N, 1: 1}.get(sym.shape[0], D)


@pytest.mark.parametrize("name", derive.cells())
def test_every_local_cotangent_equals_the_transposed_jacobian(name):
    """For each equation z = rhs and each leaf u of rhs (earlier equations taken as free
    symbols): the engine's cotangent of u for the incoming delta_z equals J_u^T delta_z
    (vector u, J_u = SymPy's Matrix.jacobian of the explicit rhs) or d(delta_z . rhs)/du[i, j]
    (matrix parameter u), at H = 2, D = 3."""
    ex = expand(name, N, D)
    failures, checked = [], 0
    for _, _, eq in _equations(name):
        ct = Cotangent(adjoint_name(eq.lhs.name), *eq.lhs.shape)
        parts: dict = {}
        pull_back(eq.rhs, VecPoly.atom(ct), lambda s, c: parts.setdefault(s, []).append(c))
        leaves = eq.rhs.atoms(MatrixSymbol)
        assert set(parts) == leaves, (eq.lhs, set(parts) ^ leaves)
        free = {s: symbol_matrix(s.name, _rows(s), 1) for s in leaves if isinstance(s, Var)}
        extra = {**free, ct: symbol_matrix(ct.name, _rows(ct), 1)}
        rhs = ImmutableMatrix(ex.explicit(eq.rhs, extra=free))
        for s in sorted(leaves, key=lambda a: a.name):
            if isinstance(s, DimSize):            # a dimension's size: a constant, no cotangent
                continue
            mat = free[s] if s in free else next(m for k, m in ex.leaves.items() if k.name == s.name)
            if mat.cols == 1:
                oracle = rhs.jacobian(list(mat)).T * extra[ct]
            else:
                loss = (extra[ct].T * rhs)[0, 0]
                oracle = ImmutableMatrix(mat.rows, mat.cols, [sympy.diff(loss, x) for x in mat])
            derived = ex.explicit(_to_expr(sum_cotangents(parts[s], s.shape)), extra=extra)
            bad = entries_equal(derived, oracle)
            checked += 1
            if bad:
                failures.append(f"{eq.lhs.name} -> {s.name}: {bad[0]}")
    assert checked and not failures, f"{name}:\n" + "\n".join(failures)
