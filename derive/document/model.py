"""The document model: a list of blocks (:class:`Heading`, :class:`Para`, :class:`Display`,
:class:`Quote`, :class:`Figure`), built once and rendered to LaTeX and to Markdown
(:mod:`derive.document.render`). Blocks hold finished LaTeX math and plain prose."""
from __future__ import annotations

from dataclasses import dataclass

#: Where the gradient-flow figure is, relative to the output directory.
FIGURE = "figures/gradient_flow.png"


@dataclass
class Math:
    """Inline math."""
    tex: str


@dataclass
class Ref:
    """A reference to a labelled equation: ``\\eqref`` in LaTeX, ``text`` in Markdown."""
    label: str
    text: str


@dataclass
class Heading:
    level: int
    text: str
    label: str | None = None


@dataclass
class Para:
    parts: list            # str (prose), Math, Ref


@dataclass
class Display:
    eqs: list              # [Eq]
    comment: str = ""


@dataclass
class Quote:
    """A quotation of LaTeX written by someone else, one row per line (unnumbered)."""
    rows: list


@dataclass
class Figure:
    path: str
    caption: str


def para(*parts):
    return Para(list(parts))

