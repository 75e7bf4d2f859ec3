"""LaTeX printer for derived expressions: one ``_print_<Class>`` per node.

``\\operatorname{diag}\\bigl(\\sigma'(a_t)\\bigr) W_{hh}``, ``f_t \\odot c_{t-1}``,
``W_{hi}^{\\top} \\delta\\bar{\\imath}_t``: the notation of the papers, amsmath only. Symbols
are named by :mod:`derive.printing.notation` (time index by role, per-cell overrides, notation maps).
Every sum, product and Hadamard product is printed in the order of ``expr.args`` (the
engine's textbook order); nothing is reordered. Parentheses come from the one table of
:mod:`derive.printing.precedence` (shared with the text printer).

Long equations: ``_print_MatAdd`` puts an invisible break mark before every ``+``/``-`` of a
sum (tagged with the sum's nesting depth). :func:`layout` turns the marks into line breaks
(outermost sums first) so that no line is wider than the text; :func:`strip_breaks` drops
them for one-line output.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sympy
from sympy import HadamardProduct, MatMul, MatrixSymbol
from sympy.printing.latex import LatexPrinter

from derive.core.cell import register_display
from derive.printing.notation import T, Namer
from derive.printing.precedence import needs_parens, split_sign
from derive.core.symbols import Var, register_latex
from derive.printing.text import ConstantMatricesMixin

# ---------------------------------------------------------------------------------------
# break marks
# ---------------------------------------------------------------------------------------

_MARK_RE = re.compile("\x00(\\d+)\x01")


def mark(depth: int = 0) -> str:
    """An allowed line break before the next ``+``/``-`` (depth 0 = outermost sum)."""
    return "\x00%d\x01" % depth


def strip_breaks(s: str) -> str:
    return _MARK_RE.sub("", s)


# ---------------------------------------------------------------------------------------
# the printer
# ---------------------------------------------------------------------------------------

class ProjectLatexPrinter(ConstantMatricesMixin, LatexPrinter):
    """SymPy's LaTeX printer with the project's matrix vocabulary."""

    printmethod = "_project_latex"
    _default_settings = {**LatexPrinter._default_settings, "order": "none",
                         "namer": None, "time": T}

    def __init__(self, settings=None):
        super().__init__(settings)
        self._namer = self._settings["namer"] or Namer()
        self._time = self._settings["time"]
        self._depth = 0

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
    def _print_MatAdd(self, expr):
        depth = self._depth
        self._depth += 1
        try:
            out = []
            for i, term in enumerate(expr.args):
                neg, body = self._signed(term)
                if i == 0:
                    out.append(("-" if neg else "") + body)
                else:
                    out.append(mark(depth) + (" - " if neg else " + ") + body)
            return "".join(out)
        finally:
            self._depth = depth

    def _signed(self, term):
        """(is negative, LaTeX of |term|) for a term of a sum."""
        neg, c, mats = split_sign(term)
        return (True, self._product(-c, mats)) if neg else (False, self._print(term))

    def _print_MatMul(self, expr):
        neg, c, mats = split_sign(expr)
        return "-" + self._product(-c, mats) if neg else self._product(c, mats)

    def _product(self, c, mats):
        parts = []
        for m in mats:
            s = self._print(m)
            parts.append(r"\bigl(%s\bigr)" % s if needs_parens(m, MatMul) else s)
        body = " ".join(parts)
        if c == 1:
            return body
        return "%s %s" % (self._print(sympy.Rational(c)), body)

    def _print_HadamardProduct(self, expr):
        parts = [("(%s)" if needs_parens(a, HadamardProduct) else "%s") % self._print(a)
                 for a in expr.args]
        return r" \odot ".join(parts)

    def _print_DiagMatrix(self, expr):
        return r"\operatorname{diag}" + self._paren(expr.args[0])

    def _print_Transpose(self, expr):
        arg = expr.arg
        s = self._print(arg)
        if isinstance(arg, MatrixSymbol):
            if "^" in s:            # x^{t} (Greff's notation) needs a group before ^{\top}
                s = "{%s}" % s
        else:
            s = "(%s)" % s
        return s + r"^{\top}"

    def _print_Elementwise(self, expr):
        return expr.latex + self._paren(expr.arg)

    def _paren(self, arg):
        """``(a_t)`` around a symbol, ``\\bigl(...\\bigr)`` around anything larger (these
        delimiters, unlike ``\\left``/``\\right``, may be split across lines)."""
        s = self._print(arg)
        if isinstance(arg, MatrixSymbol):
            return "(%s)" % s
        return r"\bigl(%s\bigr)" % s

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


def expr_latex(expr, *, cell=None, notation=None, time=T, breaks=False) -> str:
    """LaTeX of one derived expression at step ``time``; with ``breaks`` the break marks
    stay in (for :func:`layout`)."""
    s = printer(cell, notation, time).doprint(expr)
    return s if breaks else strip_breaks(s)


# ---------------------------------------------------------------------------------------
# widths and line breaking
# ---------------------------------------------------------------------------------------

#: Usable width of a display line in pt (article class, 10pt: \textwidth = 345pt), less a
#: margin for the error of the width estimate.
LINE_WIDTH = 330.0

_CMD_WIDTH = {
    r"\odot": 12.5, r"\cdot": 7.0, r"\cdots": 17.0, r"\ldots": 17.0, r"\le": 13.4, r"\ge": 13.4,
    r"\leq": 13.4, r"\geq": 13.4, r"\in": 12.0, r"\sigma": 5.7, r"\tanh": 19.0, r"\delta": 4.5,
    r"\Delta": 8.4, r"\nabla": 8.4, r"\partial": 5.7, r"\imath": 3.5, r"\jmath": 4.1,
    r"\top": 7.8, r"\gamma": 5.2, r"\sum": 14.0, r"\prod": 14.0, r"\quad": 10.0,
    r"\qquad": 20.0, r"\lVert": 5.0, r"\rVert": 5.0, r"\bigl": 0.0, r"\bigr": 0.0,
    r"\Bigl": 0.0, r"\Bigr": 0.0, r"\left": 0.0, r"\right": 0.0, r"\notag": 0.0,
    r"\,": 1.7, r"\;": 2.8, r"\!": -1.7, r"\infty": 10.0, r"\max": 17.0, r"\sup": 15.0,
    r"\to": 13.4, r"\Rightarrow": 15.0, r"\iff": 20.0, r"\qed": 8.0, r"\rho": 5.2,
    r"\lambda": 5.8, r"\theta": 4.7, r"\phi": 6.0, r"\tau": 4.4,
}
_CHAR_WIDTH = {"(": 3.9, ")": 3.9, "[": 2.8, "]": 2.8, "+": 12.8, "-": 12.8, "=": 13.4,
               "<": 13.4, ">": 13.4, ",": 4.5, "'": 2.8, " ": 0.0, "&": 0.0, "|": 2.8,
               ".": 2.8, ";": 2.8, ":": 2.8, "/": 5.0, "1": 5.0}


def _group(s, i):
    """(content, end) of the brace group or single token at s[i]."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return "", i
    if s[i] == "{":
        depth = 0
        for j in range(i, len(s)):
            if s[j] == "{" and (j == 0 or s[j - 1] != "\\"):
                depth += 1
            elif s[j] == "}" and s[j - 1] != "\\":
                depth -= 1
                if depth == 0:
                    return s[i + 1:j], j + 1
        return s[i + 1:], len(s)
    if s[i] == "\\":
        m = re.match(r"\\([A-Za-z]+|.)", s[i:])
        return m.group(0), i + len(m.group(0))
    return s[i], i + 1


