"""Exporter: ``latex/<cell>.tex`` snippets, ``derivations.tex`` (a standalone article) and
``derivations.md`` (the same content with ``$...$`` / ``$$...$$`` math).

The article is built by :mod:`derive.document` (blocks from the derived results of each
cell, then rendered twice); this module only assembles the files. Options: ``notation`` (a
notation map), ``figure`` (default on: the gradient-flow figure is part of the article,
which then needs matplotlib, see :func:`derive.export.flow.require_matplotlib`) and ``lang``
("en", "zh" or "all", default "all"): "zh" and "all" also write the Chinese edition
``derivations.zh.tex`` (for xelatex) and ``derivations.zh.md``; the snippets are
language-neutral and always written.
"""
from __future__ import annotations

from derive.document.render import render_md, render_tex
from derive.document.sections import TITLE, cell_blocks, cell_snippet, document_blocks
from derive.printing.notation import notation_map

from derive.export.flow import figure_wanted, require_matplotlib

LANGS = ("en", "zh", "all")


def languages(options) -> tuple:
    """The editions ``options.lang`` asks for, in order."""
    lang = getattr(options, "lang", None) or "all"
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; valid: {', '.join(LANGS)}")
    return ("en", "zh") if lang == "all" else (lang,)


def zh_blocks(cells, notation, figure, per_cell):
    """The Chinese edition: the same sections with the Chinese prose, and the zh/en
    glossary as the last section of the main text (before the references)."""
    from derive.document.model import Bibliography
    from derive.document.prose_zh import glossary_blocks
    blocks = document_blocks(cells, notation, figure=figure, per_cell=per_cell, lang="zh")
    at = next((i for i, b in enumerate(blocks) if isinstance(b, Bibliography)), len(blocks))
    return blocks[:at] + glossary_blocks() + blocks[at:]


def export(cells, options) -> dict:
    notation = getattr(options, "notation", None)
    notation_map(notation)
    figure = figure_wanted(options)
    if figure:
        require_matplotlib()
    per_cell = {c.name: cell_blocks(c, notation) for c in cells}
    files = {"latex/%s.tex" % c.name: cell_snippet(c, notation, per_cell[c.name]) for c in cells}
    langs = languages(options)
    if "en" in langs:
        blocks = document_blocks(cells, notation, figure=figure, per_cell=per_cell)
        files["derivations.tex"] = render_tex(blocks, TITLE)
        files["derivations.md"] = render_md(blocks, TITLE)
    if "zh" in langs:
        from derive.document.prose_zh import TITLE as TITLE_ZH
        blocks = zh_blocks(cells, notation, figure, per_cell)
        files["derivations.zh.tex"] = render_tex(blocks, TITLE_ZH, lang="zh")
        files["derivations.zh.md"] = render_md(blocks, TITLE_ZH, lang="zh")
    return files
