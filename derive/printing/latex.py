"""LaTeX printer for derived expressions: one ``_break_<Class>`` per node of the vocabulary.

``\\operatorname{diag}\\bigl(\\sigma'(a_t)\\bigr) W_{hh}``, ``f_t \\odot c_{t-1}``,
``W_{hi}^{\\top} \\delta\\bar{\\imath}_t``: the notation of the papers, amsmath only. Symbols
are named by :mod:`derive.printing.notation` (time index by role, per-cell overrides, notation maps).
Every sum, product and Hadamard product is printed in the order of ``expr.args`` (the
engine's textbook order); nothing is reordered. Parentheses come from the one table of
:mod:`derive.printing.precedence` (shared with the text printer).

Long equations: :meth:`ProjectLatexPrinter.breakable` prints an expression as a
:class:`~derive.printing.latex_layout.Breakable`, with an allowed break before every
``+``/``-`` of a sum, tagged with the sum's nesting depth; ``doprint`` (and SymPy's own
printing of a node that holds one of ours) gives its ``flat()`` form. The ``align`` layout
(:mod:`derive.printing.latex_layout`) takes the breakable value directly.
"""
from __future__ import annotations

import sympy
from sympy import HadamardProduct, MatMul, MatrixSymbol
from sympy.printing.latex import LatexPrinter

from derive.core.cell import register_display
from derive.printing.latex_layout import (LINE_WIDTH, Breakable, Eq, Piece, Text,
                                          align_env, aligned_env, layout_rhs, visual_width)
from derive.printing.notation import T, Namer
from derive.printing.precedence import needs_parens, split_sign
from derive.core.symbols import Var, register_latex
from derive.printing.text import ConstantMatricesMixin

__all__ = ["Breakable", "Eq", "LINE_WIDTH", "Piece", "ProjectLatexPrinter", "Text", "align_env",
           "aligned_env", "cell_equations_latex", "expr_latex", "layout_rhs", "printer",
           "visual_width"]


