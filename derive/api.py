"""The top of the package: :func:`latex`, the one entry point that turns a cell name, a
:class:`~derive.core.cell.Cell` or a derived result into LaTeX (it reaches every layer below)."""
from __future__ import annotations

import sympy

from derive.core.cell import Cell
from derive.document.sections import cell_snippet
from derive.printing.latex import expr_latex
from derive.printing.notation import notation_map
from derive.spec.registry import cell as builtin_cell

__all__ = ["latex"]


def latex(obj, *, cell=None, notation=None) -> str:
    """LaTeX of a cell or of a derived result.

    * a cell name or :class:`~derive.core.cell.Cell`: the cell's snippet, the same text as
      ``out/latex/<cell>.tex`` (forward pass, Jacobian blocks, BPTT step, bounds);
    * a SymPy expression from the cell (pass ``cell=`` for its ``[latex]`` names and to tell
      parameters from variables): the expression at step t;
    * a pair ``(symbol, expr)`` such as an item of ``Backward.outputs()``: ``lhs = rhs``.

    ``notation`` selects a notation map (``seed``, ``greff``, ``pytorch``; see
    :mod:`derive.printing.notation`).
    """
    notation_map(notation)                      # an unknown name fails here, with the list
    if isinstance(obj, str):
        obj = builtin_cell(obj)
    if isinstance(obj, Cell):
        return cell_snippet(obj, notation)
    if isinstance(obj, tuple) and len(obj) == 2:
        lhs, rhs = obj
        return "%s = %s" % (expr_latex(lhs, cell=cell, notation=notation),
                            expr_latex(rhs, cell=cell, notation=notation))
    if isinstance(obj, sympy.Basic):
        return expr_latex(obj, cell=cell, notation=notation)
    raise TypeError(f"derive.latex: cannot print a {type(obj).__name__}; pass a cell, a cell "
                    f"name, a SymPy expression or a (symbol, expression) pair")