def visual_width(s: str, scale: float = 1.0) -> float:
    """Estimated width in pt of the math ``s`` set in display style at 10pt."""
    s = strip_breaks(s)
    w = 0.0
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", s[i:])
            cmd = m.group(0)
            i += len(cmd)
            if cmd in (r"\operatorname", r"\mathrm", r"\text", r"\mathit"):
                content, i = _group(s, i)
                w += scale * 5.0 * len(content) + (3.0 if cmd == r"\operatorname" else 0.0)
            elif cmd in (r"\bar", r"\hat", r"\tilde", r"\mathbf", r"\overline"):
                content, i = _group(s, i)
                w += visual_width(content, scale)
            elif cmd == r"\frac":
                a, i = _group(s, i)
                b, i = _group(s, i)
                w += max(visual_width(a, scale), visual_width(b, scale)) + 2.0
            elif cmd in (r"\label", r"\tag"):
                _, i = _group(s, i)
            elif cmd in (r"\bigl", r"\bigr", r"\Bigl", r"\Bigr", r"\left", r"\right"):
                tok, i = _group(s, i)
                w += scale * 4.7
            else:
                w += scale * _CMD_WIDTH.get(cmd, 8.0)
        elif ch in "_^":
            content, i = _group(s, i + 1)
            w += visual_width(content, scale * 0.72)
        elif ch in "{}":
            i += 1
        else:
            w += scale * _CHAR_WIDTH.get(ch, 5.7)
            i += 1
    return w


