"""Building matrix expressions without SymPy's reordering: SymPy's ``MatAdd``/``MatMul``/
``HadamardProduct`` constructors with ``evaluate=False``, so the order of terms is ours (the
normal forms of :mod:`derive.core.algebra` decide it)."""
from __future__ import annotations

import sympy
from sympy import HadamardProduct, Identity, MatAdd, MatMul, OneMatrix, Transpose, ZeroMatrix
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive.core.matrixstate import Factor


def add(terms, shape):
    """SumOf of matrix expressions in the given order; zeros dropped, nested sums flattened."""
    flat = []
    for t in terms:
        if isinstance(t, ZeroMatrix):
            continue
        flat.extend(t.args if isinstance(t, MatAdd) else (t,))
    if not flat:
        return ZeroMatrix(*shape)
    if len(flat) == 1:
        return flat[0]
    return MatAdd(*flat, evaluate=False)


def matmul(*factors):
    """Matrix product in the given order; identities dropped, a zero factor gives zero."""
    coeff = sympy.Integer(1)
    flat = []
    for f in factors:
        if isinstance(f, MatMul):
            c, mats = f.as_coeff_matrices()
            coeff *= c
            flat.extend(mats)
        elif isinstance(f, Identity):
            continue
        else:
            flat.append(f)
    rows = factors[0].shape[0]
    cols = factors[-1].shape[1]
    if coeff == 0 or any(isinstance(f, ZeroMatrix) for f in flat):
        return ZeroMatrix(rows, cols)
    if not flat:
        return Identity(rows) if coeff == 1 else MatMul(coeff, Identity(rows), evaluate=False)
    if coeff == 1 and len(flat) == 1:
        return flat[0]
    args = ([coeff] if coeff != 1 else []) + flat
    return MatMul(*args, evaluate=False)


def scale(coeff, expr):
    """coeff * expr for a rational coefficient."""
    coeff = sympy.Rational(coeff)
    if coeff == 1:
        return expr
    if coeff == 0:
        return ZeroMatrix(*expr.shape)
    if isinstance(expr, MatMul):
        c, mats = expr.as_coeff_matrices()
        coeff *= c
        expr = mats[0] if len(mats) == 1 else MatMul(*mats, evaluate=False)
        if coeff == 1:
            return expr
    return MatMul(coeff, expr, evaluate=False)


def hadamard(factors):
    """Hadamard (entrywise) product in the given order."""
    flat = []
    for f in factors:
        flat.extend(f.args if isinstance(f, HadamardProduct) else (f,))
    if len(flat) == 1:
        return flat[0]
    return HadamardProduct(*flat, evaluate=False)


def diag(v):
    """diag(v): the square matrix with the column vector v on its diagonal."""
    return DiagMatrix(v)


def transpose(expr):
    """expr^T with the transpose pushed to the leaves: (AB)^T = B^T A^T, diag(v)^T = diag(v)."""
    if isinstance(expr, Transpose):
        return expr.arg
    if isinstance(expr, MatMul):
        c, mats = expr.as_coeff_matrices()
        return scale(c, matmul(*[transpose(m) for m in reversed(mats)]))
    if isinstance(expr, MatAdd):
        return add([transpose(a) for a in expr.args], (expr.shape[1], expr.shape[0]))
    if isinstance(expr, (DiagMatrix, Identity)):
        return expr
    if isinstance(expr, (ZeroMatrix, OneMatrix)):
        return type(expr)(expr.shape[1], expr.shape[0])
    if isinstance(expr, Factor):
        return expr.T
    return Transpose(expr)


def ones(shape):
    return OneMatrix(*shape)
