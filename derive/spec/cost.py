"""The cost of deriving a cell, bounded before any derivation runs."""
from __future__ import annotations

from sympy import HadamardProduct, MatAdd, MatMul, MatrixSymbol

from derive.core.binary import Binary
from derive.core.primitives import Elementwise
from derive.core.symbols import Var


def _monomials(e):
    """Number of Hadamard monomials of ``e`` once expanded (VecPoly.from_expr), an upper bound."""
    if isinstance(e, MatAdd):
        return sum(_monomials(a) for a in e.args)
    if isinstance(e, HadamardProduct):
        out = 1
        for a in e.args:
            out *= _monomials(a)
        return out
    if isinstance(e, MatMul):
        c, mats = e.as_coeff_matrices()
        if c != 1 and len(mats) == 1:
            return _monomials(mats[0])
    return 1


def derivation_size(equations) -> int:
    """An upper bound on the work of deriving a cell: over all equations, the number of
    (path to a leaf, expanded coefficient monomial) pairs of the chain rule.

    For a node ``e``: a leaf counts 1; ``a + b`` adds; ``a * b`` counts
    ``size(a) * mono(b) + mono(a) * size(b)`` (product rule, coefficients expanded); ``M v``
    counts ``size(v)`` plus one per matrix; ``f(u)`` counts ``size(u)``; an equation's name
    counts its definition. Every Jacobian term and every backward coefficient the engine
    builds is one of these pairs (before like terms are merged), so the engine's time and
    memory grow with this number; it grows exponentially only for specs that would make the
    derivation itself exponential (e.g. ``e_k = tanh(e_{k-1} + W @ e_{k-1})`` repeated).
    """
    defs = {eq.lhs: eq.rhs for eq in equations}
    memo: dict = {}

    def size(e):
        if e in memo:
            return memo[e]
        if isinstance(e, Var) and e in defs:
            out = size(defs[e])
        elif isinstance(e, MatrixSymbol):
            out = 1
        elif isinstance(e, MatAdd):
            out = sum(size(a) for a in e.args)
        elif isinstance(e, HadamardProduct):
            monos = [_monomials(a) for a in e.args]
            out = 0
            for i, a in enumerate(e.args):
                others = 1
                for j, mono in enumerate(monos):
                    if j != i:
                        others *= mono
                out += others * size(a)
        elif isinstance(e, MatMul):
            _, mats = e.as_coeff_matrices()
            out = size(mats[-1]) + len(mats) - 1
        elif isinstance(e, Elementwise):
            out = size(e.arg)
        elif isinstance(e, Binary):
            out = 2 * sum(size(a) for a in e.args)      # each partial holds both arguments
        else:
            out = 0
        memo[e] = out
        return out
    return sum(size(eq.lhs) for eq in equations)
