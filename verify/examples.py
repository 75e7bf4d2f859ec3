"""The example cells of ``examples/`` (layer-norm LSTM, mLSTM, Gated DeltaNet) by name: specs
that are not built-in cells yet, loaded once."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import derive

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@lru_cache(maxsize=None)
def example_cell(name: str):
    """The Cell of ``examples/<name>.toml``."""
    return derive.cell_from_spec(EXAMPLES / f"{name}.toml")


def example_kernels(name: str):
    """The kernels of ``examples/<name>.toml`` (cached by derive.kernels per cell)."""
    return derive.kernels(example_cell(name))


def resolve(cell):
    """A Cell from a built-in name, an example's name, or a Cell."""
    if not isinstance(cell, str):
        return cell
    return derive.cell(cell) if cell in derive.cells() else example_cell(cell)
