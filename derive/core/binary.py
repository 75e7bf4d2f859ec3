"""Elementwise functions of two vectors, each with its partial derivatives beside it.

``max(a, b)`` and ``min(a, b)`` apply entry by entry to two vectors of one shape (the
stabiliser of xLSTM, ``m_t = max(f~_t + m_{t-1}, i~_t)``, is one). Next to its definition each
registers ``local(a, b)``: the diagonals of its two partial derivatives, written with the
Heaviside step ``Θ`` (:class:`~derive.core.primitives.Step`, ``Θ(0) = 1/2``)::

    d max(a, b) = diag(Θ(a - b)) da + diag(Θ(b - a)) db
    d min(a, b) = diag(Θ(b - a)) da + diag(Θ(a - b)) db

Tie convention: where ``a = b`` each argument receives half the cotangent (the subgradient
PyTorch's ``torch.maximum`` / ``torch.minimum`` use); the two halves always add up to the whole,
so ``max(a, b) + min(a, b) = a + b`` holds for the derivatives as well.
"""
from __future__ import annotations

import sympy
from sympy import MatAdd, MatMul
from sympy.matrices.expressions import MatrixExpr

from derive.core.primitives import Step


class Binary(MatrixExpr):
    """``f(a, b)``: a scalar function of two arguments applied to every pair of entries."""

    name: str = ""          # spec-language name: max, min
    latex: str = ""         # LaTeX operator: \max
    numpy: str = ""         # function in derive.codegen.np_primitives

    def __new__(cls, a, b):
        if a.shape != b.shape:
            raise ValueError(f"{cls.name}: shapes {a.shape} and {b.shape} differ")
        return MatrixExpr.__new__(cls, a, b)

    @property
    def shape(self):
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):
        a, b = self.args
        return self.scalar(a._entry(i, j, **kwargs), b._entry(i, j, **kwargs))

    def doit(self, **hints):
        if not hints.get("deep", True):
            return self
        return type(self)(*(a.doit(**hints) for a in self.args))

    def _eval_transpose(self):
        return None

    @staticmethod
    def scalar(a, b):  # pragma: no cover - overridden
        raise NotImplementedError

    @staticmethod
    def local(a, b):  # pragma: no cover - overridden
        """[(d f / d a), (d f / d b)] as the vector expressions on the two diagonals."""
        raise NotImplementedError

    # -- printmethod hooks (str, the project's text and LaTeX printers, sympy.latex, NumPy)
    def _sympystr(self, printer):
        return "%s(%s, %s)" % (self.name, *(printer._print(a) for a in self.args))

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm
        return prettyForm(self._sympystr(printer))

    def _latex(self, printer):
        return r"%s\left(%s, %s\right)" % (self.latex, *(printer._print(a) for a in self.args))

    def _project_latex(self, printer):
        return r"%s\bigl(%s, %s\bigr)" % (self.latex, *(printer._print(a) for a in self.args))

    def _batchnumpycode(self, printer):
        return "%s(%s, %s)" % (self.numpy, *(printer._print(a) for a in self.args))


def _difference(a, b):
    """a - b, unsimplified (the engine brings every argument to its normal form)."""
    return MatAdd(a, MatMul(sympy.Integer(-1), b, evaluate=False), evaluate=False)


class Maximum(Binary):
    """max(a, b), entry by entry."""
    name, latex, numpy = "max", r"\max", "maximum"

    @staticmethod
    def scalar(a, b):
        return sympy.Max(a, b)

    @staticmethod
    def local(a, b):
        return [Step(_difference(a, b)), Step(_difference(b, a))]


class Minimum(Binary):
    """min(a, b), entry by entry."""
    name, latex, numpy = "min", r"\min", "minimum"

    @staticmethod
    def scalar(a, b):
        return sympy.Min(a, b)

    @staticmethod
    def local(a, b):
        return [Step(_difference(b, a)), Step(_difference(a, b))]


#: Two-argument functions a cell definition may call, by spec-language name.
BINARY_FUNCTIONS: dict[str, type[Binary]] = {cls.name: cls for cls in (Maximum, Minimum)}
