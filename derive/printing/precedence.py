"""One precedence table for the expression vocabulary, shared by the printers.

After SymPy's ``precedence`` / ``parenthesize``: every node class has a binding level;
a child is parenthesized inside its parent when it binds more loosely, or when it binds
equally but is a different operation. Matrix products (juxtaposition, ``W x``) and
Hadamard products (``a ⊙ b``) share one level on purpose: a reader cannot be assumed to
know which binds tighter, so ``a ⊙ (W x)`` and ``W (a ⊙ b)`` are always written with
parentheses. A product with a negative coefficient binds like a sum (``a ⊙ (-x)``).
Signs are read from the expression (:func:`split_sign`), never from printed text.
"""
from __future__ import annotations

from sympy import HadamardProduct, MatAdd, MatMul, Transpose
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive.core.reduction import Broadcast

SUM, PRODUCT, POSTFIX, ATOM = 10, 20, 40, 50

#: node class -> binding level; classes not listed (symbols, f(u), diag(v), I, 0, 1) are atoms
#: (function application and names bind tightest).
PRECEDENCE = {MatAdd: SUM, MatMul: PRODUCT, HadamardProduct: PRODUCT, Transpose: POSTFIX,
              DiagMatrix: ATOM}


def level(cls) -> int:
    """The binding level of an operation (a node class)."""
    for base in cls.__mro__:
        if base in PRECEDENCE:
            return PRECEDENCE[base]
    return ATOM


def precedence(e) -> int:
    """The binding level of the expression ``e`` (a negative product binds like a sum)."""
    if isinstance(e, MatMul) and split_sign(e)[0]:
        return SUM
    if isinstance(e, Broadcast):                 # printed as its scalar: binds like it
        return precedence(e.arg)
    return level(type(e))


def needs_parens(child, parent) -> bool:
    """Whether ``child`` must be parenthesized as an operand of the operation ``parent``
    (a node class): it binds more loosely, or as tightly but is another operation."""
    c, p = precedence(child), level(parent)
    return c < p or (c == p and c != ATOM and not isinstance(child, parent))


def split_sign(term):
    """(negative, coefficient, matrices) of a product; other terms are (False, 1, [term])."""
    if isinstance(term, MatMul):
        c, mats = term.as_coeff_matrices()
        return c < 0, c, list(mats)
    return False, 1, [term]
