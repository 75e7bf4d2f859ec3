"""Breakable LaTeX and the ``align`` layout of long equations.

The printer (:mod:`derive.printing.latex`) gives a right side as a :class:`Breakable`: a
tuple of :class:`Piece` s, each the text that follows one allowed line break, the break
tagged with the nesting depth of the sum whose ``+``/``-`` it precedes (0 = outermost).
``Breakable.flat()`` is the one-line form; :func:`layout_rhs` splits at the breaks (outer
sums first) so that no line is wider than the text. A break is never inside a brace group:
the printer emits breaks only between the terms of its own sums and the factors of its
matrix products (:data:`PRODUCT_BREAK`), and what is printed inside
braces (``\\frac{...}``, ``^{...}``, scaffolding written by the document) is flat text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Union


@dataclass(frozen=True)
class Piece:
    """``text`` preceded by an allowed break at sum depth ``depth`` (None: no break, the
    first piece of a :class:`Breakable`); a break between the factors of a matrix product
    at depth ``d`` has depth ``d + PRODUCT_BREAK``, used only when the sums inside the
    factors do not give short enough lines."""
    text: str
    depth: float | None = None


#: Added to the depth of a break between the factors of a product ``A B``: deeper than the
#: sums inside the factors (depth d), shallower than the sums nested in those (d + 1).
PRODUCT_BREAK = 0.5
#: :func:`visual_width` overestimates pdflatex's widths by up to about 9% (measured on the
#: article's displays): a line whose only breaks are between factors is split only when
#: its estimate exceeds the room by more than that.
PRODUCT_SLACK = 1.1


def _between_factors(depth) -> bool:
    """Whether a break of this depth is one between the factors of a product."""
    return depth is not None and depth % 1 != 0


@dataclass(frozen=True)
class Breakable:
    """LaTeX with allowed line breaks: ``pieces[0].depth`` is None, every later piece starts
    at a break. ``flat()`` joins the texts; ``+`` concatenates (with ``str`` on either side);
    :meth:`then` appends after a new break. ``str()`` is refused, so a break cannot be lost
    silently by ``%`` formatting: call :meth:`flat` for the one-line form."""
    pieces: tuple = (Piece(""),)

    def __post_init__(self):
        if not self.pieces or self.pieces[0].depth is not None:
            raise ValueError("a Breakable starts with a piece without a break")

    @classmethod
    def of(cls, x: "Text") -> "Breakable":
        return x if isinstance(x, Breakable) else cls((Piece(x),))

    def flat(self) -> str:
        """The one-line LaTeX (every break dropped)."""
        return "".join(p.text for p in self.pieces)

    def breaks(self) -> list:
        """The depths of the breaks, in order."""
        return [p.depth for p in self.pieces[1:]]

    def __add__(self, other: "Text") -> "Breakable":
        other = Breakable.of(other)
        last, first = self.pieces[-1], other.pieces[0]
        return Breakable(self.pieces[:-1] + (Piece(last.text + first.text, last.depth),)
                         + other.pieces[1:])

    def __radd__(self, other: str) -> "Breakable":
        return Breakable.of(other) + self

    def then(self, depth: int, other: "Text") -> "Breakable":
        """``self``, an allowed break at sum depth ``depth``, then ``other``."""
        other = Breakable.of(other)
        return Breakable(self.pieces + (Piece(other.pieces[0].text, depth),) + other.pieces[1:])

    @staticmethod
    def join(sep: str, items: Iterable["Text"]) -> "Breakable":
        out = None
        for x in items:
            out = Breakable.of(x) if out is None else out + sep + x
        return Breakable() if out is None else out

    def __str__(self):
        raise TypeError("a Breakable has no str(): use .flat() for the one-line LaTeX")


Text = Union[str, Breakable]


# ---------------------------------------------------------------------------------------
# widths
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
_CMD_RE = re.compile(r"\\([A-Za-z]+|.)")


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
        m = _CMD_RE.match(s, i)
        return m.group(0), m.end()
    return s[i], i + 1


@lru_cache(maxsize=1 << 16)
def visual_width(s: str, scale: float = 1.0) -> float:
    """Estimated width in pt of the math ``s`` set in display style at 10pt (memoised: the
    layout measures the same pieces many times)."""
    w = 0.0
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            cmd = _CMD_RE.match(s, i).group(0)
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


# ---------------------------------------------------------------------------------------
# line breaking
# ---------------------------------------------------------------------------------------

def _indent(depth):
    return r"\quad" if depth == 0 else r"\qquad"


def _width_of(line) -> float:
    depth, text = line
    return visual_width(text) + (visual_width(_indent(depth)) if depth is not None else 0.0)


def layout_rhs(rhs: Text, width: float) -> list:
    """Break ``rhs`` into lines no wider than ``width`` where possible.

    Returns ``[(indent_depth or None, text)]``: the first line has depth None; a later line
    starts at a break of that depth. Outer sums are split first; a term that alone is too
    wide is split at the breaks of the sums inside it. Breaks between the factors of
    products are used only when the equation does not fit without them (within the
    estimate's error, :data:`PRODUCT_SLACK`). The texts joined are ``rhs.flat()`` up to the
    spaces stripped at the start of a line."""
    rhs = Breakable.of(rhs)
    pieces = [rhs.pieces[0]]
    for p in rhs.pieces[1:]:                   # the same without the breaks between factors
        if _between_factors(p.depth):
            pieces[-1] = Piece(pieces[-1].text + p.text, pieces[-1].depth)
        else:
            pieces.append(p)
    if len(pieces) < len(rhs.pieces):
        lines = _layout(Breakable(tuple(pieces)), width)
        if all(_width_of(x) <= width * PRODUCT_SLACK for x in lines):
            return lines
    return _layout(rhs, width)


def _layout(rhs: Breakable, width: float) -> list:
    toks = [(p.depth, p.text) for p in rhs.pieces]
    lines: list = []
    split = [False]             # the last chunk was split across lines

    def emit(depth, text):
        lines.append([depth, text])

    def room(depth):
        return width - (visual_width(_indent(depth)) if depth is not None else 0.0)

    def fits(chunk, w, depth):
        """Whether the chunk stays on one line: it is narrow enough, has no break, or has
        only breaks between factors and is within the estimate's error of the line
        (:data:`PRODUCT_SLACK`: a product is split only where it surely overflows)."""
        inner = [d for d, _ in chunk[1:] if d is not None]
        if w <= room(depth) or not inner:
            return True
        return _between_factors(min(inner)) and w <= room(depth) * PRODUCT_SLACK

    def pack(group, level):
        """Pack the tokens ``group`` (first one starts a chunk) splitting at breaks of depth
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
                if fits(chunk, w, None):
                    emit(None, text)
                else:
                    emit(None, "")
                    pack_inside(chunk, level)
                    split[0] = True
                continue
            slack = PRODUCT_SLACK if _between_factors(start_depth) else 1.0
            if not split[0] and visual_width(cur[1]) + w <= room(cur[0]) * slack:
                cur[1] += text
            elif fits(chunk, w, start_depth):
                emit(start_depth, text.lstrip())
            else:
                if start_depth is not None:
                    emit(start_depth, "")
                pack_inside(chunk, level)
                split[0] = True                 # what follows starts a line of its own
                continue
            split[0] = False

    def pack_inside(chunk, level):
        deeper = [d for d, _ in chunk[1:] if d is not None]
        if not deeper:
            lines[-1][1] += "".join(t for _, t in chunk)
            return
        first, rest = chunk[0], chunk[1:]
        lines[-1][1] += first[1].lstrip() if not lines[-1][1] else first[1]
        split[0] = False                        # the rest may continue this line
        pack(rest, min(deeper))

    pack(toks, min([d for d, _ in toks if d is not None], default=0))
    return [(d, t) for d, t in lines]


@dataclass
class Eq:
    """One displayed relation ``lhs rel rhs``; ``rhs`` is LaTeX, a :class:`Breakable` where
    it may be split across lines."""
    lhs: str
    rhs: Text
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
                if text.startswith(("+", "-", r"\odot")):
                    text = "{}" + text
                rows.append("&%s %s" % (_indent(depth), text))
        out.append((e, rows))
    return out


#: Estimated height (pt) at most per ``align``, about half a page: longer displays are split
#: between equations so that they fit on a page without ``\allowdisplaybreaks``; a display
#: holding one equation taller than this allows page breaks inside itself only.
MAX_ALIGN_HEIGHT = 300.0

_TALL_RE = re.compile(r"\\frac|\\sum|\\prod")


def _row_height(row: str) -> float:
    """Estimated height of one display line: taller with fractions and big operators."""
    return 30.0 if _TALL_RE.search(row) else 15.0


def align_env(eqs, width=LINE_WIDTH) -> str:
    """amsmath ``align`` environments: one numbered, labelled row per equation; the
    continuation lines of a long equation are ``\\notag``."""
    groups, cur, n, tall = [], [], 0.0, False        # groups: (lines, holds a tall equation)
    for e, rows in _rows(eqs, width):
        h = sum(_row_height(r) for r in rows)
        if cur and n + h > MAX_ALIGN_HEIGHT:
            groups.append((cur, tall))
            cur, n, tall = [], 0.0, False
        lines = []
        for k, r in enumerate(rows):
            last = k == len(rows) - 1
            if last:
                lines.append(r + (r" \label{%s}" % e.label if e.label else r" \notag"))
            else:
                lines.append(r + r" \notag")
        cur.extend(lines)
        n += h
        tall = tall or h > MAX_ALIGN_HEIGHT
    if cur:
        groups.append((cur, tall))
    out = []
    for g, has_tall in groups:
        env = "\\begin{align}\n" + " \\\\\n".join(g) + "\n\\end{align}\n"
        # one equation taller than the limit may break between its own lines: page breaks
        # allowed in this display only (a group keeps the reader's document as it is)
        out.append("\\begingroup\\allowdisplaybreaks\n" + env + "\\endgroup\n"
                   if has_tall else env)
    return "".join(out)


def aligned_env(eqs, width=LINE_WIDTH) -> str:
    """The same rows in an ``aligned`` block without labels (for ``$$ ... $$``: KaTeX,
    MathJax, GitHub, Jupyter)."""
    body = [r for _, rows in _rows(eqs, width) for r in rows]
    return "\\begin{aligned}\n" + " \\\\\n".join(body) + "\n\\end{aligned}"
