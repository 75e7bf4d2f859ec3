"""Expression helpers of the kernel planner: normal-form keys, symbol sets, rebuilding an
expression child by child, naming rules for generated identifiers."""
from __future__ import annotations

import keyword
import re

import sympy
from sympy import HadamardProduct, MatAdd, MatMul, MatrixSymbol, Transpose


from derive.core.matrixstate import MatTVec, MatVec, Outer
from derive.core.reduction import Broadcast, SumOf
from derive.core.algebra import VecPoly, add, hadamard, matmul, ones, scale, transpose
from derive.core.primitives import ALL_PRIMITIVES, Elementwise, Reciprocal
from derive.core.symbols import Cotangent, Incoming, Input, Param, PrevState, Var

RESERVED = {"numpy", "self"} | {p.numpy for p in ALL_PRIMITIVES} | {p.name for p in ALL_PRIMITIVES}


class KernelPlanError(ValueError):
    """The cell uses a construct the kernel generator cannot compile."""


def safe_name(name: str) -> str:
    """A Python identifier for a cell name (cell names never start with '_')."""
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in RESERVED:
        return name + "_"
    return name


def canon(e):
    """Key under which equal vector expressions coincide (the VecPoly normal form)."""
    if hasattr(e, "shape") and e.shape[1] == 1:
        return VecPoly.from_expr(e)
    return e


def is_vector(e) -> bool:
    return e.shape[1] == 1


def symbols_in(e):
    if isinstance(e, MatrixSymbol):
        return {e}
    out = set()
    for a in getattr(e, "args", ()):
        if hasattr(a, "shape"):
            out |= symbols_in(a)
    return out


def _parts(e):
    """(the matrix-valued children of e, the function building e from new children)."""
    if isinstance(e, MatAdd):
        return e.args, lambda new: add(new, e.shape)
    if isinstance(e, HadamardProduct):
        return e.args, hadamard
    if isinstance(e, MatMul):
        c, mats = e.as_coeff_matrices()
        return mats, lambda new: scale(c, matmul(*new))
    if isinstance(e, Elementwise):
        return (e.arg,), lambda new: type(e)(new[0])
    if isinstance(e, Transpose):
        return (e.arg,), lambda new: Transpose(new[0])
    if isinstance(e, SumOf):
        return (e.arg,), lambda new: SumOf(new[0])
    if isinstance(e, Broadcast):
        return (e.arg,), lambda new: Broadcast(new[0], e.shape[0])
    if isinstance(e, (Outer, MatVec, MatTVec)):
        return e.args, lambda new: type(e)(*new)
    return (), None


def rebuild(e, f):
    """e with f applied to every matrix-valued child, keeping term order."""
    children, build = _parts(e)
    return e if build is None else build([f(a) for a in children])


def fold_children(state, e, f):
    """(state, e rebuilt) threading ``f(state, child) -> (state, new child)`` through the
    matrix-valued children of e in order (a fold: nothing is changed in place)."""
    children, build = _parts(e)
    if build is None:
        return state, e
    new = ()
    for a in children:
        state, b = f(state, a)
        new += (b,)
    return state, build(list(new))


def scalar_to_vector(expr, y_scalar, y_vec):
    """A scalar SymPy polynomial in ``y_scalar`` (a from_output form such as y (1 - y)) as a
    Hadamard expression in the column vector ``y_vec``."""
    shape = y_vec.shape
    if expr == y_scalar:
        return y_vec
    if expr.is_Number:
        return scale(expr, ones(shape))
    if expr.is_Add:
        return add([scalar_to_vector(a, y_scalar, y_vec) for a in expr.args], shape)
    if expr.is_Mul:
        coeff, rest = expr.as_coeff_Mul()
        if coeff != 1:
            return scale(coeff, scalar_to_vector(rest, y_scalar, y_vec))
        return hadamard([scalar_to_vector(a, y_scalar, y_vec) for a in expr.args])
    if expr.is_Pow and expr.exp.is_Integer and expr.exp > 0:
        return hadamard([scalar_to_vector(expr.base, y_scalar, y_vec)] * int(expr.exp))
    if expr.is_Pow and expr.exp == -1:          # 1 / y (sqrt' = 1 / (2 y))
        return Reciprocal(scalar_to_vector(expr.base, y_scalar, y_vec))
    raise KernelPlanError(f"from_output form {expr} is not a polynomial in the output")


PRIMITIVE_OF = {p.derivative: p for p in ALL_PRIMITIVES if p.derivative is not None}


def matrix_factors(w):
    if isinstance(w, MatrixSymbol):
        return [w]
    if isinstance(w, MatMul):
        return [m for m in w.args if hasattr(m, "shape")]
    raise KernelPlanError(f"weight {w} is not a parameter or a product of parameters")


def time_invariant(t):
    return is_vector(t) and all(isinstance(s, Param) for s in symbols_in(t))


def expand_all(e, defs):
    """A named operand back in terms of the cell's own symbols (to match gradient terms)."""
    if isinstance(e, MatrixSymbol):
        return expand_all(defs[e], defs) if e.name.startswith("_") and e in defs else e
    return rebuild(e, lambda a: expand_all(a, defs))


def sums(e):
    """Every sum inside e, outermost first."""
    out = [e] if isinstance(e, MatAdd) else []
    for a in getattr(e, "args", ()):
        if hasattr(a, "shape") and not isinstance(a, MatrixSymbol):
            out += sums(a)
    return out


def replace(e, old, new):
    if e == old:
        return new
    if isinstance(e, MatrixSymbol):
        return e
    return rebuild(e, lambda a: replace(a, old, new))


def free_inputs(assigns) -> tuple:
    """The arguments of a math function running ``assigns``: every symbol they read and do
    not define, in :func:`ordered` order."""
    defined = {d for d, _ in assigns}
    return tuple(ordered({s for _, e in assigns for s in symbols_in(e)} - defined))


def ordered(syms):
    """Arguments of a math function: by role, then by name with numbers in numeric order."""
    rank = {Incoming: 0, PrevState: 1, Input: 2, Var: 3, Cotangent: 4, Param: 5}

    def natural(name):
        return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", name)]
    return sorted(syms, key=lambda s: (rank.get(type(s), 3), natural(s.name)))


def outer(term):
    """(v, u) of a gradient term c v u^T; None for other shapes of term."""
    if not isinstance(term, MatMul):
        return None
    c, mats = term.as_coeff_matrices()
    split = next((i for i, m in enumerate(mats) if m.shape[1] == 1), None)
    if split is None or split == len(mats) - 1:
        return None
    u = transpose(matmul(*mats[split + 1:]))
    if not is_vector(u):
        return None
    return scale(c, matmul(*mats[:split + 1])), u


def coeff_factors(t):
    """(c, [M1, M2, ...]) for a product c M1 M2 ..., nested products flattened."""
    c, mats = sympy.Integer(1), [t]
    while len(mats) == 1 and isinstance(mats[0], MatMul):
        k, mats = mats[0].as_coeff_matrices()
        c *= k
    return c, list(mats)