def _tokens(rhs: str):
    """Split at break marks that sit outside every brace group: [(depth or None, text)]."""
    out = [[None, ""]]
    brace = 0
    i = 0
    while i < len(rhs):
        m = _MARK_RE.match(rhs, i)
        if m:
            if brace == 0:
                out.append([int(m.group(1)), ""])
            i = m.end()
            continue
        ch = rhs[i]
        if ch == "\\" and i + 1 < len(rhs):
            out[-1][1] += rhs[i:i + 2]
            i += 2
            continue
        if ch == "{":
            brace += 1
        elif ch == "}":
            brace -= 1
        out[-1][1] += ch
        i += 1
    return [tuple(t) for t in out]


def _indent(depth):
    return r"\quad" if depth == 0 else r"\qquad"


def layout_rhs(rhs: str, width: float) -> list:
    """Break ``rhs`` (with marks) into lines no wider than ``width`` where possible.

    Returns ``[(indent_depth or None, text)]``: the first line has depth None; a later line
    starts at a mark of that depth. Outer sums are split first; a term that alone is too
    wide is split at the marks of the sums inside it."""
    toks = _tokens(rhs)
    lines: list = []

    def emit(depth, text):
        lines.append([depth, text])

    def room(depth):
        return width - (visual_width(_indent(depth)) if depth is not None else 0.0)

    def pack(group, level):
        """Pack the tokens ``group`` (first one starts a chunk) splitting at marks of depth
        ``level``; deeper chunks that do not fit are split recursively."""
        chunks = []
        for d, text in group:
            if not chunks or (d is not None and d <= level):
                chunks.append([(d, text)])
            else:
                chunks[-1].append((d, text))
        for chunk in chunks:
            text = "".join(t for _, t in chunk)
            w = visual_width(text)
            cur = lines[-1] if lines else None
            start_depth = chunk[0][0]
            if cur is None:
                if w <= room(None) or len(chunk) == 1:
                    emit(None, text)
                else:
                    emit(None, "")
                    pack_inside(chunk, level)
                continue
            if visual_width(cur[1]) + w <= room(cur[0]):
                cur[1] += text
            elif w <= room(start_depth) or len(chunk) == 1:
                emit(start_depth, text.lstrip())
            else:
                if start_depth is not None:
                    emit(start_depth, "")
                pack_inside(chunk, level)

    def pack_inside(chunk, level):
        deeper = [d for d, _ in chunk[1:] if d is not None]
        if not deeper:
            lines[-1][1] += "".join(t for _, t in chunk)
            return
        first, rest = chunk[0], chunk[1:]
        lines[-1][1] += first[1].lstrip() if not lines[-1][1] else first[1]
        pack(rest, min(deeper))

    pack(toks, min([d for d, _ in toks if d is not None], default=0))
    return [(d, t) for d, t in lines]


