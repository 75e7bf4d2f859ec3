"""Exporter: ``kernels/<cell>.py``, a NumPy-only module of kernels for every cell.

Each module holds the cell's math functions (printed from its derived expressions through
``sympy.lambdify``), the loop driver, and verbatim copies of the primitives and the input
checks, so it imports nothing but NumPy. ``kernels/__init__.py`` lists the cells.
The module text is built by :mod:`derive.codegen.source`.
"""
from __future__ import annotations

import sys

from derive.codegen import module as kernelgen
from derive.codegen.plan import KernelPlanError
from derive.codegen.source import module_source, package_init


def export(cells, options) -> dict:
    files = {}
    for c in cells:
        try:
            files[f"kernels/{c.name}.py"] = module_source(kernelgen.generate(c))
        except KernelPlanError as exc:
            # a user-defined cell with a construct the generator does not compile: its other
            # exports still stand
            print(f"note: kernels of cell {c.name!r} skipped: {exc}", file=sys.stderr)
    names = sorted(path[len("kernels/"):-len(".py")] for path in files)
    files["kernels/__init__.py"] = package_init(names)
    return files
