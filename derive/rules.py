"""Differentiation rules: one JVP rule and one transpose (VJP) rule per node type.

Read each pair together, as with JAX primitives. For a node ``e`` with children ``u``:

* ``jvp(e, J)`` returns the Jacobian of ``e`` (a :class:`~derive.linmap.LinMap`), given
  ``J(u)``, the Jacobian of each child with respect to the same variable (``J.zero(n)`` is
  the zero Jacobian of an n-vector);
* ``vjp(e, ct)`` returns ``[(u, ct_u), ...]``: the cotangent each child receives when ``e``
  receives the cotangent ``ct`` (a :class:`~derive.algebra.VecPoly`). A matrix parameter
  ``M`` in ``M v`` receives the outer product ``ct v^T`` as a SymPy expression.

:func:`pull_back` applies the VJP rules down to the symbols (leaves); what a symbol
receives is up to the caller (:mod:`derive.cell` accumulates deltas and gradients).
"""
from __future__ import annotations

from sympy import HadamardProduct, MatAdd, MatMul, MatrixSymbol, OneMatrix, ZeroMatrix

from .algebra import VecPoly, add, matmul, transpose
from .linmap import LinMap
from .primitives import Elementwise

JVP: dict = {}
VJP: dict = {}


def rule(node_type):
    """Register ``jvp`` and ``vjp`` for ``node_type`` from a class holding both."""
    def register(holder):
        JVP[node_type] = holder.jvp
        VJP[node_type] = holder.vjp
        return holder
    return register


def split_matmul(e):
    """A MatMul as (rational coefficient, [matrices...])."""
    c, mats = e.as_coeff_matrices()
    return c, list(mats)


@rule(MatAdd)
class AddRule:
    """d(a + b) = da + db;  a and b both receive ct."""

    @staticmethod
    def jvp(e, J):
        parts = [J(a) for a in e.args]
        out = parts[0]
        for p in parts[1:]:
            out = out + p
        return out.simplified()

    @staticmethod
    def vjp(e, ct):
        return [(a, ct) for a in e.args]


@rule(MatMul)
class MatMulRule:
    """d(k M_1 ... M_n v) = k M_1 ... M_n dv  (the matrices are parameters, constant in x);
    v receives k (M_1 ... M_n)^T ct, and M_i receives k (M_1..M_{i-1})^T ct (M_{i+1}..M_n v)^T."""

    @staticmethod
    def jvp(e, J):
        c, mats = split_matmul(e)
        *consts, v = mats
        inner = J(v)
        if consts:
            inner = LinMap.matrix(matmul(*consts)) @ inner
        return inner.scaled(c) if c != 1 else inner

    @staticmethod
    def vjp(e, ct):
        c, mats = split_matmul(e)
        *consts, v = mats
        ct = ct.scaled(c) if c != 1 else ct
        if not consts:
            return [(v, ct)]
        out = [(v, VecPoly.atom(matmul(*[transpose(m) for m in reversed(consts)], ct.to_expr())))]
        for i, m in enumerate(consts):
            left = [transpose(a) for a in reversed(consts[:i])]
            right = matmul(*consts[i + 1:], v) if i + 1 < len(consts) else v
            out.append((m, matmul(*left, ct.to_expr(), transpose(right))))
        return out


@rule(HadamardProduct)
class HadamardRule:
    """d(a_1 * ... * a_n) = sum_i diag(prod_{j != i} a_j) da_i;  a_i receives ct * prod_{j != i} a_j."""

    @staticmethod
    def _others(e, i):
        acc = VecPoly.one(e.shape)
        for j, a in enumerate(e.args):
            if j != i:
                acc = acc * VecPoly.from_expr(a)
        return acc

    @classmethod
    def jvp(cls, e, J):
        out = None
        for i, a in enumerate(e.args):
            term = LinMap.diagonal(cls._others(e, i)) @ J(a)
            out = term if out is None else out + term
        return out.simplified()

    @classmethod
    def vjp(cls, e, ct):
        return [(a, ct * cls._others(e, i)) for i, a in enumerate(e.args)]


@rule(Elementwise)
class ElementwiseRule:
    """d f(u) = diag(f'(u)) du;  u receives f'(u) * ct."""

    @staticmethod
    def _fprime(e):
        if e.derivative is None:
            raise NotImplementedError(f"no derivative rule registered for {type(e).__name__}")
        return VecPoly.atom(e.derivative(VecPoly.from_expr(e.arg).to_expr()))

    @classmethod
    def jvp(cls, e, J):
        return LinMap.diagonal(cls._fprime(e)) @ J(e.arg)

    @classmethod
    def vjp(cls, e, ct):
        return [(e.arg, ct * cls._fprime(e))]


@rule(OneMatrix)
class ConstantRule:
    """A constant (the all-ones vector): zero derivative, passes nothing back."""

    @staticmethod
    def jvp(e, J):
        return J.zero(e.shape[0])

    @staticmethod
    def vjp(e, ct):
        return []


JVP[ZeroMatrix] = ConstantRule.jvp
VJP[ZeroMatrix] = ConstantRule.vjp


def lookup(table, e):
    """The rule for e's type (or the nearest registered base class)."""
    for cls in type(e).__mro__:
        if cls in table:
            return table[cls]
    raise NotImplementedError(f"no differentiation rule for {type(e).__name__}: {e}")


def pull_back(e, ct, leaf):
    """Apply the transpose rules from ``e`` down to its leaves: ``leaf(symbol, cotangent)``
    is called once for every occurrence of a symbol, with the cotangent that reaches it."""
    if isinstance(e, MatrixSymbol):
        leaf(e, ct)
        return
    for child, child_ct in lookup(VJP, e)(e, ct):
        pull_back(child, child_ct, leaf)


def sum_cotangents(parts, shape):
    """The sum of the cotangents a symbol received: a VecPoly for a vector, the SymPy sum of
    the outer products for a matrix."""
    if shape[1] == 1:
        acc = VecPoly.zero(shape)
        for ct in parts:
            acc = acc + ct
        return acc
    return add(parts, shape)
