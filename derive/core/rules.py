"""Differentiation rules: one derivative per node type (JAX's ``defjvp`` / ``defbilinear``).

Each node type registers only its local linear maps. For a node ``e`` with vector children
``u``, ``partials(e)`` returns ``[(u, L_u), ...]`` where ``L_u = d e / d u`` (a
:class:`~derive.core.linmap.LinMap`) is the Jacobian of ``e`` with respect to that child, the
other children held fixed. Both modes are derived from these maps, so no derivative is
written twice:

* forward (:func:`jvp`): ``J(e) = sum_u L_u J(u)`` (the chain rule), given the Jacobian
  ``J(u)`` of every child with respect to the same variable;
* reverse (:func:`pull_back`): when ``e`` receives the cotangent ``ct``, child ``u`` receives
  ``L_u^T ct`` (:meth:`LinMap.transpose_apply`), the transpose of the same linear map.

The one rule reverse mode needs besides: ``k M_1 ... M_n v`` is bilinear in each matrix
parameter ``M_i`` and ``v``; ``M_i`` is not a vector and has no Jacobian here, and its
cotangent is the transpose of ``dM_i -> k M_1..dM_i..M_n v``, the outer product
``k (M_1..M_{i-1})^T ct (M_{i+1}..M_n v)^T`` (:func:`defbilinear`, beside MatMul's partials).

What a symbol (a leaf) receives is up to the caller (:mod:`derive.core.cell` accumulates deltas
and gradients).
"""
from __future__ import annotations

from sympy import HadamardProduct, MatAdd, MatMul, MatrixSymbol, OneMatrix, ZeroMatrix

from derive.core.algebra import VecPoly, add, matmul, transpose
from derive.core.binary import Binary
from derive.core.linmap import LinMap
from derive.core.matrixstate import (ByMatrix, ByMatrixT, KronLeft, KronLeftT, KronRight,
                                     KronRightT, MatTVec, MatVec, Outer)
from derive.core.primitives import Elementwise
from derive.core.reduction import Broadcast, SumOf

#: node type -> partials(e) -> [(vector child, LinMap d e / d child)]: the only derivative.
PARTIALS: dict = {}
#: node type -> (e, ct) -> [(matrix child, cotangent expr)]: transposes of bilinear maps.
BILINEAR: dict = {}


def defjvp(node_type):
    """Register ``partials(e)``, the local Jacobians of ``node_type`` w.r.t. its children."""
    def register(partials):
        PARTIALS[node_type] = partials
        return partials
    return register


def defbilinear(node_type):
    """Register the transpose of ``node_type`` with respect to its matrix factors."""
    def register(transpose_rule):
        BILINEAR[node_type] = transpose_rule
        return transpose_rule
    return register


def split_matmul(e):
    """A MatMul as (rational coefficient, [matrices...])."""
    c, mats = e.as_coeff_matrices()
    return c, list(mats)


@defjvp(MatAdd)
def add_partials(e):
    """d(a_1 + ... + a_n) / d a_i = I."""
    return [(a, LinMap.identity(a.shape[0])) for a in e.args]


@defjvp(MatMul)
def matmul_partials(e):
    """d(k M_1 ... M_n v) / dv = k M_1 ... M_n (the matrices are parameters, constant in x)."""
    c, mats = split_matmul(e)
    *consts, v = mats
    local = LinMap.matrix(matmul(*consts)) if consts else LinMap.identity(v.shape[0])
    return [(v, local.scaled(c) if c != 1 else local)]


@defbilinear(MatMul)
def matmul_transpose_matrices(e, ct):
    """M_i in k M_1 ... M_n v receives k (M_1..M_{i-1})^T ct (M_{i+1}..M_n v)^T: the transpose
    of the linear map dM_i -> k M_1..M_{i-1} dM_i M_{i+1}..M_n v, applied to ct."""
    c, mats = split_matmul(e)
    *consts, v = mats
    ct = ct.scaled(c) if c != 1 else ct
    out = []
    for i, m in enumerate(consts):
        left = [transpose(a) for a in reversed(consts[:i])]
        right = matmul(*consts[i + 1:], v) if i + 1 < len(consts) else v
        out.append((m, matmul(*left, ct.to_expr(), transpose(right))))
    return out


@defjvp(HadamardProduct)
def hadamard_partials(e):
    """d(a_1 * ... * a_n) / d a_i = diag(prod_{j != i} a_j)."""
    out = []
    for i, a in enumerate(e.args):
        others = VecPoly.one(e.shape)
        for j, b in enumerate(e.args):
            if j != i:
                others = others * VecPoly.from_expr(b)
        out.append((a, LinMap.diagonal(others)))
    return out


