"""The one way ``verify`` reads a cell argument: a built-in cell's name, a
:class:`derive.Cell`, or the path of a spec file (``str`` or :class:`pathlib.Path` ending
``.toml``).

``resolve_cell(obj) -> Cell``. An unknown name is :class:`derive.UnknownCellError` (listing
the built-in cells), a bad spec file :class:`derive.SpecError` (``path:line:col``), anything
else a one-line ``TypeError`` naming what was given. A spec file is parsed once per
(path, modification time, size), so the same path gives the same ``Cell`` object and
``derive.kernels`` builds its kernels once.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import derive

__all__ = ["resolve_cell", "cell_name"]


@lru_cache(maxsize=64)
def _load(path: str, mtime_ns: int, size: int):
    return derive.cell_from_spec(path)


def _spec(path: Path):
    try:
        st = os.stat(path)
    except OSError:
        return derive.cell_from_spec(path)          # SpecError naming the path
    return _load(str(path.resolve()), st.st_mtime_ns, st.st_size)


def resolve_cell(obj) -> derive.Cell:
    """``obj`` as a :class:`derive.Cell` (see the module docstring)."""
    if isinstance(obj, derive.Cell):
        return obj
    if isinstance(obj, Path):
        if obj.suffix != ".toml":
            raise ValueError(f"cell spec path {str(obj)!r} does not end in .toml")
        return _spec(obj)
    if isinstance(obj, str):
        if obj.endswith(".toml"):
            return _spec(Path(obj))
        return derive.cell(obj)                      # UnknownCellError naming it
    raise TypeError(f"cell must be a cell name, a derive.Cell or a .toml spec path, "
                    f"got {type(obj).__name__} {obj!r:.60}")


def cell_name(obj) -> str:
    """The name of the cell ``obj`` resolves to."""
    return resolve_cell(obj).name
