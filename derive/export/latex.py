"""Exporter: ``latex/<cell>.tex`` snippets, ``derivations.tex`` (a standalone article) and
``derivations.md`` (the same content with ``$...$`` / ``$$...$$`` math).

The article is built by :mod:`derive.document` (blocks from the derived results of each
cell, then rendered twice); this module only assembles the files. Options: ``notation`` (a
notation map) and ``figure`` (default on: the gradient-flow figure is part of the article,
which then needs matplotlib, see :func:`derive.export.flow.require_matplotlib`).
"""
from __future__ import annotations

from derive.document.render import render_md, render_tex
from derive.document.sections import TITLE, cell_blocks, cell_snippet, document_blocks
from derive.printing.notation import notation_map

from derive.export.flow import figure_wanted, require_matplotlib

def export(cells, options) -> dict:
    notation = getattr(options, "notation", None)
    notation_map(notation)
    figure = figure_wanted(options)
    if figure:
        require_matplotlib()
    per_cell = {c.name: cell_blocks(c, notation) for c in cells}
    files = {"latex/%s.tex" % c.name: cell_snippet(c, notation, per_cell[c.name]) for c in cells}
    blocks = document_blocks(cells, notation, figure=figure, per_cell=per_cell)
    files["derivations.tex"] = render_tex(blocks, TITLE)
    files["derivations.md"] = render_md(blocks, TITLE)
    return files
