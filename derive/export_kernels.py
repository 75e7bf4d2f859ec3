"""Exporter: ``kernels/<cell>.py``, a NumPy-only module of kernels for every cell.

Each module holds the cell's math functions (printed from its derived expressions through
``sympy.lambdify``), the loop driver, and verbatim copies of the primitives and the input
checks, so it imports nothing but NumPy. ``kernels/__init__.py`` lists the cells.
"""
from __future__ import annotations

import sys

from .kernel_plan import KernelPlanError
from .kernelgen import generate, module_source


def export(cells, options) -> dict:
    files = {}
    for c in cells:
        try:
            files[f"kernels/{c.name}.py"] = module_source(generate(c))
        except KernelPlanError as exc:
            # a user-defined cell with a construct the generator does not compile: its other
            # exports still stand
            print(f"note: kernels of cell {c.name!r} skipped: {exc}", file=sys.stderr)
    names = sorted(path[len("kernels/"):-len(".py")] for path in files)
    files["kernels/__init__.py"] = (
        '"""Generated NumPy kernels (rnn-calculus): one module per cell, importing only NumPy.\n\n'
        "    from kernels import lstm\n"
        "    params = lstm.init_params(input_size, hidden_size)\n"
        "    hs, cache = lstm.forward(params, xs)\n"
        '"""\n'
        f"CELLS = {tuple(names)!r}\n")
    return files
