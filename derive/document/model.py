"""The document model: a list of blocks (:class:`Heading`, :class:`Para`, :class:`Display`,
:class:`Quote`, :class:`Figure`), built once and rendered to LaTeX and to Markdown
(:mod:`derive.document.render`). Blocks hold finished LaTeX math and plain prose."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Where the gradient-flow figure is, relative to the output directory.
FIGURE = "figures/gradient_flow.png"


@dataclass
class Math:
    """Inline math."""
    tex: str


@dataclass
class Code:
    """A name from the code (a cell name): ``\\texttt`` in LaTeX, backticks in Markdown."""
    text: str


@dataclass
class Ref:
    """A reference to a label: ``kind`` "eq" (``\\eqref``), "sec" (``Section~\\ref``) or
    "fig" (``Figure~\\ref``) in LaTeX, ``text`` in Markdown."""
    label: str
    text: str
    kind: str = "eq"


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
    """A figure included only when its file exists; ``intro`` (paragraphs that refer to it)
    is printed with it, so a missing file leaves no dangling reference."""
    path: str
    caption: str
    label: str = "fig:gradient_flow"
    intro: list = field(default_factory=list)      # [Para]
    alt: str = ""


@dataclass
class Table:
    """A table of prose and inline math: ``header`` and ``rows`` are lists of cells, each a
    str or a list of parts (str, Math); ``widths`` LaTeX column types (``l``, ``p{3cm}``)."""
    header: list
    rows: list
    widths: list
    caption: str = ""


@dataclass
class Appendix:
    """From here on, sections are appendices (lettered in LaTeX)."""


@dataclass
class Bibliography:
    """The references: (key, text) pairs, cited with :class:`Cite`, under ``title``."""
    items: list
    title: str = "References"


@dataclass
class Cite:
    key: str
    text: str             # how Markdown shows it, e.g. "Pascanu et al. 2013"


@dataclass
class NewPage:
    """A page break in LaTeX (nothing in Markdown)."""


def para(*parts):
    return Para(list(parts))


_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def prose(template: str, slots: dict | None = None) -> Para:
    """A paragraph from a prose template: each ``{name}`` is replaced by ``slots[name]`` (a
    :class:`Math`, :class:`Ref`, :class:`Cite` or str), so prose and formulas stay apart."""
    slots = slots or {}
    parts, pos = [], 0
    for m in _SLOT.finditer(template):
        if m.start() > pos:
            parts.append(template[pos:m.start()])
        parts.append(slots[m.group(1)])
        pos = m.end()
    if pos < len(template):
        parts.append(template[pos:])
    return Para(parts)

