"""The built-in cells: one spec file each in ``derive/cells/``, loaded on first use."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from derive.core.cell import Cell
from derive.spec.tables import load_spec

CELLS_DIR = Path(__file__).parent.parent / "cells"


class UnknownCellError(KeyError, ValueError):
    """An unknown cell name; the message lists the valid ones."""

    def __str__(self):
        return self.args[0]


def cells() -> list[str]:
    """Names of the built-in cells, in a stable order."""
    return sorted(p.stem for p in CELLS_DIR.glob("*.toml"))


@lru_cache(maxsize=None)
def _load(name: str) -> Cell:
    return load_spec(CELLS_DIR / f"{name}.toml")


def cell(name: str) -> Cell:
    """The built-in cell called ``name``."""
    if not isinstance(name, str) or name not in cells():
        raise UnknownCellError(f"unknown cell {name!r}; valid cells: {', '.join(cells())}")
    return _load(name)