@dataclass
class Eq:
    """One displayed relation ``lhs rel rhs``; ``rhs`` may hold break marks."""
    lhs: str
    rhs: str
    label: str | None = None
    rel: str = "="


def _rows(eqs, width):
    """Each equation as lines ``lhs &= ...`` / ``&\\quad {}+ ...`` (aligned at the relation)."""
    lhs_w = max((visual_width(e.lhs) for e in eqs), default=0.0)
    out = []
    for e in eqs:
        room = width - lhs_w - visual_width(e.rel)
        lines = layout_rhs(e.rhs, room)
        rows = []
        for k, (depth, text) in enumerate(lines):
            text = text.strip()
            if k == 0:
                rows.append("%s &%s %s" % (e.lhs, e.rel, text) if text else "%s &%s" % (e.lhs, e.rel))
            else:
                if text.startswith(("+", "-")):
                    text = "{}" + text
                rows.append("&%s %s" % (_indent(depth), text))
        out.append((e, [strip_breaks(r) for r in rows]))
    return out


#: Estimated height (pt) at most per ``align``, about half a page: longer displays are split
#: between equations so that they fit on a page without ``\allowdisplaybreaks``.
MAX_ALIGN_HEIGHT = 300.0


def _row_height(row: str) -> float:
    """Estimated height of one display line: taller with fractions and big operators."""
    return 30.0 if re.search(r"\\frac|\\sum|\\prod", row) else 15.0


def align_env(eqs, width=LINE_WIDTH) -> str:
    """amsmath ``align`` environments: one numbered, labelled row per equation; the
    continuation lines of a long equation are ``\\notag``."""
    groups, cur, n = [], [], 0.0
    for e, rows in _rows(eqs, width):
        h = sum(_row_height(r) for r in rows)
        if cur and n + h > MAX_ALIGN_HEIGHT:
            groups.append(cur)
            cur, n = [], 0.0
        lines = []
        for k, r in enumerate(rows):
            last = k == len(rows) - 1
            if last:
                lines.append(r + (r" \label{%s}" % e.label if e.label else r" \notag"))
            else:
                lines.append(r + r" \notag")
        cur.extend(lines)
        n += h
    if cur:
        groups.append(cur)
    return "".join("\\begin{align}\n" + " \\\\\n".join(g) + "\n\\end{align}\n"
                   for g in groups)


def aligned_env(eqs, width=LINE_WIDTH) -> str:
    """The same rows in an ``aligned`` block without labels (for ``$$ ... $$``: KaTeX,
    MathJax, GitHub, Jupyter)."""
    body = [r for _, rows in _rows(eqs, width) for r in rows]
    return "\\begin{aligned}\n" + " \\\\\n".join(body) + "\n\\end{aligned}"


# ---------------------------------------------------------------------------------------
# display hooks
# ---------------------------------------------------------------------------------------

def cell_equations_latex(cell, notation=None) -> str:
    """The forward equations of ``cell`` (step, then readout) as one ``aligned`` block."""
    pr = printer(cell, notation)
    return aligned_env([Eq(strip_breaks(pr.doprint(eq.lhs)), pr.doprint(eq.rhs))
                        for eq in cell.equations + cell.readout])


def _symbol_latex(sym) -> str:
    """``sympy.latex`` of a cell symbol: its name at step t in the default notation."""
    return ProjectLatexPrinter().doprint(sym)


register_latex(_symbol_latex)
register_display(lambda cell: "$$" + cell_equations_latex(cell) + "$$")
