"""Exporter: ``kernels/<cell>.py``, a NumPy-only module of kernels for every cell.

Each module holds the cell's math functions (printed from its derived expressions through
``sympy.lambdify``), the loop driver, and verbatim copies of the primitives and the input
checks, so it imports nothing but NumPy. ``kernels/__init__.py`` lists the cells.
The module text is built by :mod:`derive.codegen.source`. The work is per cell
(:func:`cell_task`, run in any process of :mod:`derive.export.cellpool`), the files are
assembled by :func:`merge`; :func:`export` is both in this process.
"""
from __future__ import annotations

import sys

from derive.codegen import module as kernelgen
from derive.codegen.plan import KernelPlanError
from derive.codegen.source import module_source, package_init

#: Per-cell work that may run in a worker process (derive.export.cellpool).
CELL_TASKS = True


def prepare(cells, options) -> None:
    """Before the workers are forked (derive.export.registry): the step Jacobian and the
    backward step, which the kernels and every other exporter read, derived once (cached per
    cell) and inherited by every process. Only warms caches: errors are :func:`cell_task`'s
    to report."""
    for c in cells:
        try:
            c.step_jacobian()
            c.backward()
        except Exception:                   # noqa: BLE001 - reported where it matters
            pass


def cell_task(cell, options):
    """``("ok", module text)``, or ``("skip", reason)`` for a cell the generator does not
    compile."""
    try:
        return "ok", module_source(kernelgen.generate(cell))
    except KernelPlanError as exc:
        return "skip", str(exc)


def merge(cells, results, options, extras=()) -> dict:
    """The files from :func:`cell_task`'s results, in the order of ``cells``; a skipped cell
    is a note on stderr (its other exports still stand)."""
    files = {}
    for c in cells:
        kind, value = results[c.name]
        if kind == "ok":
            files[f"kernels/{c.name}.py"] = value
        else:
            # a user-defined cell with a construct the generator does not compile
            print(f"note: kernels of cell {c.name!r} skipped: {value}", file=sys.stderr)
    names = sorted(path[len("kernels/"):-len(".py")] for path in files)
    files["kernels/__init__.py"] = package_init(names)
    return files


def export(cells, options) -> dict:
    return merge(cells, {c.name: cell_task(c, options) for c in cells}, options)
