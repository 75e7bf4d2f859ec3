"""The one numerical oracle of the expression vocabulary and the one finite-difference routine.

:func:`evaluate` interprets a derived (or defining) matrix expression of the engine with NumPy,
node by node, from the vocabulary's meaning (docs/ARCHITECTURE.md, "Expression vocabulary"):

* leaves (``Param``, ``Input``, ``PrevState``, ``Var``, ``Cotangent``, ``Incoming``; any
  ``MatrixSymbol``) are looked up by name in ``values``;
* ``MatAdd`` is the sum, ``MatMul`` ``c * A_1 @ ... @ A_k`` (c its rational coefficient),
  ``HadamardProduct`` the entrywise product, ``Transpose`` swaps the last two axes,
  ``DiagMatrix(v)`` is ``diag(v)``, ``Identity(n)``, ``ZeroMatrix``, ``OneMatrix`` are I, 0, 1;
* an ``Elementwise`` node ``f(u)`` applies the primitive's scalar definition
  (``type(node).scalar``, via ``sympy.lambdify``) to every entry of ``u``; a ``Binary`` node
  ``max(a, b)`` / ``min(a, b)`` likewise to every pair of entries.

It uses neither the kernel generator nor derive's printers (nor derive.codegen.np_primitives, unless
asked for with ``functions=stable``), so it is an oracle, not the engine checking itself.
Arrays are in the mathematical layout: a vector is an (n, 1) column, and any leading axes are a
batch (``(B, n, 1)``), broadcast through every node. :func:`evaluate_rows` takes and returns
row-vector batches ``(B, n)`` as the kernels store them.

:func:`central_difference` is the one central-difference loop,
``d f / d x[i] ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` in float64 (truncation error
O(eps^2), rounding O(|f| u / eps)); :func:`fd_jacobian` and :func:`fd_gradient` are its two
common shapes.
"""
from __future__ import annotations

from functools import lru_cache, reduce

import numpy
import sympy
from sympy import (HadamardProduct, Identity, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose,
                   ZeroMatrix)
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive.core.binary import Binary
from derive.core.matrixstate import MatTVec, MatVec, Outer
from derive.core.reduction import Broadcast, DimSize, SumOf
from derive.core.primitives import Elementwise
from derive.core.symbols import DIMS

__all__ = ["evaluate", "evaluate_rows", "definition", "stable", "central_difference",
           "fd_jacobian", "fd_gradient"]


# ---------------------------------------------------------------------------------------
# elementwise primitives
# ---------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def definition(cls) -> object:
    """NumPy function of the primitive ``cls`` lambdified from its scalar SymPy definition
    (float32 stays float32; overflow of exp gives the limit value, without a warning)."""
    x = sympy.Symbol("x", real=True)
    f = sympy.lambdify(x, cls.scalar(x), "numpy")

    def fn(a):
        a = numpy.asarray(a)
        want = numpy.result_type(a.dtype, numpy.float32)
        with numpy.errstate(over="ignore", under="ignore"):   # exp(-x) -> inf gives the limit
            out = f(a)
        if isinstance(out, numpy.ndarray) and out.shape == a.shape and out.dtype == want:
            return out
        return numpy.broadcast_to(out, a.shape).astype(want)
    return fn


@lru_cache(maxsize=None)
def _binary(cls) -> object:
    """NumPy function of a two-argument primitive (max, min) from its scalar definition."""
    a, b = sympy.symbols("a b", real=True)
    return sympy.lambdify((a, b), cls.scalar(a, b), "numpy")


def stable(cls) -> object:
    """The primitive's stable implementation in :mod:`derive.codegen.np_primitives` (the float
    kernels the properties of :mod:`verify.scalars` check against the exact values)."""
    from derive.codegen import np_primitives as numpy_primitives
    return getattr(numpy_primitives, cls.numpy)


# ---------------------------------------------------------------------------------------
# the interpreter
# ---------------------------------------------------------------------------------------

def _lookup(values, sym):
    """values[name], or values[symbol] when the caller keyed by symbols; None when absent."""
    a = values.get(sym.name)
    return values.get(sym) if a is None else a


