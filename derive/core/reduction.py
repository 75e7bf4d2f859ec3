"""Scalars among vectors: the sum of a vector's entries, a scalar's broadcast, a dimension.

A scalar is a 1 x 1 matrix expression. Three nodes connect scalars and n-vectors; the first
two are linear, so each one's derivative is one constant matrix (registered in
:mod:`derive.core.rules` as its JVP; reverse mode transposes it, which turns one into the other):

* :class:`SumOf` ``1^T v``: the sum of the entries of a column vector, ``d SumOf(v) = 1^T dv``;
* :class:`Broadcast` ``s 1_n``: the n-vector whose entries are all the scalar ``s``,
  ``d Broadcast(s) = 1_n ds``;
* :class:`DimSize`: the size ``n`` of a dimension as a scalar (a constant: no derivative, no
  gradient), so ``mean(v) = SumOf(v) / n`` is written with the other nodes.

The spec language's ``sum``, ``mean``, ``dot(u, v) = SumOf(u * v)`` and ``norm(v) =
sqrt(SumOf(v * v))`` are built from these, and a scalar meeting a vector in ``+``, ``*``, ``/``,
``max`` or ``min`` is broadcast. The product ``1_n 1^T`` of the two constant matrices is what
the non-diagonal Jacobians of layer norm are made of.
"""
from __future__ import annotations

import sympy
from sympy import HadamardProduct, MatAdd, MatMul, MatrixSymbol
from sympy.matrices.expressions import MatrixExpr

from derive.core.matrixstate import MatTVec, MatVec, Outer
from derive.core.symbols import CellSymbol, Param


#: the nodes that are bracketed as an operand of 1^T or of a dot product u^T v
COMPOUND = (MatAdd, MatMul, HadamardProduct, MatVec, MatTVec, Outer)


class DimSize(Param):
    """The size of a dimension (``H``) as a 1 x 1 constant, named like the dimension: a
    parameter that is never learned (no gradient; the kernels read it from the arrays' shapes)."""
    role = "size"

    def __new__(cls, dim, rows=1, cols=1):          # (rows, cols: SymPy's rebuild passes them)
        return CellSymbol.__new__(cls, str(dim), 1, 1)

    @property
    def dim(self):
        """The dimension symbol it measures."""
        return sympy.Symbol(self.name, integer=True, positive=True)

    def _latex(self, printer):
        return self.name

    def _project_latex(self, printer):
        return self.name

    def _sympystr(self, printer):
        return self.name


class SumOf(MatrixExpr):
    """``1^T v``: the sum of the entries of the column vector ``v``, a 1 x 1 scalar."""

    def __new__(cls, v):
        if v.shape[1] != 1:
            raise ValueError(f"sum: {v} is not a column vector (shape {v.shape})")
        return MatrixExpr.__new__(cls, v)

    @property
    def arg(self):
        return self.args[0]

    @property
    def shape(self):
        return (sympy.Integer(1), sympy.Integer(1))

    def _entry(self, i, j, **kwargs):
        n = sympy.sympify(self.arg.shape[0])
        if not n.is_Integer:
            raise ValueError(f"sum over a dimension of unknown size {n}")
        return sympy.Add(*[self.arg._entry(k, 0, **kwargs) for k in range(int(n))])

    def doit(self, **hints):
        return type(self)(self.arg.doit(**hints)) if hints.get("deep", True) else self

    def _eval_transpose(self):
        return self

    def _dot(self):
        """(u, v) when the sum is a dot product 1^T (u * v) of two factors, else None."""
        a = self.arg
        if isinstance(a, HadamardProduct) and len(a.args) == 2:
            return a.args
        return None

    def _sympystr(self, printer):
        uv = self._dot()
        if uv:                                          # u^T v
            u, v = ("(%s)" % printer._print(x) if isinstance(x, COMPOUND) else printer._print(x)
                    for x in uv)
            return "%sᵀ %s" % (u, v)
        return "sum(%s)" % printer._print(self.arg)

    def _latex(self, printer):
        return r"\mathbf{1}^\top \left(%s\right)" % printer._print(self.arg)

    def _batchnumpycode(self, printer):
        uv = self._dot()
        if uv and not any(is_batch_scalar(x) for x in uv):
            return "dot(%s, %s)" % tuple(printer._print(x) for x in uv)    # u^T v, no temporary
        return "numpy.sum(%s, axis=-1, keepdims=True)" % printer._print(self.arg)


class Broadcast(MatrixExpr):
    """``s 1_n``: the scalar ``s`` (1 x 1) as the n-vector of its copies."""

    def __new__(cls, s, n):
        if tuple(s.shape) != (1, 1):
            raise ValueError(f"broadcast: {s} is not a scalar (shape {s.shape})")
        return MatrixExpr.__new__(cls, s, sympy.sympify(n))

    @property
    def arg(self):
        return self.args[0]

    @property
    def shape(self):
        return (self.args[1], sympy.Integer(1))

    def _entry(self, i, j, **kwargs):
        return self.arg._entry(0, 0, **kwargs)

    def doit(self, **hints):
        return type(self)(self.arg.doit(**hints), self.args[1]) if hints.get("deep", True) else self

    def _eval_transpose(self):
        return None

    def _sympystr(self, printer):
        return printer._print(self.arg)

    def _latex(self, printer):
        return printer._print(self.arg)

    def _project_latex(self, printer):
        return printer._print(self.arg)

    def _batchnumpycode(self, printer):
        # a (B, 1) array: NumPy broadcasts it against the (B, n) vectors it meets
        return printer._print(self.arg)


def is_scalar(e) -> bool:
    """Whether e is 1 x 1."""
    return tuple(e.shape) == (1, 1)


def is_batch_scalar(e) -> bool:
    """Whether e is a (B, 1) array in the kernels: a 1 x 1 expression or a broadcast scalar
    (NumPy broadcasts it against the (B, n) vectors it meets)."""
    return isinstance(e, Broadcast) or is_scalar(e)


def is_row_scalar(e) -> bool:
    """Whether e is one number per batch row: :func:`is_batch_scalar`, or built from 1 x 1
    leaves only (a Hadamard product of scalar gates, which SymPy may give a vector shape)."""
    leaves = e.atoms(MatrixSymbol)
    return is_batch_scalar(e) or (bool(leaves) and all(tuple(m.shape) == (1, 1) for m in leaves))
