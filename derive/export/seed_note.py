"""Exporter: ``seed_note.corrected.md``, the seed note corrected for its author, in Chinese
(:mod:`derive.document.seed_note`).

The note is about the seed's own cells (``rnn_sigmoid``, ``rnn_tanh``, ``lstm_peephole``) in
the seed's own names, so neither ``--cells`` nor ``--notation`` changes it; with
``options.lang == "en"`` (English only) it is not written.
"""
from __future__ import annotations

from derive.document.seed_note import PATH, seed_note_markdown


def export(cells, options) -> dict:
    if getattr(options, "lang", None) == "en":
        return {}
    return {PATH: seed_note_markdown()}