@defjvp(Elementwise)
def elementwise_partials(e):
    """d f(u) / du = diag(f'(u)), with f' the primitive's registered derivative node, or, for
    a primitive that derives with its output (exp, 1/u), f' written in y = f(u)."""
    if e.derivative is None:
        raise NotImplementedError(f"no derivative rule registered for {type(e).__name__}")
    u = VecPoly.from_expr(e.arg).to_expr()
    if e.derive_with_output:
        fprime = e.from_output(VecPoly.atom(type(e)(u)))
    else:
        fprime = VecPoly.atom(e.derivative(u))
    return [(e.arg, LinMap.diagonal(fprime))]


@defjvp(Binary)
def binary_partials(e):
    """d f(a, b) = diag(f_a) da + diag(f_b) db, with the partials f_a, f_b registered beside
    the function (:meth:`derive.core.binary.Binary.local`)."""
    a, b = (VecPoly.from_expr(x).to_expr() for x in e.args)
    return [(child, LinMap.diagonal(VecPoly.from_expr(d)))
            for child, d in zip(e.args, type(e).local(a, b))]


@defjvp(SumOf)
def sum_partials(e):
    """d SumOf(v) / dv = 1^T (the 1 x n row of ones); its transpose broadcasts."""
    return [(e.arg, LinMap.matrix(OneMatrix(1, e.arg.shape[0])))]


@defjvp(Broadcast)
def broadcast_partials(e):
    """d Broadcast(s, n) / ds = 1_n (the n x 1 column of ones); its transpose sums."""
    return [(e.arg, LinMap.matrix(OneMatrix(e.shape[0], 1)))]


@defjvp(Outer)
def outer_partials(e):
    """d vec(u w^T) = (I (x) w) du + (u (x) I) dw."""
    u, w = (VecPoly.from_expr(a).to_expr() for a in e.args)
    return [(e.args[0], LinMap.matrix(KronRight(w))), (e.args[1], LinMap.matrix(KronLeft(u)))]


@defjvp(MatVec)
def matvec_partials(e):
    """d (C q) = (I (x) q^T) dvec(C) + C dq."""
    C, q = (VecPoly.from_expr(a).to_expr() for a in e.args)
    return [(e.args[0], LinMap.matrix(KronRightT(q))), (e.args[1], LinMap.matrix(ByMatrix(C)))]


@defjvp(MatTVec)
def mattvec_partials(e):
    """d (C^T v) = (v^T (x) I) dvec(C) + C^T dv."""
    C, v = (VecPoly.from_expr(a).to_expr() for a in e.args)
    return [(e.args[0], LinMap.matrix(KronLeftT(v))), (e.args[1], LinMap.matrix(ByMatrixT(C)))]


@defjvp(OneMatrix)
@defjvp(ZeroMatrix)
def constant_partials(e):
    """A constant (the all-ones or the zero vector) has no children: zero derivative."""
    return []


def lookup(table, e):
    """The rule for e's type (or the nearest registered base class)."""
    for cls in type(e).__mro__:
        if cls in table:
            return table[cls]
    raise NotImplementedError(f"no differentiation rule for {type(e).__name__}: {e}")


def jvp(e, J) -> LinMap:
    """The Jacobian of ``e``: ``sum_u (d e / d u) J(u)`` over its children, where ``J(u)`` is
    the Jacobian of a child w.r.t. the variable (``J.zero(n)``: zero Jacobian of an n-vector)."""
    out = J.zero(e.shape[0])
    for child, local in lookup(PARTIALS, e)(e):
        out = out + local @ J(child)
    return out.simplified()


def pull_back(e, ct, leaf):
    """Reverse mode from ``e`` down to its leaves: a vector child ``u`` receives
    ``(d e / d u)^T ct``, a matrix factor its bilinear transpose; ``leaf(symbol, cotangent)``
    is called once for every occurrence of a symbol, with the cotangent that reaches it."""
    if isinstance(e, MatrixSymbol):
        leaf(e, ct)
        return
    for child, local in lookup(PARTIALS, e)(e):
        pull_back(child, local.transpose_apply(ct), leaf)
    for cls in type(e).__mro__:
        if cls in BILINEAR:
            for child, child_ct in BILINEAR[cls](e, ct):
                pull_back(child, child_ct, leaf)
            break


def sum_cotangents(parts, shape):
    """The sum of the cotangents a symbol received: a VecPoly for a vector, the SymPy sum of
    the outer products for a matrix."""
    if shape[1] == 1:
        acc = VecPoly.zero(shape)
        for ct in parts:
            acc = acc + ct
        return acc
    return add(parts, shape)
