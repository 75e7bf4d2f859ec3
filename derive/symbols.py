"""The symbols a cell is written in, one SymPy class per role.

Shapes are symbolic: ``H`` hidden units, ``D`` input features. Vectors are columns
(``H x 1``). The role of a symbol is its class, so printers and the simplifier can tell a
parameter from a variable without parsing names.
"""
from __future__ import annotations

import sympy
from sympy import MatrixSymbol

H = sympy.Symbol("H", integer=True, positive=True)
D = sympy.Symbol("D", integer=True, positive=True)

#: Dimension names used in specs and kernels, and their SymPy symbols.
DIMS = {"H": H, "D": D}


class CellSymbol(MatrixSymbol):
    """Base of all cell symbols; ``role`` names the class for printers and reports.

    SymPy's printers dispatch on class names (``_print_Adjoint`` is SymPy's conjugate
    transpose), but a printmethod hook on the expression runs first: these hooks make
    ``sympy.latex``, ``sympy.pretty``, MathML, ``str`` and Jupyter print every cell symbol
    as the symbol it is, whatever its class is called."""
    role = "symbol"

    def _latex(self, printer):
        """The project's LaTeX name at step t, as ``derive.latex(expr)`` prints it
        (``\\delta\\bar{o}_t``, ``W_{hi}``, ``h_{t-1}``)."""
        from .notation import Namer
        return Namer().symbol(self)

    def _sympystr(self, printer):
        return printer._print_MatrixSymbol(self)

    def _pretty(self, printer):
        return printer._print_MatrixSymbol(self)

    def _mathml_presentation(self, printer):
        return printer._print_MatrixSymbol(self)


class Param(CellSymbol):
    """A learned parameter: weight matrix, bias or peephole vector."""
    role = "param"


class Input(CellSymbol):
    """The input x_t."""
    role = "input"


class PrevState(CellSymbol):
    """A state at the previous step, s_{t-1}."""
    role = "prev_state"


class Var(CellSymbol):
    """A quantity computed at step t: a pre-activation, a gate, a new state."""
    role = "var"


class Adjoint(CellSymbol):
    """delta z: the gradient of the loss with respect to z, accumulated inside one step."""
    role = "adjoint"


class Incoming(CellSymbol):
    """Delta s_t: the gradient reaching the step's new state s_t from outside the step
    (the loss at step t plus everything downstream through step t+1)."""
    role = "incoming"


def prev_name(state: str) -> str:
    """Name of a state's previous value: ``h`` -> ``h_prev``."""
    return f"{state}_prev"


def adjoint_name(name: str) -> str:
    return f"delta_{name}"


def incoming_name(state: str) -> str:
    return f"Delta_{state}"