class _Dims(dict):
    """Dimension symbols (H, D, ...) -> sizes, filled only when a constant node needs a size:
    the given ones (``dims=``), then what the shapes of the leaves' arrays say."""

    def __init__(self, expr, values, given):
        super().__init__()
        self.expr, self.values, self.given, self.inferred = expr, values, given, False

    def infer(self, need):
        self.inferred = True
        for k, v in (self.given or {}).items():
            self[(DIMS[k] if k in DIMS else sympy.Symbol(k)) if isinstance(k, str) else k] = int(v)
        if need <= set(self):
            return
        for s in sorted(self.expr.atoms(MatrixSymbol), key=lambda s: s.name):
            a = _lookup(self.values, s)
            if a is None:
                continue
            for d, n in zip(s.shape, numpy.shape(a)[-2:]):
                d = sympy.sympify(d)
                if isinstance(d, sympy.Symbol) and d not in self:
                    self[d] = int(n)


def _size(d, dims, expr):
    n = sympy.sympify(sympy.sympify(d).xreplace(dims))
    if not n.is_Integer and not dims.inferred:
        dims.infer(n.free_symbols)
        n = sympy.sympify(sympy.sympify(d).xreplace(dims))
    if not n.is_Integer:
        raise ValueError(f"cannot size {expr}: dimension {d} unknown (give it in dims=)")
    return int(n)


def _eval(e, values, dims, functions, memo):
    if isinstance(e, DimSize):
        return numpy.full((1, 1), float(_size(e.dim, dims, e)))
    if isinstance(e, MatrixSymbol):
        out = _lookup(values, e)
        if out is None:
            raise KeyError(f"no value for symbol {e.name!r} (shape {e.shape})")
        return numpy.asarray(out)
    if e in memo:
        return memo[e]
    if isinstance(e, MatAdd):
        out = reduce(numpy.add, [_eval(a, values, dims, functions, memo) for a in e.args])
    elif isinstance(e, MatMul):
        c, mats = e.as_coeff_matrices()
        out = reduce(numpy.matmul, [_eval(m, values, dims, functions, memo) for m in mats])
        if c != 1:
            out = float(c) * out
    elif isinstance(e, HadamardProduct):
        out = reduce(numpy.multiply, [_eval(a, values, dims, functions, memo) for a in e.args])
    elif isinstance(e, Transpose):
        out = numpy.swapaxes(_eval(e.arg, values, dims, functions, memo), -1, -2)
    elif isinstance(e, DiagMatrix):
        v = _eval(e.args[0], values, dims, functions, memo)
        if v.shape[-1] != 1:                       # a row vector: diag of its entries too
            v = numpy.swapaxes(v, -1, -2)
        # exactly zero off the diagonal, whatever v holds (v * I would put inf * 0 = nan there)
        out = numpy.where(numpy.eye(v.shape[-2], dtype=bool), v, 0.0)
    elif isinstance(e, Identity):
        out = numpy.eye(_size(e.shape[0], dims, e))
    elif isinstance(e, ZeroMatrix):
        out = numpy.zeros(tuple(_size(d, dims, e) for d in e.shape))
    elif isinstance(e, OneMatrix):
        out = numpy.ones(tuple(_size(d, dims, e) for d in e.shape))
    elif isinstance(e, Elementwise):
        out = functions(type(e))(_eval(e.arg, values, dims, functions, memo))
    elif isinstance(e, SumOf):
        out = _eval(e.arg, values, dims, functions, memo).sum(axis=-2, keepdims=True)
    elif isinstance(e, Broadcast):
        s = _eval(e.arg, values, dims, functions, memo)
        n = _size(e.shape[0], dims, e)
        out = numpy.broadcast_to(s, s.shape[:-2] + (n, 1)).copy()
    elif isinstance(e, Outer):                      # vec(u w^T), row-major
        u, w = (_eval(a, values, dims, functions, memo) for a in e.args)
        u, w = numpy.broadcast_arrays(u, w)
        out = (u[..., :, 0, None] * w[..., None, :, 0]).reshape(u.shape[:-2] + (-1, 1))
    elif isinstance(e, (MatVec, MatTVec)):          # C v or C^T v, C held as vec(C)
        C, v = (_eval(a, values, dims, functions, memo) for a in e.args)
        n = v.shape[-2]
        M = C.reshape(C.shape[:-2] + (n, n))
        out = (numpy.swapaxes(M, -1, -2) if isinstance(e, MatTVec) else M) @ v
    elif isinstance(e, Binary):
        out = _binary(type(e))(*(_eval(a, values, dims, functions, memo) for a in e.args))
    else:
        raise TypeError(f"no evaluation rule for {type(e).__name__}: {e}")
    memo[e] = out
    return out


