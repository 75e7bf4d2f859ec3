"""Plain-text (Unicode) printer for derived expressions: one ``_print_<Class>`` per node.

``diag(σ'(a)) W_hh``, ``f ⊙ c_prev``, ``W_hiᵀ δ_ibar``: the notation of the papers, in a
terminal or a text file. Term order is the order the engine built (``order='none'``);
parentheses come from the one table of :mod:`derive.printing.precedence` (``h_prev ⊙ (W_hnᵀ δ)``).

A Hadamard product with reciprocal factors is written as a division, the numerator's ⊙
product first: ``o ⊙ c / n``, ``c ⊙ o / (n ⊙ n)``, ``f / (f + i)``; a lone reciprocal is
``1 / u``. The division binds like a product: it is parenthesised wherever a Hadamard product
would be (``W (1 / n)``), and a denominator of more than one symbol is in parentheses.
"""
from __future__ import annotations

from sympy import HadamardProduct, MatMul, MatrixSymbol, Transpose
from sympy.printing.str import StrPrinter

from derive.printing.precedence import ATOM, PRODUCT, level, needs_parens, precedence, split_sign
from derive.core.primitives import Elementwise, Reciprocal
from derive.core.reduction import Broadcast


class ConstantMatricesMixin:
    """The constant matrices as a person writes them: I, 0 and 1 (the all-ones vector)."""

    def _print_Identity(self, expr):
        return "I"

    def _print_ZeroMatrix(self, expr):
        return "0"

    def _print_OneMatrix(self, expr):
        return "1ᵀ" if expr.shape[0] == 1 and expr.shape[1] != 1 else "1"


def hadamard_factors(expr) -> list:
    """The factors of a Hadamard product, nested Hadamard products spliced in (associativity:
    the meaning is unchanged), in order."""
    out = []
    for a in expr.args:
        while isinstance(a, Broadcast):     # a broadcast scalar prints as the scalar itself
            a = a.arg
        out.extend(hadamard_factors(a) if isinstance(a, HadamardProduct) else (a,))
    return out


def _divides(u) -> bool:
    """Whether ``u`` prints with a ``/`` at its top (a reciprocal, or a Hadamard product
    with a reciprocal factor)."""
    return isinstance(u, Reciprocal) or (isinstance(u, HadamardProduct) and any(
        isinstance(a, Reciprocal) for a in hadamard_factors(u)))


class TextPrinter(ConstantMatricesMixin, StrPrinter):
    _default_settings = {**StrPrinter._default_settings, "order": "none"}

    def _print_MatrixSymbol(self, expr):
        return expr.name

    def _print_MatAdd(self, expr):
        out = []
        for i, term in enumerate(expr.args):
            neg, c, mats = split_sign(term)
            body = self._product(-c, mats) if neg else self._print(term)
            if neg and -c == 1 and len(mats) == 1 and precedence(mats[0]) >= PRODUCT:
                body = self._print(mats[0])        # - a ⊙ b: no parentheses
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
        factors = hadamard_factors(expr)
        den = [a.arg for a in factors if isinstance(a, Reciprocal)]
        num = [a for a in factors if not isinstance(a, Reciprocal)]
        top = " ⊙ ".join(self._wrap(a, HadamardProduct) for a in num)
        return self._divided(top or "1", den) if den else top

    def _divided(self, top, den):
        """``top / n`` or ``top / (n ⊙ m)``: the arguments of the reciprocal factors; a lone
        atom (a symbol, ``f(u)``, ``1``) stands alone, anything else is parenthesised, and so
        is a factor of the denominator that holds a division itself."""
        if len(den) == 1:
            u = den[0]
            bare = precedence(u) == ATOM and not _divides(u)
            return f"{top} / {self._print(u)}" if bare else f"{top} / ({self._print(u)})"
        parts = [f"({self._print(u)})" if _divides(u) else self._wrap(u, HadamardProduct)
                 for u in den]
        return f"{top} / ({' ⊙ '.join(parts)})"

    def _print_DiagMatrix(self, expr):
        return f"diag({self._print(expr.args[0])})"

    def _print_Transpose(self, expr):
        return self._wrap(expr.arg, Transpose) + "ᵀ"

    def _print_Elementwise(self, expr):
        if isinstance(expr, Reciprocal):
            return self._divided("1", [expr.arg])
        return f"{expr.text or expr.name}({self._print(expr.arg)})"

    def _wrap(self, e, parent):
        """``e`` as an operand of the operation ``parent``, parenthesized by the shared table
        (a lone reciprocal ``1 / u`` as the Hadamard product it is printed as)."""
        s = self._print(e)
        if isinstance(e, Reciprocal):
            p = level(parent)
            return f"({s})" if PRODUCT < p or (PRODUCT == p and parent is not HadamardProduct) else s
        return f"({s})" if needs_parens(e, parent) else s

    def _print(self, expr, **kwargs):
        if isinstance(expr, Elementwise):
            return self._print_Elementwise(expr)
        return super()._print(expr, **kwargs)


def text(expr) -> str:
    """The expression in the papers' notation, as one line of Unicode text."""
    return TextPrinter().doprint(expr)

