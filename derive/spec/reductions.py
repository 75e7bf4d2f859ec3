"""The spec language's reductions to a scalar and its broadcasting of scalars.

Reductions (``dot(u, v)``, ``sum(v)``, ``mean(v)``, ``norm(v)``) are written with the
engine's two linear nodes (:mod:`derive.core.reduction`), so their derivatives come from those
nodes' one rule each::

    sum(v)    = SumOf(v)                       (1^T v)
    mean(v)   = SumOf(v) / n                   (n: the size of v's dimension)
    dot(u, v) = SumOf(u * v)                   (u^T v)
    norm(v)   = sqrt(SumOf(v * v))             (the L2 norm; not differentiable at v = 0)
    outer(u, w) = vec(u w^T)                 (an (H, H) matrix state's value, row-major)
    C @ v                                    (a matrix state times a vector)

A scalar (1 x 1: a reduction, a parameter of shape ["1"], or a function of those) that meets
an n-vector in ``+``, ``-``, ``*``, ``/``, ``max`` or ``min`` is broadcast to n entries.
"""
from __future__ import annotations

from derive.core.algebra import broadcast, hadamard
from derive.core.matrixstate import MatVec, Outer
from derive.core.primitives import FUNCTIONS, Reciprocal
from derive.core.reduction import DimSize, SumOf, is_scalar

#: reduction name -> number of vector arguments (outer(u, w) = vec(u w^T): a matrix state's value)
REDUCTIONS = {"sum": 1, "mean": 1, "dot": 2, "norm": 1, "outer": 2}


def reduce(name, args):
    """The scalar expression of a reduction of the column vectors ``args`` (shapes checked
    by the caller)."""
    v = args[0]
    if name == "sum":
        return SumOf(v)
    if name == "mean":
        return hadamard([SumOf(v), Reciprocal(DimSize(v.shape[0]))])
    if name == "dot":
        return SumOf(hadamard([v, args[1]]))
    if name == "norm":
        return FUNCTIONS["sqrt"](SumOf(hadamard([v, v])))
    if name == "outer":
        return Outer(v, args[1])
    raise KeyError(name)                                   # pragma: no cover


def matrix_times(C, v):
    """``C @ v`` for a matrix state C (held as an n^2-vector) and an n-vector v; None when C
    is not the vectorised square of v's size."""
    if v.shape[1] == 1 and C.shape[1] == 1 and v.shape[0] != 1 and C.shape[0] == v.shape[0] ** 2:
        return MatVec(C, v)
    return None


def unify(a, b):
    """(a, b) with a scalar broadcast to the other operand's rows when the other is a vector;
    other shapes unchanged (the caller reports a mismatch)."""
    if is_scalar(a) and not is_scalar(b) and b.shape[1] == 1:
        return broadcast(a, b.shape[0]), b
    if is_scalar(b) and not is_scalar(a) and a.shape[1] == 1:
        return a, broadcast(b, a.shape[0])
    return a, b
