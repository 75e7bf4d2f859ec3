"""Centred vectors: ``sums_to_zero`` proves ``1^T e = 0`` for the equations that make it so
(``u - mean(u)``) and for no other; a quantity so defined is a ``Centred`` symbol whose sum the
simplifier drops (the compact layer-norm Jacobian this gives is checked against SymPy in
``test_reductions.py``)."""
from __future__ import annotations

import pytest
import sympy

import derive
from derive.core.algebra import VecPoly, add, hadamard, scale
from derive.core.centring import sums_to_zero
from derive.core.primitives import Reciprocal
from derive.core.reduction import Broadcast, DimSize, SumOf
from derive.core.symbols import Centred, Param, Var

H = sympy.Symbol("H", integer=True, positive=True)
u, v = Var("u", H, 1), Var("v", H, 1)


def mean(x):
    return Broadcast(hadamard([SumOf(x), Reciprocal(DimSize("H"))]), H)


def centred(x):
    return add([x, scale(-1, mean(x))], (H, 1))


@pytest.mark.parametrize("expr, zero", [
    (centred(u), True),                                               # u - mean(u)
    (scale(3, centred(u)), True),                                     # 3 (u - mean(u))
    (add([centred(u), centred(v)], (H, 1)), True),                    # a sum of centred vectors
    (add([u, scale(-1, Broadcast(SumOf(u), H))], (H, 1)), False),     # u - sum(u): not centred
    (add([u, scale(-1, mean(v))], (H, 1)), False),                    # u - mean(v)
    (hadamard([centred(u), v]), False),                               # (u - mean u) * v
    (u, False),
])
def test_sums_to_zero_proves_exactly_the_centred_equations(expr, zero):
    """True only where 1^T e cancels to 0 for every value; the independent check: SymPy's
    explicit entries at n = 3 (``_entry``, H's size symbol replaced by 3) sum to 0 exactly
    when the claim is True."""
    assert sums_to_zero(expr) is zero
    n = 3
    e = expr.subs(H, n)
    total = sympy.Add(*[e._entry(k, 0) for k in range(n)])
    size = DimSize("H")._entry(0, 0)
    assert (sympy.simplify(total.subs(size, n)) == 0) is zero


def test_the_sum_of_a_centred_symbol_is_zero_in_the_simplifier():
    """1^T d = 0, 1^T (s d) = 0 for a broadcast scalar s, and 1^T (d + w) = 1^T w."""
    d = Centred("d", H, 1)
    w = Var("w", H, 1)
    s = Broadcast(Param("s0", 1, 1), H)
    assert VecPoly.from_expr(SumOf(d)).is_zero()
    assert VecPoly.from_expr(SumOf(hadamard([s, d]))).is_zero()
    assert VecPoly.from_expr(SumOf(add([d, w], (H, 1)))) == VecPoly.from_expr(SumOf(w))
    assert not VecPoly.from_expr(SumOf(hadamard([d, w]))).is_zero()       # d^T w is not 0


def test_the_spec_marks_centred_quantities():
    """lnlstm: the nine u - mean(u) quantities are Centred; its layer-norm scales are not."""
    c = derive.cell("lnlstm")
    marked = sorted(eq.lhs.name for eq in c.equations if isinstance(eq.lhs, Centred))
    assert marked == sorted(["dri", "dui", "drf", "duf", "dro", "duo", "drg", "dug", "dc"])
