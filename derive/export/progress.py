"""Progress of ``python -m derive`` on stderr: one live line rewritten with ``\\r`` when stderr
is a terminal, plain lines otherwise, nothing with ``--quiet``. Never on stdout, never in
the generated files.

Exporters need no change: :func:`cells_reporting` hands an exporter its cells as a list that
reports each cell the first time the exporter iterates over it (the exporters' expensive
pass is their first ``for c in cells``), so the report is per exporter and per cell while the
files stay exactly those of a plain list.
"""
from __future__ import annotations

import shutil
import sys

_CLEAR = "\r\x1b[K"


class Progress:
    """``progress(text)`` reports one step; :meth:`clear` removes a live line."""

    def __init__(self, stream=None, quiet=False, live=None):
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty()) if live is None else live
        self._shown = False

    def __call__(self, text: str) -> None:
        if self.quiet:
            return
        if self.live:
            width = shutil.get_terminal_size((80, 24)).columns - 1
            self.stream.write(_CLEAR + text[:max(width, 10)])
            self._shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self._shown:
            self.stream.write(_CLEAR)
            self.stream.flush()
            self._shown = False

    def for_child(self) -> "Progress":
        """The reporter of a forked exporter: plain lines on the same stream; silent when the
        terminal's live line belongs to this process."""
        return Progress(self.stream, quiet=self.quiet or self.live, live=False)

    def stderr(self):
        """A stand-in for sys.stderr that clears the live line before other messages."""
        return _ClearingStream(self.stream, self)


class _ClearingStream:
    def __init__(self, stream, progress):
        self._stream, self._progress = stream, progress

    def write(self, s):
        self._progress.clear()
        return self._stream.write(s)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def silent(_text: str) -> None:
    """The reporter used when none is given."""


class _ReportingCells(list):
    def __init__(self, cells, label, progress):
        super().__init__(cells)
        self._label, self._progress, self._done = label, progress, False

    def __iter__(self):
        if self._done:
            yield from list.__iter__(self)
            return
        n = len(self)
        for i, c in enumerate(list.__iter__(self), 1):
            self._progress(f"{self._label}: {getattr(c, 'name', c)} ({i}/{n})")
            yield c
        self._done = True


def cells_reporting(cells, label: str, progress) -> list:
    """``cells`` as a list that reports ``<label>: <cell> (i/n)`` on the first pass over it."""
    return _ReportingCells(cells, label, progress)