class ProjectLatexPrinter(ConstantMatricesMixin, LatexPrinter):
    """SymPy's LaTeX printer with the project's matrix vocabulary. The nodes of the
    vocabulary are built as :class:`Breakable` by ``_break_<Class>(expr, depth)`` (``depth``:
    how many sums enclose ``expr``); their ``_print_<Class>`` is the flat form of that."""

    printmethod = "_project_latex"
    _default_settings = {**LatexPrinter._default_settings, "order": "none",
                         "namer": None, "time": T}

    def __init__(self, settings=None):
        super().__init__(settings)
        self._namer = self._settings["namer"] or Namer()
        self._time = self._settings["time"]

    def breakable(self, expr, depth: int = 0) -> Breakable:
        """``expr`` with an allowed break before each ``+``/``-`` of its sums; anything
        outside the vocabulary (a leaf, a printmethod, a SymPy node) is one flat piece."""
        if not hasattr(expr, self.printmethod):
            for cls in type(expr).__mro__:
                build = getattr(self, "_break_" + cls.__name__, None)
                if build is not None:
                    return build(expr, depth)
        return Breakable.of(self._print(expr))

    # -- leaves --------------------------------------------------------------------------
    def _print_MatrixSymbol(self, expr):
        return self._namer.symbol(expr, self._time)

    def _print_Cotangent(self, expr):
        return self._namer.symbol(expr, self._time)

    def _print_Incoming(self, expr):
        return self._namer.symbol(expr, self._time)

    def _print_LossGradient(self, expr):
        target = Var(expr.of_name, *expr.shape)
        return r"\nabla_{%s} L_{%s}" % (self._namer.symbol(target, self._time),
                                       self._index())

    # -- sums and products ---------------------------------------------------------------
    def _break_MatAdd(self, expr, depth):
        out = None
        for term in expr.args:
            neg, c, mats = split_sign(term)
            body = self._product(-c, mats, depth + 1) if neg else self.breakable(term, depth + 1)
            if out is None:
                out = ("-" + body) if neg else body
            else:
                out = out.then(depth, (" - " if neg else " + ") + body)
        return out

    def _break_MatMul(self, expr, depth):
        neg, c, mats = split_sign(expr)
        return "-" + self._product(-c, mats, depth) if neg else self._product(c, mats, depth)

    def _product(self, c, mats, depth) -> Breakable:
        parts = []
        for m in mats:
            s = self.breakable(m, depth)
            parts.append(r"\bigl(" + s + r"\bigr)" if needs_parens(m, MatMul) else s)
        body = Breakable.join(" ", parts)
        if c == 1:
            return body
        return self._print(sympy.Rational(c)) + " " + body

    def _break_HadamardProduct(self, expr, depth):
        parts = []
        for a in expr.args:
            s = self.breakable(a, depth)
            parts.append("(" + s + ")" if needs_parens(a, HadamardProduct) else s)
        return Breakable.join(r" \odot ", parts)

    def _break_DiagMatrix(self, expr, depth):
        return r"\operatorname{diag}" + self._paren(expr.args[0], depth)

    def _break_Transpose(self, expr, depth):
        arg = expr.arg
        if isinstance(arg, MatrixSymbol):
            s = self._print(arg)
            if "^" in s:            # x^{t} (Greff's notation) needs a group before ^{\top}
                s = "{%s}" % s
            return Breakable.of(s + r"^{\top}")
        return "(" + self.breakable(arg, depth) + r")^{\top}"

    def _break_Elementwise(self, expr, depth):
        return expr.latex + self._paren(expr.arg, depth)

    def _paren(self, arg, depth) -> Breakable:
        """``(a_t)`` around a symbol, ``\\bigl(...\\bigr)`` around anything larger (these
        delimiters, unlike ``\\left``/``\\right``, may be split across lines)."""
        if isinstance(arg, MatrixSymbol):
            return Breakable.of("(%s)" % self._print(arg))
        return r"\bigl(" + self.breakable(arg, depth) + r"\bigr)"

    def _print_MatAdd(self, expr):
        return self._break_MatAdd(expr, 0).flat()

    def _print_MatMul(self, expr):
        return self._break_MatMul(expr, 0).flat()

    def _print_HadamardProduct(self, expr):
        return self._break_HadamardProduct(expr, 0).flat()

    def _print_DiagMatrix(self, expr):
        return self._break_DiagMatrix(expr, 0).flat()

    def _print_Transpose(self, expr):
        return self._break_Transpose(expr, 0).flat()

    def _print_Elementwise(self, expr):
        return self._break_Elementwise(expr, 0).flat()

    def _index(self):
        from derive.printing.notation import index_latex
        return index_latex(self._time)

    def _print(self, expr, **kwargs):
        from derive.core.primitives import Elementwise
        if isinstance(expr, Elementwise):
            return self._print_Elementwise(expr)
        return super()._print(expr, **kwargs)


def printer(cell=None, notation=None, time=T) -> ProjectLatexPrinter:
    return ProjectLatexPrinter({"namer": Namer(cell, notation), "time": time})


def expr_latex(expr, *, cell=None, notation=None, time=T, breaks=False) -> Text:
    """LaTeX of one derived expression at step ``time``: one line, or with ``breaks`` the
    :class:`Breakable` an :class:`Eq` lays out."""
    pr = printer(cell, notation, time)
    return pr.breakable(expr) if breaks else pr.doprint(expr)


# ---------------------------------------------------------------------------------------
# display hooks
# ---------------------------------------------------------------------------------------

def cell_equations_latex(cell, notation=None) -> str:
    """The forward equations of ``cell`` (step, then readout) as one ``aligned`` block."""
    pr = printer(cell, notation)
    return aligned_env([Eq(pr.doprint(eq.lhs), pr.breakable(eq.rhs))
                        for eq in cell.equations + cell.readout])


def _symbol_latex(sym) -> str:
    """``sympy.latex`` of a cell symbol: its name at step t in the default notation."""
    return ProjectLatexPrinter().doprint(sym)


register_latex(_symbol_latex)
register_display(lambda cell: "$$" + cell_equations_latex(cell) + "$$")
