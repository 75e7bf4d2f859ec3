"""Plain-text (Unicode) printer for derived expressions: one ``_print_<Class>`` per node.

``diag(σ'(a)) W_hh``, ``f ⊙ c_prev``, ``W_hiᵀ δ_ibar``: the notation of the papers, in a
terminal or a text file. Term order is the order the engine built (``order='none'``);
parentheses come from the one table of :mod:`derive.printing.precedence` (``h_prev ⊙ (W_hnᵀ δ)``).
"""
from __future__ import annotations

from sympy import HadamardProduct, MatMul, Transpose
from sympy.printing.str import StrPrinter

from derive.printing.precedence import needs_parens, split_sign
from derive.core.primitives import Elementwise


class ConstantMatricesMixin:
    """The constant matrices as a person writes them: I, 0 and 1 (the all-ones vector)."""

    def _print_Identity(self, expr):
        return "I"

    def _print_ZeroMatrix(self, expr):
        return "0"

    def _print_OneMatrix(self, expr):
        return "1"


class TextPrinter(ConstantMatricesMixin, StrPrinter):
    _default_settings = {**StrPrinter._default_settings, "order": "none"}

    def _print_MatrixSymbol(self, expr):
        return expr.name

    def _print_MatAdd(self, expr):
        out = []
        for i, term in enumerate(expr.args):
            neg, c, mats = split_sign(term)
            body = self._product(-c, mats) if neg else self._print(term)
            if neg:
                out.append(("- " if i == 0 else " - ") + body)
            else:
                out.append(("" if i == 0 else " + ") + body)
        return "".join(out)

    def _print_MatMul(self, expr):
        neg, c, mats = split_sign(expr)
        return "-" + self._product(-c, mats) if neg else self._product(c, mats)

    def _product(self, c, mats):
        """|c| M_1 ... M_n for c > 0."""
        body = " ".join(self._wrap(m, MatMul) for m in mats)
        return body if c == 1 else f"{self._print(c)} {body}"

    def _print_HadamardProduct(self, expr):
        return " ⊙ ".join(self._wrap(a, HadamardProduct) for a in expr.args)

    def _print_DiagMatrix(self, expr):
        return f"diag({self._print(expr.args[0])})"

    def _print_Transpose(self, expr):
        return self._wrap(expr.arg, Transpose) + "ᵀ"

    def _print_Elementwise(self, expr):
        return f"{expr.text or expr.name}({self._print(expr.arg)})"

    def _wrap(self, e, parent):
        """``e`` as an operand of the operation ``parent``, parenthesized by the shared table."""
        s = self._print(e)
        return f"({s})" if needs_parens(e, parent) else s

    def _print(self, expr, **kwargs):
        if isinstance(expr, Elementwise):
            return self._print_Elementwise(expr)
        return super()._print(expr, **kwargs)


def text(expr) -> str:
    """The expression in the papers' notation, as one line of Unicode text."""
    return TextPrinter().doprint(expr)
