"""Centred vectors: the derived fact ``1^T d = 0`` of a quantity like ``d = u - mean(u)``.

``sums_to_zero(e)`` proves, in the commutative algebra of scalars, that the sum of the entries
of the vector expression ``e`` is identically zero: ``1^T`` is linear, so it is applied to
each Hadamard monomial of ``e`` (a broadcast scalar ``s 1_n`` sums to ``n s``; any other
monomial ``m`` to the scalar atom ``1^T m``), and the resulting rational function of the
scalar atoms (``1/n`` and ``n`` included) is cancelled. For ``u - mean(u)`` this is
``1^T u - n (1^T u / n) = 0``. A quantity defined by such an equation is a
:class:`~derive.core.symbols.Centred` symbol, and ``1^T d`` of it is zero in
:class:`~derive.core.algebra.VecPoly`.
"""
from __future__ import annotations

import sympy

from derive.core.algebra import VecPoly
from derive.core.primitives import Reciprocal
from derive.core.reduction import Broadcast, DimSize, SumOf


def sums_to_zero(e) -> bool:
    """Whether ``1^T e = 0`` for every value of the symbols of the column vector ``e``
    (``e`` not itself a scalar)."""
    if tuple(e.shape) == (1, 1) or e.shape[1] != 1:
        return False
    poly = VecPoly.from_expr(e)
    if poly.is_zero():
        return False                   # a zero vector is not a quantity worth naming centred
    if all(m and not (len(m) == 1 and isinstance(m[0], Broadcast)) for m, _ in poly.terms):
        # every monomial sums to its own scalar atom 1^T m, and distinct monomials to distinct
        # atoms: a sum of independent atoms with non-zero coefficients, never zero (the
        # answer cancel gives below, without building it)
        sums = [SumOf(VecPoly({m: 1}, e.shape).to_expr()) for m, _ in poly.terms]
        if all(isinstance(a, SumOf) for a in sums) and len(set(sums)) == len(sums):
            return False
    atoms: dict = {}

    def atom(a):
        if isinstance(a, DimSize):
            return a.dim
        if isinstance(a, Reciprocal):
            return 1 / scalar(VecPoly.from_expr(a.arg))
        return atoms.setdefault(a, sympy.Dummy(f"a{len(atoms)}"))

    def scalar(vp):
        return sympy.Add(*[sympy.Rational(c.numerator, c.denominator)
                           * sympy.Mul(*[atom(a) for a in m]) for m, c in vp.terms])

    n = sympy.sympify(e.shape[0])
    total = 0
    for m, c in poly.terms:
        k = sympy.Rational(c.numerator, c.denominator)
        if not m:
            total += k * n                                   # c 1_n
        elif len(m) == 1 and isinstance(m[0], Broadcast):    # s 1_n
            total += k * n * scalar(VecPoly.from_expr(m[0].arg))
        else:
            total += k * atom(SumOf(VecPoly({m: 1}, e.shape).to_expr()))
    return sympy.cancel(total) == 0
