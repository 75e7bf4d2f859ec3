"""Exporter: ``kernels/<cell>.py``, a NumPy-only module of kernels for every cell.

Each module holds the cell's math functions (printed from its derived expressions through
``sympy.lambdify``), the loop driver, and verbatim copies of the primitives and the input
checks, so it imports nothing but NumPy. ``kernels/__init__.py`` lists the cells.
"""
from __future__ import annotations

from .kernelgen import generate, module_source


def export(cells, options) -> dict:
    files = {f"kernels/{c.name}.py": module_source(generate(c)) for c in cells}
    names = sorted(c.name for c in cells)
    files["kernels/__init__.py"] = (
        '"""Generated NumPy kernels (rnn-calculus): one module per cell, importing only NumPy.\n\n'
        "    from kernels import lstm\n"
        "    params = lstm.init_params(input_size, hidden_size)\n"
        "    hs, cache = lstm.forward(params, xs)\n"
        '"""\n'
        f"CELLS = {tuple(names)!r}\n")
    return files
