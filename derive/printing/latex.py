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

Written as a person would: a Hadamard product with reciprocal factors is a fraction,
``a \\odot b \\odot (1/n) \\odot (1/n)`` -> ``\\frac{a \\odot b}{n^{2}}`` (repeated denominator
factors as powers; when the numerator is longer than half a line, its factors that are sums
stay after the fraction, where the line may break: ``\\frac{o_t}{n_t^{2}} \\odot (\\ldots)``); a lone reciprocal ``\\frac{1}{u}``;
the Heaviside step ``\\Theta(u)``; ``\\sqrt{u}``; a negated product in a sum ``- a \\odot b``. Equation
variables that depend on no input and no state (parameters only, e.g. the LRU's
``|\\lambda| = \\exp(-\\exp(\\nu))``) carry no time index, read from the cell's equations.
"""
from __future__ import annotations

import sympy
from sympy import HadamardProduct, MatMul, MatrixSymbol, OneMatrix
from sympy.printing.latex import LatexPrinter

from derive.core.cell import register_display
from derive.printing.latex_layout import (LINE_WIDTH, PRODUCT_BREAK, Breakable, Eq, Piece, Text,
                                          align_env, aligned_env, layout_rhs, visual_width)
from derive.printing.notation import T, Namer
from derive.printing.precedence import PRODUCT, needs_parens, precedence, split_sign
from derive.core.matrixstate import superscript_base, transposed_latex
from derive.core.reduction import COMPOUND, is_row_scalar
from derive.core.symbols import Var, register_latex
from derive.printing.text import ConstantMatricesMixin, hadamard_factors

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

    def constant_vars(self) -> frozenset:
        """Names of the cell's equation variables that depend on no input and no state,
        directly or through other variables (read from the equations' symbols)."""
        if not hasattr(self, "_constants"):
            self._constants = _constant_vars(self._namer.cell)
        return self._constants

    def breakable(self, expr, depth: int = 0) -> Breakable:
        """``expr`` with an allowed break before each ``+``/``-`` of its sums; anything
        outside the vocabulary (a leaf, a printmethod, a SymPy node) is one flat piece.
        Memoised per printer (a pure function of the expression, the depth and the
        printer's settings; Breakables are immutable): the English and the Chinese article
        print the same equations."""
        memo = self.__dict__.setdefault("_breakables", {})
        key = (expr, depth)
        try:
            hit = memo.get(key)
        except TypeError:                       # an unhashable (mutable) matrix
            return self._breakable(expr, depth)
        if hit is None:
            hit = memo[key] = self._breakable(expr, depth)
        return hit

    def doprint(self, expr):
        """The one-line LaTeX of ``expr``, memoised per printer like :meth:`breakable`."""
        memo = self.__dict__.setdefault("_printed", {})
        try:
            hit = memo.get(expr)
        except TypeError:                       # an unhashable (mutable) matrix
            return super().doprint(expr)
        if hit is None:
            hit = memo[expr] = super().doprint(expr)
        return hit

    def _breakable(self, expr, depth):
        own = getattr(self, "_break_" + type(expr).__name__, None)
        if own is not None:                 # a node of the vocabulary, printmethod or not
            return own(expr, depth)
        if not hasattr(expr, self.printmethod):
            for cls in type(expr).__mro__:
                build = getattr(self, "_break_" + cls.__name__, None)
                if build is not None:
                    return build(expr, depth)
        return Breakable.of(self._print(expr))

    # -- leaves --------------------------------------------------------------------------
    def _print_MatrixSymbol(self, expr):
        if getattr(expr, "role", None) == "var" and expr.name in self.constant_vars():
            return self._namer.body(expr.name)
        return self._namer.symbol(expr, self._time)

    def _print_Cotangent(self, expr):
        if expr.target in self.constant_vars():
            return r"\delta " + self._namer.body(expr.target)
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
        if len(mats) == 1 and isinstance(mats[0], OneMatrix) and tuple(mats[0].shape) == (1, 1):
            return Breakable.of(self._print(sympy.Rational(c)))      # a constant scalar: c
        if c == 1 and len(mats) == 1 and precedence(mats[0]) >= PRODUCT:
            return self.breakable(mats[0], depth)     # - a \odot b in a sum: no parentheses
        body = None
        for m in mats:
            if isinstance(m, OneMatrix) and len(mats) > 1:   # the ones of a reduction's Jacobian
                s = Breakable.of(r"\mathbf{1}^\top" if m.shape[0] == 1 else r"\mathbf{1}")
            else:
                s = self.breakable(m, depth)
                s = r"\bigl(" + s + r"\bigr)" if needs_parens(m, MatMul) else s
            # a break between factors, the last resort (after the sums inside them)
            if body is None:
                body = s
            elif isinstance(m, OneMatrix):
                body = body + " " + s                  # 1 1^T stays together
            else:
                body = body.then(depth + PRODUCT_BREAK, " " + s)
        if c == 1:
            return body
        return self._print(sympy.Rational(c)) + " " + body

    def _operand(self, a, depth) -> Breakable:
        """``a`` as a factor of a Hadamard product; a parenthesised sum short enough for a
        third of a line is kept on one line (no break inside ``(1 - z_t)``)."""
        s = self.breakable(a, depth)
        if not needs_parens(a, HadamardProduct):
            return s
        return "(" + self._short_flat(s) + ")"

    def _break_HadamardProduct(self, expr, depth):
        from derive.core.primitives import Reciprocal
        factors = hadamard_factors(expr)
        den = [a.arg for a in factors if isinstance(a, Reciprocal)]
        num = [a for a in factors if not isinstance(a, Reciprocal)]
        if not den:
            return self._factors_join(num, depth)
        bottom = self._denominator(den)
        if len(num) == 1 and precedence(num[0]) < PRODUCT:
            top = self.breakable(num[0], depth).flat()            # a lone sum: no parentheses
        else:
            top = self._factors_join(num, depth).flat() if num else "1"
        if visual_width(top) <= LINE_WIDTH / 2:
            return Breakable.of(r"\frac{%s}{%s}" % (top, bottom))
        inside = [a for a in num if precedence(a) >= PRODUCT]
        after = [a for a in num if precedence(a) < PRODUCT]       # sums, where a line may break
        top = self._factors_join(inside, depth).flat() if inside else "1"
        frac = Breakable.of(r"\frac{%s}{%s}" % (top, bottom))
        return self._hadamard_join([frac] + [self._operand(a, depth) for a in after], depth)

    def _factors_join(self, factors, depth) -> Breakable:
        """The Hadamard product of ``factors`` (:meth:`_hadamard_join`, scalars flagged)."""
        return self._hadamard_join([self._operand(a, depth) for a in factors], depth,
                                   [is_row_scalar(a) for a in factors])

    @staticmethod
    def _hadamard_join(operands, depth, scalar=None) -> Breakable:
        """``a \\odot b \\odot ...`` with a last-resort break before each ``\\odot`` (the
        continuation line starts with it, as with ``+``). The operands flagged ``scalar`` (one
        number per batch row) go first, written without the sign, as the papers write a
        scalar times a vector: ``\\alpha_t \\beta_t k_t``, ``f'_t C_{t-1}``."""
        scalar = list(scalar or [False] * len(operands))
        order = sorted(range(len(operands)), key=lambda k: not scalar[k])     # scalars first
        out = operands[order[0]]
        for prev, k in zip(order, order[1:]):
            sep = " " if scalar[prev] else r" \odot "     # after a scalar: juxtaposition
            out = out.then(depth + PRODUCT_BREAK, sep + operands[k])
        return out

    def _denominator(self, factors) -> str:
        """``n_t``, ``f_t + i_t``, ``n_t^{2}``, ``(f_t + i_t)^{2} \\odot m_t``: the
        reciprocal factors' arguments, a repeated one as a power (one line, in braces)."""
        counts: dict = {}
        for u in factors:
            counts[u] = counts.get(u, 0) + 1
        if len(counts) == 1 and len(factors) == 1:
            return self._print(factors[0])
        out = []
        for u, k in counts.items():
            s = self._print(u)
            if needs_parens(u, HadamardProduct):
                s = "(%s)" % s
            elif k > 1:
                s = superscript_base(s)
            out.append(s if k == 1 else "%s^{%d}" % (s, k))
        return (" " if all(map(is_row_scalar, counts)) else r" \odot ").join(out)

    def _break_SumOf(self, expr, depth):
        """``u^\\top v`` for a dot product, else ``\\mathbf{1}^\\top v`` (v bracketed unless
        it is a symbol), with the breaks of a long bracketed sum ``v`` kept; the one-line
        print is this without its breaks (:meth:`_print_SumOf`)."""
        uv = expr._dot()
        u, v = uv if uv else (None, expr.arg)
        body = self.breakable(v, depth)
        if isinstance(v, COMPOUND) or (u is None and not isinstance(v, MatrixSymbol)):
            body = "(" + self._short_flat(body) + ")"
        if u is None:
            return r"\mathbf{1}^\top " + body
        lead = "(%s)" % self._print(u) if isinstance(u, COMPOUND) else self._print(u)
        return Breakable.of(transposed_latex(lead) + " ") + body

    def _break_Broadcast(self, expr, depth):
        return self.breakable(expr.arg, depth)

    def _break_Reciprocal(self, expr, depth):
        return Breakable.of(r"\frac{1}{%s}" % self._print(expr.arg))

    def _break_Step(self, expr, depth):
        """The Heaviside step (Θ(0) = 1/2), defined in the text where it is used."""
        return expr.latex + self._paren(expr.arg, depth)

    def _break_Sqrt(self, expr, depth):
        return Breakable.of(r"\sqrt{%s}" % self._print(expr.arg))

    def _break_SqrtPrime(self, expr, depth):
        return r"(\sqrt{\cdot})'" + self._paren(expr.arg, depth)

    def _break_Abs(self, expr, depth):
        return Breakable.of(r"\lvert %s \rvert" % self._print(expr.arg))

    def _break_DiagMatrix(self, expr, depth):
        return r"\operatorname{diag}" + self._paren(expr.args[0], depth)

    def _break_Transpose(self, expr, depth):
        arg = expr.arg
        if isinstance(arg, MatrixSymbol):
            # x^{t} (Greff's notation) needs a group before ^{\top}
            return Breakable.of(superscript_base(self._print(arg)) + r"^{\top}")
        return "(" + Breakable.of(self.breakable(arg, depth).flat()) + r")^{\top}"

    def _break_Elementwise(self, expr, depth):
        return expr.latex + self._paren(expr.arg, depth)

    def _paren(self, arg, depth) -> Breakable:
        """``(a_t)`` around a symbol, ``\\bigl(...\\bigr)`` around anything larger (these
        delimiters, unlike ``\\left``/``\\right``, may be split across lines)."""
        if isinstance(arg, MatrixSymbol):
            return Breakable.of("(%s)" % self._print(arg))
        return r"\bigl(" + self._short_flat(self.breakable(arg, depth)) + r"\bigr)"

    @staticmethod
    def _short_flat(s: Breakable) -> Breakable:
        """``s`` without its breaks when it fits in a third of a line: a short bracketed
        sum (``(1 - z_t)``, ``\\Theta\\bigl(a - b\\bigr)``) is never split."""
        return Breakable.of(s.flat()) if visual_width(s.flat()) <= LINE_WIDTH / 3 else s

    def _print_MatAdd(self, expr):
        return self._break_MatAdd(expr, 0).flat()

    def _print_SumOf(self, expr):
        return self._break_SumOf(expr, 0).flat()

    def _print_MatMul(self, expr):
        return self._break_MatMul(expr, 0).flat()

    def _print_HadamardProduct(self, expr):
        return self._break_HadamardProduct(expr, 0).flat()

    def _print_DiagMatrix(self, expr):
        return self._break_DiagMatrix(expr, 0).flat()

    def _print_Transpose(self, expr):
        return self._break_Transpose(expr, 0).flat()

    def _print_Elementwise(self, expr):
        return self.breakable(expr, 0).flat()

    def _index(self):
        from derive.printing.notation import index_latex
        return index_latex(self._time)

    def _print(self, expr, **kwargs):
        from derive.core.primitives import Elementwise
        if isinstance(expr, Elementwise):
            return self._print_Elementwise(expr)
        return super()._print(expr, **kwargs)


def _constant_vars(cell) -> frozenset:
    """The equation variables of ``cell`` whose right sides reach no input and no state."""
    if cell is None:
        return frozenset()
    varying: set = set()
    for eq in cell.equations + cell.readout:
        roles = {getattr(s, "role", None) for s in eq.rhs.free_symbols}
        names = {s.name for s in eq.rhs.free_symbols}
        if roles & {"input", "prev_state"} or names & varying or not eq.rhs.free_symbols:
            varying.add(eq.lhs.name)
    return frozenset(eq.lhs.name for eq in cell.equations + cell.readout) - varying


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
