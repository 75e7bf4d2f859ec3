"""The corrected edition of the seed note, in Chinese, as Markdown (``out/seed_note.corrected.md``).

Structure: the note's title, its sources, then its sections in its order (prose from
:mod:`derive.seed.note_zh`, formulas from :mod:`derive.document.seed_note_math`), a zh/en
glossary, and one Markdown footnote per marked statement of the seed. Where a seed claim's
statement occurs the text carries ``<!-- seed.id -->[^n]``; footnote ``n`` gives the erratum
number(s) of ``shared/reference/equations.md`` section 9, the reason, the note's own formula
and the derived correction (:func:`derive.document.seed_note_math.corrections`). Math is
``$...$`` / ``$$...$$`` (KaTeX); there are no images of formulas. The output depends on
nothing but the cells' definitions: deterministic byte for byte.
"""
from __future__ import annotations

import re

from derive.document import seed_note_math as M
from derive.seed import note_zh as Z
from derive.seed.claims import seed_claim

PATH = "seed_note.corrected.md"

_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MARK = re.compile(r"<<(seed\.[a-z0-9_.]+)>>")


def marker(claim_id: str) -> str:
    """The HTML comment that marks where ``claim_id``'s statement occurs."""
    return "<!-- %s -->" % claim_id


class _Notes:
    """Footnotes in order of first reference."""

    def __init__(self):
        self.order: list = []

    def ref(self, claim_id: str) -> str:
        seed_claim(claim_id)                       # an unknown id fails here, with the list
        if claim_id not in Z.FOOTNOTES:
            raise KeyError(f"seed note: no footnote text for {claim_id!r}")
        if claim_id in self.order:
            raise ValueError(f"seed note: {claim_id!r} is marked twice")
        self.order.append(claim_id)
        return "%s[^%d]" % (marker(claim_id), len(self.order))


def _fill(text: str, notes: _Notes | None = None) -> str:
    """Prose with ``{key}`` slots as ``$formula$`` and ``<<seed.id>>`` as footnote marks."""
    math = M.inline()

    def slot(m):
        key = m.group(1)
        if key not in math:
            raise KeyError(f"seed note: no inline formula {key!r} (in {text[:30]!r}...)")
        return "$%s$" % math[key]
    out = _SLOT.sub(slot, text)
    if notes is not None:
        out = _MARK.sub(lambda m: notes.ref(m.group(1)), out)
    elif _MARK.search(out):
        raise ValueError(f"seed note: a claim mark where none is allowed: {text[:30]!r}")
    return out


def _display(key: str) -> str:
    d = M.displays()
    if key not in d:
        raise KeyError(f"seed note: no display {key!r}")
    return "$$\n%s\n$$" % d[key]


def _bias_table() -> str:
    head = "| $%s$ | $%s$ | $%s^{%d}$ |" % (M.inline()["b_f"], r"\sigma(b_f)", r"\sigma(b_f)", M.HORIZON)
    rows = [head, "|---:|---:|---:|"]
    rows += ["| $%s$ | $%s$ | $%s$ |" % r for r in M.bias_rows()]
    return "\n".join(rows)


def _block(block, notes) -> str:
    kind = block[0]
    if kind == "p":
        return _fill(block[1], notes)
    if kind == "math":
        return _display(block[1])
    if kind == "list":
        return "\n".join("* " + _fill(item, notes) for item in block[1])
    if kind == "img":
        return Z.IMAGE_NOTE.format(alt=block[2], path=block[1])
    if kind == "table" and block[1] == "bias_table":
        return _bias_table()
    raise ValueError(f"seed note: unknown block {block!r}")


def _footnote(n: int, claim_id: str) -> str:
    claim = seed_claim(claim_id)
    parts = ["%s %s：" % (Z.ERRATUM_LABEL, "、".join(str(e) for e in claim.erratum)),
             _fill(Z.FOOTNOTES[claim_id])]
    if claim_id in Z.QUOTE_IN_FOOTNOTE:
        label = Z.QUOTE_WORDS_LABEL if claim.quote_note else Z.QUOTE_LABEL
        parts.append(" %s$%s$。" % (label, claim.quote_latex.strip()))
    rows = M.corrections(claim)
    if rows:
        parts.append(" %s%s。" % (Z.CORRECTED_LABEL, "；".join("$%s$" % r for r in rows)))
    return "[^%d]: %s" % (n, "".join(parts))


def _sources() -> str:
    lines = [Z.SOURCES_INTRO, ""]
    lines += ["* [%s](%s)：%s" % (label, url, what) for label, url, what in Z.SOURCES]
    lines += ["", Z.PAPERS_INTRO, ""]
    lines += [Z.PAPER_LINE.format(label=label, url=url, title=title, venue=venue, what=what)
              for label, url, title, venue, what in Z.PAPERS]
    lines.append("")
    lines += ["[%s]: %s" % (label, url) for label, url, _ in Z.SOURCES]
    return "\n".join(lines)


def _glossary() -> str:
    rows = ["## " + Z.GLOSSARY_HEADING, "", "| 中文 | English |", "|---|---|"]
    rows += ["| %s | %s |" % pair for pair in Z.GLOSSARY]
    return "\n".join(rows)


def seed_note_markdown() -> str:
    """The whole corrected note (UTF-8 Markdown text ending in one newline)."""
    notes = _Notes()
    parts = ["# " + Z.TITLE, _fill(Z.SUBTITLE), _sources()]
    for heading, blocks in Z.SECTIONS:
        parts.append("## " + heading)
        parts.extend(_block(b, notes) for b in blocks)
    parts.append(_glossary())
    missing = sorted(set(Z.FOOTNOTES) - set(notes.order))
    if missing:
        raise ValueError(f"seed note: footnotes never referenced: {', '.join(missing)}")
    parts.append("\n".join(_footnote(n, cid) for n, cid in enumerate(notes.order, 1)))
    return "\n\n".join(parts) + "\n"


def headings(md: str) -> list:
    """The ``#``/``##`` headings of a Markdown text, in order, without the hashes."""
    return [m.group(1).strip() for m in re.finditer(r"(?m)^#{1,6}\s+(.+)$", md)]
