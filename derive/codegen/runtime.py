"""``derive.kernels(name)``: a cell's NumPy kernels built at run time.

The math of every stage is compiled by ``sympy.lambdify`` (batch-aware printer, hash-consing
CSE); the loop driver generated for the cell runs around those functions. The result is a
module object with the API of a generated ``out/kernels/<cell>.py`` file and executes the
same code, so both routes give identical results.
"""
from __future__ import annotations

import linecache
import types

from derive.core.cell import Cell
from derive.codegen.module import generate

_CACHE: dict = {}


def kernels(name_or_cell) -> types.ModuleType:
    """The kernels of a built-in cell (by name) or of a :class:`~derive.core.cell.Cell`."""
    if isinstance(name_or_cell, Cell):
        cell = name_or_cell
    else:
        from derive.spec.registry import cell as _cell
        cell = _cell(name_or_cell)
    key = id(cell)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is cell:
        return hit[1]
    module = build_module(cell)
    _CACHE[key] = (cell, module)
    return module


def build_module(cell) -> types.ModuleType:
    """Generate the cell's kernels and load them as a module, without writing a file."""
    kernel = generate(cell)
    ns = kernel.namespace()
    mod = types.ModuleType(f"derive.kernels.{cell.name}",
                           f"NumPy kernels of the cell {cell.name!r}, built at run time.")
    mod.__dict__.update(ns)
    lines = kernel.program.splitlines(True)
    # tracebacks show the driver's lines: another cell of the same name gets its own entry
    filename, n = f"<derive.kernels:{cell.name}>", 1
    while filename in linecache.cache and linecache.cache[filename][2] != lines:
        n += 1
        filename = f"<derive.kernels:{cell.name}#{n}>"
    linecache.cache[filename] = (len(kernel.program), None, lines, filename)
    code = compile(kernel.program, filename, "exec")
    exec(code, mod.__dict__)  # noqa: S102 - generated from the parsed cell, never from raw user text
    mod.__all__ = ["STATE", "PARAMS", "init_params", "step", "forward", "backward",
                   "step_jacobian"] + (["params_from_torch", "params_to_torch"] if cell.torch else [])
    mod.KERNEL = kernel
    return mod
