"""Explicit n x n expansion of a cell: the independent oracle for every derived result.

For a hidden size ``H = n`` and input size ``D = m`` every leaf of a cell (parameter, input
``x``, previous state ``s_prev``, incoming adjoint ``Delta_s``) is replaced by a matrix of
scalar SymPy symbols. The cell's equations are then evaluated with SymPy's own machinery
(``xreplace``, then node by node ``doit()`` / ``as_explicit()``, see :func:`evaluate`; the
elementwise nodes evaluate through their ``scalar`` definitions), which gives every new
state as explicit scalar expressions of those symbols.

The oracle derivatives use nothing of the engine:

* Jacobians: ``Matrix.jacobian`` of the explicit ``s_t`` with respect to the explicit
  symbols of ``s'_{t-1}`` (or ``x``, or a vector parameter);
* vector-Jacobian products: with ``L = sum_s Delta_s . s_t`` (the incoming adjoints are
  symbol vectors), ``delta s'_{t-1} = sum_s J_{s s'}^T Delta_s``, ``delta x = sum_s
  J_{s x}^T Delta_s`` and ``delta theta[i, j] = dL / d theta[i, j]`` by scalar ``diff``.

The engine's derived expressions (``cell.jacobian``, ``cell.backward()``) are expanded the
same way: their ``Var`` symbols take the explicit forward values, their ``Cotangent`` symbols
the explicit values of the earlier assignments. Two explicit matrices are equal when every
entry is proved equal by :func:`scalar_equal`: structurally, or as rational functions with
every transcendental node (``exp``/``tanh``/``Heaviside`` of an argument) taken as an
independent indeterminate, or, failing both, by ``cancel(together(a - b)) == 0``.
(``cancel(together(a - b))`` on the raw entries alone is exact too, but took 23 s for the
lstm_peephole n = 4 dh/dh block and over 100 s for lstm_peephole_full at n = 2; with the
transcendental nodes named it takes well under a second.)

ReLU: SymPy differentiates ``Max(z, 0)`` to ``Heaviside(z)`` (value 1/2 at 0) while the
engine's ``relu'`` is ``Heaviside(z, 0)`` (PyTorch's subgradient). The comparison is made
under the assumption that no pre-activation is exactly 0 (the set where they differ has
measure zero, and there ``relu`` has no derivative): both sides are rewritten with
``Heaviside(z, H0) -> Heaviside(z)`` before subtracting (:func:`normalize`).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import sympy
from sympy import HadamardProduct, ImmutableMatrix, MatAdd, MatMul, MatrixSymbol, Transpose
from sympy.matrices.expressions import MatrixExpr

from derive.core.reduction import DimSize
from derive.core.symbols import DIMS, Incoming


def symbol_matrix(name: str, rows: int, cols: int) -> ImmutableMatrix:
    """A rows x cols matrix of real scalar symbols ``name[i,j]`` (``name[i]`` for vectors)."""
    if cols == 1:
        return ImmutableMatrix(rows, 1, [sympy.Symbol(f"{name}[{i}]", real=True)
                                         for i in range(rows)])
    return ImmutableMatrix(rows, cols, [sympy.Symbol(f"{name}[{i},{j}]", real=True)
                                        for i in range(rows) for j in range(cols)])


def normalize(e):
    """Drop the value-at-0 argument of every Heaviside (assumes nonzero pre-activations)."""
    if not e.has(sympy.Heaviside):
        return e
    return e.replace(lambda a: isinstance(a, sympy.Heaviside) and len(a.args) > 1,
                     lambda a: sympy.Heaviside(a.args[0]))


def abstract_atoms(e, table: dict):
    """Rewrite e as a rational function of fresh indeterminates, one per transcendental node.

    * ``exp(X)`` becomes ``(1 - S)/S`` and ``(1 + exp(X))**k`` becomes ``S**(-k)``, where
      ``S`` stands for ``1/(1 + exp(X))`` (for ``X = -z`` that is ``sigma(z)``): an exact
      change of variables, so sigmoids and their derivatives become polynomials in ``S``;
    * every other non-rational node (``tanh(..)``, ``Heaviside(..)``, ``Max(..)``) becomes
      one indeterminate.

    Structurally equal nodes share their indeterminate (``table``); arguments are never
    expanded. An identity between the results holds for independent indeterminates, hence
    also for the original expressions.
    """
    if e.is_Atom:
        return e
    if isinstance(e, sympy.Pow) and e.exp.is_Integer:
        base = e.base
        if (isinstance(base, sympy.Add) and len(base.args) == 2 and sympy.S.One in base.args):
            other = base.args[0] if base.args[1] == 1 else base.args[1]
            if isinstance(other, sympy.exp):
                return _sig(other, table) ** (-e.exp)
        return sympy.Pow(abstract_atoms(base, table), e.exp)
    if isinstance(e, (sympy.Add, sympy.Mul)):
        return e.func(*[abstract_atoms(a, table) for a in e.args])
    if isinstance(e, sympy.exp):
        S = _sig(e, table)
        return (1 - S) / S
    if e not in table:
        table[e] = sympy.Dummy(f"A{len(table)}")
    return table[e]


def _sig(exp_node, table):
    key = ("1/(1+exp)", exp_node)
    if key not in table:
        table[key] = sympy.Dummy(f"S{len(table)}")
    return table[key]


def scalar_equal(a, b, fallback: bool = True) -> bool:
    """Proof that the scalar expressions a and b are equal.

    1. structurally equal; or
    2. equal as rational functions of the indeterminates of :func:`abstract_atoms`: the
       numerator of ``together(A - B)`` expands to 0 (sound: an identity in independent
       indeterminates stays one under any substitution; fast, because the nested arguments
       of exp/tanh are never expanded and sigmoids become polynomials); or
    3. ``cancel(together(a - b)) == 0`` on the expressions themselves (catches identities
       between different transcendental nodes; slow, reached only when 2. fails and
       :func:`differ_at_a_point` finds no point where a and b differ); or
    4. where square roots occur, ``simplify(a - b) == 0`` (``sqrt((1 - e)(1 + e))`` against
       ``sqrt(1 - e^2)``, which 2. and 3. treat as different nodes; the slowest).
    """
    a, b = normalize(sympy.sympify(a)), normalize(sympy.sympify(b))
    if a == b:
        return True
    if _rational_identity(a, b):
        return True
    if not fallback or differ_at_a_point(a, b):
        return False
    if sympy.cancel(sympy.together(a - b)) == 0:
        return True
    return (_has_root(a) or _has_root(b)) and sympy.simplify(a - b) == 0


def _rational_identity(a, b) -> bool:
    table: dict = {}
    diff = abstract_atoms(a, table) - abstract_atoms(b, table)
    return sympy.expand(sympy.together(diff).as_numer_denom()[0]) == 0


def _has_root(e) -> bool:
    return any(p.exp.is_Rational and not p.exp.is_Integer for p in e.atoms(sympy.Pow))


def differ_at_a_point(a, b, digits: int = 30) -> bool:
    """True when a and b evaluate, at one point with rational coordinates, to values that
    differ by more than 1e-12 (computed to ``digits`` significant digits): a witness that
    they are different functions. False when they agree there or cannot be evaluated
    (symbolic indices, sums with symbolic bounds)."""
    syms = sorted((a - b).free_symbols, key=str)
    point = {s: sympy.Rational(zlib.crc32(str(s).encode()) % 1999 - 999, 797) for s in syms}
    try:
        va = sympy.N(a.xreplace(point), digits)
        vb = sympy.N(b.xreplace(point), digits)
    except (TypeError, ValueError, ZeroDivisionError):
        return False
    if not (va.is_number and vb.is_number) or va.has(sympy.nan, sympy.zoo):
        return False
    return abs(va - vb) > sympy.Float("1e-12")


def entries_equal(A, B):
    """[] when the explicit matrices are equal entry by entry, else [(i, j, a, b), ...]."""
    A, B = ImmutableMatrix(A), ImmutableMatrix(B)
    if A.shape != B.shape:
        raise ValueError(f"shape mismatch: {A.shape} vs {B.shape}")
    return [(i, j, A[i, j], B[i, j]) for i in range(A.rows) for j in range(A.cols)
            if not scalar_equal(A[i, j], B[i, j])]


def evaluate(e, memo=None) -> ImmutableMatrix:
    """An explicit matrix from a matrix expression whose leaves are explicit matrices,
    bottom up: each node is rebuilt over its evaluated children and evaluated by SymPy
    (``doit()`` for products, sums, transposes; ``as_explicit()``, i.e. the nodes' own
    ``_entry``, for Hadamard products, ``DiagMatrix`` and the elementwise functions)."""
    memo = {} if memo is None else memo
    if isinstance(e, ImmutableMatrix):
        return e
    if e in memo:
        return memo[e]
    if not e.args or not any(isinstance(a, MatrixExpr) for a in e.args):
        out = ImmutableMatrix(e.as_explicit())      # Identity, ZeroMatrix, OneMatrix
    else:
        args = [evaluate(a, memo) if isinstance(a, MatrixExpr) else a for a in e.args]
        if isinstance(e, (MatMul, MatAdd, HadamardProduct)):
            node = e.func(*args, evaluate=False)
        else:
            node = e.func(*args)
        if isinstance(node, (MatMul, MatAdd, Transpose)):
            out = ImmutableMatrix(node.doit())
        else:
            out = ImmutableMatrix(node.as_explicit())
    memo[e] = out
    return out


@dataclass
class Explicit:
    """A cell expanded at H = n, D = m.

    ``leaves``: every cell symbol (parameters, readout parameters, x, s_prev, Delta_s) ->
    its symbol matrix; ``values``: every equation's name -> its explicit value at step t.
    """
    cell: object
    n: int
    m: int
    leaves: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    dims: dict = field(default_factory=dict)
    _adjoints: dict | None = None

    # -- building ----------------------------------------------------------------------
    @classmethod
    def build(cls, cell, n: int, m: int) -> "Explicit":
        ex = cls(cell, n, m)
        ex.dims = dims = {DIMS["H"]: n, DIMS["D"]: m}
        symbols = [cell.input, *cell.prev.values(), *cell.params.values(),
                   *cell.readout_params.values()]
        symbols += [Incoming(f"Delta_{s}", *cell.state_shapes[s]) for s in cell.states]
        for sym in symbols:
            rows, cols = (int(sympy.sympify(d).xreplace(dims)) for d in sym.shape)
            ex.leaves[sym] = symbol_matrix(sym.name, rows, cols)
        for eq in cell.equations + cell.readout:
            ex.values[eq.lhs.name] = ex.explicit(eq.rhs)
        return ex

    def explicit(self, expr, extra=None) -> ImmutableMatrix:
        """The explicit matrix of a cell expression: leaves, equation variables and the
        adjoints given in ``extra`` ({Cotangent: matrix}) replaced by their explicit values."""
        by_name = {sym.name: mat for sym, mat in self.leaves.items()}
        by_name.update(self.values)
        if extra:
            by_name.update({k.name: v for k, v in extra.items()})
        sub = {}
        for s in expr.atoms(MatrixSymbol):
            if isinstance(s, DimSize):                # a dimension's size: its number
                sub[s] = ImmutableMatrix([[int(sympy.sympify(s.dim).xreplace(self.dims))]])
                continue
            if s.name not in by_name:
                raise KeyError(f"cell {self.cell.name!r}: no explicit value for symbol {s.name!r}")
            sub[s] = by_name[s.name]
        sub.update(self.dims)
        return evaluate(expr.xreplace(sub))

    def symbols_of(self, name: str) -> list:
        """The flat list of scalar symbols of a leaf (``"x"``, ``"h_prev"``, a parameter)."""
        for sym, mat in self.leaves.items():
            if sym.name == name:
                return list(mat)
        raise KeyError(f"cell {self.cell.name!r}: no leaf {name!r}")

    def prev_symbols(self, state: str) -> list:
        return self.symbols_of(self.cell.prev[state].name)

    # -- oracles -----------------------------------------------------------------------
    def _wrt_symbols(self, wrt: str) -> list:
        if wrt in self.cell.prev:
            return self.prev_symbols(wrt)
        return self.symbols_of(wrt)

    def oracle_jacobian(self, of: str, wrt: str) -> ImmutableMatrix:
        """SymPy's ``Matrix.jacobian`` of the explicit ``of`` w.r.t. the explicit ``wrt``
        (a state name meaning its value at t-1, ``"x"``, or a vector parameter)."""
        return ImmutableMatrix(sympy.Matrix(self.values[of]).jacobian(self._wrt_symbols(wrt)))

    def loss(self):
        """L = sum_s Delta_s . s_t, the scalar whose gradient a backward step computes."""
        total = sympy.S.Zero
        for s in self.cell.states:
            delta = self.leaves[Incoming(f"Delta_{s}", *self.cell.state_shapes[s])]
            total += sum(d * v for d, v in zip(delta, self.values[s]))
        return total

    def oracle_vjp(self, wrt: str) -> ImmutableMatrix:
        """Gradient of L = sum_s Delta_s . s_t w.r.t. a previous state, ``x`` or a parameter.

        Previous states and ``x``: ``sum_s J_{s,wrt}^T Delta_s`` with the oracle Jacobians.
        Parameters: ``dL/dtheta[i, j]`` by scalar differentiation, shaped like theta.
        """
        if wrt in self.cell.prev or wrt == "x":
            acc = None
            for s in self.cell.states:
                delta = self.leaves[Incoming(f"Delta_{s}", *self.cell.state_shapes[s])]
                term = self.oracle_jacobian(s, wrt).T * delta
                acc = term if acc is None else acc + term
            return ImmutableMatrix(acc)
        param = self.cell.params[wrt]
        mat = self.leaves[param]
        L = self.loss()
        return ImmutableMatrix(mat.rows, mat.cols, [sympy.diff(L, v) for v in mat])

    # -- the engine's results, expanded ----------------------------------------------
    def derived_jacobian(self, of: str, wrt: str) -> ImmutableMatrix:
        return self.explicit(self.cell.jacobian(of, wrt))

    def adjoint_values(self) -> dict:
        """Cotangent name -> explicit value, evaluating the backward assignments in order."""
        if self._adjoints is None:
            vals: dict = {}
            for delta, expr in self.cell.backward().assignments:
                vals[delta] = self.explicit(expr, extra=vals)
            self._adjoints = vals
        return self._adjoints

    def derived_backward(self) -> dict:
        """What the engine's backward step passes back, explicit: {name: matrix} with names
        ``s_prev`` for previous states, ``x`` and the parameter names."""
        bw = self.cell.backward()
        adj = self.adjoint_values()
        out = {self.cell.prev[s].name: self.explicit(e, extra=adj)
               for s, e in bw.prev_states.items()}
        out["x"] = self.explicit(bw.input, extra=adj)
        for p, e in bw.params.items():
            out[p] = self.explicit(e, extra=adj)
        return out


@lru_cache(maxsize=None)
def expand(name_or_cell, n: int, m: int | None = None) -> Explicit:
    """The explicit expansion of a cell (by name or object) at H = n, D = m (default m = n);
    cached, so test modules share the work."""
    import derive
    cell = derive.cell(name_or_cell) if isinstance(name_or_cell, str) else name_or_cell
    return Explicit.build(cell, n, n if m is None else m)
