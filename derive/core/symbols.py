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

    SymPy's printers dispatch on class names (so no role class is named like a SymPy class:
    the deltas are ``Cotangent``, not ``Adjoint``, SymPy's conjugate transpose), and a
    printmethod hook on the expression runs before that dispatch: these hooks make
    ``sympy.latex``, ``sympy.pretty``, MathML, ``str`` and Jupyter print every cell symbol
    as the symbol it is, whatever its class is called."""
    role = "symbol"

    def _latex(self, printer):
        """The project's LaTeX name at step t, as ``derive.latex(expr)`` prints it
        (``\\delta\\bar{o}_t``, ``W_{hi}``, ``h_{t-1}``), once the printing layer has
        registered itself (:func:`register_latex`); SymPy's own name before that."""
        if _LATEX_HOOK:
            return _LATEX_HOOK[0](self)
        return printer._print_MatrixSymbol(self)

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

    @classmethod
    def of(cls, state: str, rows=H, cols=1):
        """s_{t-1} for the state named ``state``."""
        return cls(prev_name(state), rows, cols)

    @property
    def state(self) -> str:
        """The name of the state this is the previous value of (``h_prev`` -> ``h``)."""
        return name_inverse(self.name, prev_name)


class Var(CellSymbol):
    """A quantity computed at step t: a pre-activation, a gate, a new state."""
    role = "var"


class Centred(Var):
    """A quantity whose entries sum to zero for every input, ``1^T d = 0``: its equation
    (``u - mean(u)``, or any other whose sum :func:`derive.core.centring.sums_to_zero`
    proves to be identically zero) says so. The simplifier drops ``1^T d`` wherever it
    appears (the Jacobian of layer norm has ``d 1^T d`` terms that are zero)."""
    role = "var"


class Cotangent(CellSymbol):
    """delta z: the gradient of the loss with respect to z, accumulated inside one step."""
    role = "adjoint"

    @property
    def target(self) -> str:
        """The name of the quantity this is the gradient of (``delta_ibar`` -> ``ibar``)."""
        return name_inverse(self.name, adjoint_name)


class Incoming(CellSymbol):
    """Delta s_t: the gradient reaching the step's new state s_t from outside the step
    (the loss at step t plus everything downstream through step t+1)."""
    role = "incoming"

    @property
    def state(self) -> str:
        """The name of the state this gradient reaches (``Delta_h`` -> ``h``)."""
        return name_inverse(self.name, incoming_name)


class Tangent(CellSymbol):
    """``d s_{t-1}``: a change of the previous state, the argument of a step-Jacobian block
    written as a linear map (``dC_{t-1} -> f'_t dC_{t-1}``)."""
    role = "tangent"

    @classmethod
    def of(cls, state: str, rows=H, cols=1):
        return cls(tangent_name(state), rows, cols)

    @property
    def state(self) -> str:
        """The name of the state this is a change of (``dS_prev`` -> ``S``)."""
        return name_inverse(self.name, tangent_name)


class LossGradient(CellSymbol):
    """``nabla_{z_t} L_t``: the gradient of the step-t loss with respect to the vector ``z``,
    a leaf of the readout's transpose rule and of BPTT."""
    role = "loss_gradient"

    @classmethod
    def of(cls, sym):
        return cls(loss_gradient_name(sym.name), *sym.shape)

    @property
    def of_name(self) -> str:
        """The name of the vector ``z`` (``grad_y`` -> ``y``)."""
        return name_inverse(self.name, loss_gradient_name)


#: The printing layer's LaTeX of a cell symbol (filled by :func:`register_latex`).
_LATEX_HOOK: list = []


def register_latex(fn) -> None:
    """Let ``sympy.latex`` print cell symbols with ``fn(symbol)`` (the printing layer calls
    this when it is imported; core imports no printer)."""
    _LATEX_HOOK[:] = [fn]


def prev_name(state: str) -> str:
    """Name of a state's previous value: ``h`` -> ``h_prev``."""
    return f"{state}_prev"


def tangent_name(state: str) -> str:
    """Name of a change of a state's previous value: ``S`` -> ``dS_prev``."""
    return f"d{prev_name(state)}"


def adjoint_name(name: str) -> str:
    return f"delta_{name}"


def incoming_name(state: str) -> str:
    return f"Delta_{state}"


def loss_gradient_name(name: str) -> str:
    return f"grad_{name}"


def name_inverse(name: str, naming) -> str:
    """The ``x`` with ``naming(x) == name``: each naming is a fixed prefix or suffix around
    ``x``, read off ``naming("")`` (the one place that knows how names are built)."""
    prefix, suffix = naming("\0").split("\0")
    if not (name.startswith(prefix) and name.endswith(suffix)):
        raise ValueError(f"{name!r} is not a name made by {naming.__name__}")
    return name[len(prefix):len(name) - len(suffix)]