def evaluate(expr, values: dict, *, dims=None, functions=definition) -> numpy.ndarray:
    """The value of a matrix expression of the engine, mathematical layout (vectors (n, 1),
    leading batch axes broadcast). ``values`` maps symbol names (or symbols) to arrays;
    ``dims`` (e.g. ``{"H": 3}``) sizes Identity / ZeroMatrix / OneMatrix when no leaf does;
    ``functions(cls)`` gives the NumPy function of a primitive (default: its definition)."""
    return _eval(expr, values, _Dims(expr, values, dims), functions, {})


def _column(a):
    return numpy.asarray(a)[..., None]


def evaluate_rows(expr, values: dict, *, dims=None, functions=definition) -> numpy.ndarray:
    """:func:`evaluate` on row-vector batches, the kernels' layout: every vector leaf is given
    as (n,) or (B, n) and a vector result comes back as (B, n) (or (n,)); matrices as stored."""
    cols = {}
    for s in expr.atoms(MatrixSymbol):
        a = _lookup(values, s)
        if a is not None:
            cols[s.name] = _column(a) if s.shape[1] == 1 else a
    out = evaluate(expr, cols, dims=dims, functions=functions)
    return out[..., 0] if expr.shape[1] == 1 else out


# ---------------------------------------------------------------------------------------
# central differences
# ---------------------------------------------------------------------------------------

def central_difference(f, x, eps: float = 1e-6, *, batch: int = 0) -> numpy.ndarray:
    """Central differences of ``f`` at ``x`` (float64; ``x`` is not modified):
    ``out[..., i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` for every entry i of x.

    Shape: ``f(x).shape + x.shape``. With ``batch = k`` the first k axes of x and of f(x) are
    independent samples (row b of f depends only on row b of x): entry i is moved in every
    sample at once and the shape is ``x.shape[:k] + f(x).shape[k:] + x.shape[k:]``."""
    x = numpy.array(x, dtype=numpy.float64, copy=True)
    lead, inner = x.shape[:batch], x.shape[batch:]
    cols = []
    for idx in numpy.ndindex(inner):
        at = (slice(None),) * batch + idx
        up, down = x.copy(), x.copy()
        up[at] += eps
        down[at] -= eps
        cols.append((numpy.asarray(f(up), dtype=numpy.float64)
                     - numpy.asarray(f(down), dtype=numpy.float64)) / (2 * eps))
    if not cols:
        return numpy.zeros(numpy.shape(f(x))[batch:] + x.shape)
    out = numpy.stack(cols, axis=-1)
    return out.reshape(out.shape[:-1] + inner) if lead or inner else out[..., 0]


def fd_jacobian(f, x, eps: float = 1e-6, *, batch: int = 0) -> numpy.ndarray:
    """Numerator-layout Jacobian of a vector function by :func:`central_difference`:
    ``(f.size, x.size)``, or ``(B, f_b.size, x_b.size)`` with ``batch = 1``."""
    J = central_difference(f, x, eps, batch=batch)
    x = numpy.asarray(x)
    lead = x.shape[:batch]
    n_in = int(numpy.prod(x.shape[batch:], dtype=int))
    return J.reshape(lead + (-1, n_in))


def fd_gradient(f, x, eps: float = 1e-6) -> numpy.ndarray:
    """Gradient of a scalar function by :func:`central_difference`, shaped like x."""
    return central_difference(lambda a: float(f(a)), x, eps)
