"""Plain-text (Unicode) printer for derived expressions: one ``_print_<Class>`` per node.

``diag(σ'(a)) W_hh``, ``f ⊙ c_prev``, ``W_hiᵀ δ_ibar``: the notation of the papers, in a
terminal or a text file. Term order is the order the engine built (``order='none'``).
"""
from __future__ import annotations

from sympy.printing.str import StrPrinter

from .primitives import Elementwise


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
            s = self._print(term)
            if s.startswith("-"):
                out.append(("- " if i == 0 else " - ") + s[1:].lstrip())
            else:
                out.append(("" if i == 0 else " + ") + s)
        return "".join(out)

    def _print_MatMul(self, expr):
        c, mats = expr.as_coeff_matrices()
        parts = [self._wrap(m, ("MatAdd", "HadamardProduct")) for m in mats]
        body = " ".join(parts)
        if c == 1:
            return body
        if c == -1:
            return "-" + body
        return f"{self._print(c)} {body}"

    def _print_HadamardProduct(self, expr):
        return " ⊙ ".join(self._wrap(a, ("MatAdd",)) for a in expr.args)

    def _print_DiagMatrix(self, expr):
        return f"diag({self._print(expr.args[0])})"

    def _print_Transpose(self, expr):
        return self._wrap(expr.arg, ("MatAdd", "MatMul", "HadamardProduct")) + "ᵀ"

    def _print_Elementwise(self, expr):
        name = {"sigmoid": "σ", "sigmoid_prime": "σ'"}.get(expr.name, expr.name.replace("_prime", "'"))
        return f"{name}({self._print(expr.arg)})"

    def _wrap(self, e, kinds):
        s = self._print(e)
        if type(e).__name__ in kinds or (type(e).__name__ == "MatMul" and e.args[0] == -1):
            return f"({s})"
        return s

    def _print(self, expr, **kwargs):
        if isinstance(expr, Elementwise):
            return self._print_Elementwise(expr)
        return super()._print(expr, **kwargs)


def text(expr) -> str:
    """The expression in the papers' notation, as one line of Unicode text."""
    return TextPrinter().doprint(expr)
