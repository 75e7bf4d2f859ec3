"""Symbolic proofs about the primitives and the derived Jacobians, each returned as a
:class:`Proof`: a claim, whether SymPy established it, and the derivation step by step.

* :func:`derivative_rule`: the registered ``f'`` of a primitive is SymPy's ``diff`` of ``f``,
  and its ``from_output`` form is ``f'`` written in ``y = f(x)``;
* :func:`sigmoid_prime_bounds`: ``0 < sigma' <= 1/4``, maximum only at 0, via the identity
  ``1/4 - sigma(1 - sigma) = (sigma - 1/2)^2``;
* :func:`tanh_prime_bounds`: ``0 < tanh' <= 1``, maximum only at 0;
* :func:`gates_in_unit_interval`: every gate of a cell lies in (0, 1);
* :func:`jacobian_norm_bound`: ``||dh_t/dh_{t-1}||_2 <= gamma ||W_hh||_2`` for a cell whose
  derived block is ``diag(phi'(a)) W``;
* :func:`lstm_direct_path`: ``dc_t/dc_{t-1} = diag(f_t)`` for the LSTM without peepholes;
* :func:`index_block` (in :mod:`verify.index_notation`, importable from here): a derived
  block in index notation for symbolic ``n``: entry (i, k) equals SymPy's ``diff`` of the
  index-notation forward pass w.r.t. ``s_prev[k]``.

SymPy does the algebra in every step; the text only states what was computed.
"""
from __future__ import annotations

import sympy
from sympy import DiagMatrix, HadamardProduct, MatAdd, MatMul, OneMatrix

from derive.core.primitives import Elementwise, Relu, Sigmoid, Tanh
from derive.core.symbols import Var

from .explicit import expand, entries_equal, normalize, scalar_equal  # noqa: F401
from .index_notation import (I_IDX, K_IDX, M_SYM, N_SYM, IndexNotation,  # noqa: F401
                             index_block, index_supported, strip_range)
from .proof import Proof

_x = sympy.Symbol("x", real=True)


def _same(a, b) -> bool:
    return sympy.cancel(sympy.together(normalize(a) - normalize(b))) == 0


# ---------------------------------------------------------------------------------------
# primitives
# ---------------------------------------------------------------------------------------

def derivative_rule(cls: type[Elementwise]) -> Proof:
    """``cls.derivative.scalar == diff(cls.scalar)`` and ``from_output(f(x)) == f'(x)``.

    ReLU: SymPy's ``diff(Max(x, 0))`` is ``Heaviside(x)`` (1/2 at 0); the registered
    ``relu'`` is ``Heaviside(x, 0)``. They agree for x != 0, the only points where relu is
    differentiable; the comparison drops the value at 0 (see :func:`verify.explicit.normalize`).
    """
    p = Proof(f"{cls.__name__}: the registered derivative is d/dx of {cls.scalar(_x)}")
    if cls.derivative is None:
        p.step(f"{cls.__name__} has no registered derivative", False)
        return p
    f = cls.scalar(_x)
    sympy_d = sympy.diff(f, _x)
    registered = cls.derivative.scalar(_x)
    p.step(f"SymPy: d/dx {f} = {sympy_d}")
    p.step(f"registered {cls.derivative.__name__}.scalar(x) = {registered}")
    note = " (for x != 0)" if sympy_d.has(sympy.Heaviside) else ""
    p.step(f"cancel(together(difference)) = 0{note}", _same(sympy_d, registered))
    y = sympy.Symbol("y", real=True)
    fo = cls.from_output(y)
    if fo is not None:
        p.step(f"from_output: f'(x) = {fo} with y = f(x); substituting y = {f} "
               f"gives the same function", _same(fo.subs(y, f), registered))
    return p


def sigmoid_derivative() -> Proof:
    """sigma'(x) = sigma(x)(1 - sigma(x)), for the registered SigmoidPrime."""
    p = derivative_rule(Sigmoid)
    p.claim = "sigma' = sigma (1 - sigma): " + p.claim
    return p


def sigmoid_prime_bounds() -> Proof:
    """0 < sigma'(x) <= 1/4 for real x, with sigma'(x) = 1/4 exactly at x = 0."""
    p = Proof("0 < sigma'(x) <= 1/4 for every real x, and sigma'(x) = 1/4 only at x = 0")
    s_expr = Sigmoid.scalar(_x)
    sp = Sigmoid.derivative.scalar(_x)
    p.step(f"sigma'(x) = sigma(1 - sigma) with sigma = {s_expr} (registered, proved by "
           f"derivative_rule)", bool(derivative_rule(Sigmoid)))
    e = sympy.exp(-_x)
    p.step(f"{e} > 0 for real x (SymPy: is_positive = {e.is_positive})", e.is_positive is True)
    p.step(f"sigma = {s_expr} > 0 (is_positive = {s_expr.is_positive})",
           s_expr.is_positive is True)
    one_minus = sympy.together(1 - s_expr)
    p.step(f"1 - sigma = {one_minus} > 0 (is_positive = {one_minus.is_positive}); so sigma is in "
           f"(0, 1) and sigma' = sigma (1 - sigma) > 0 as a product of positive factors",
           one_minus.is_positive is True)
    s = sympy.Symbol("s", real=True)
    gap = sympy.Rational(1, 4) - s * (1 - s)
    factored = sympy.factor(gap)
    p.step(f"1/4 - s(1 - s) factors as {factored} = (s - 1/2)^2 (SymPy factor/expand)",
           sympy.expand(factored - (s - sympy.Rational(1, 2)) ** 2) == 0)
    p.step("a square is >= 0, so sigma' <= 1/4, with equality iff sigma(x) = 1/2")
    roots = sympy.solve(sympy.Eq(s_expr, sympy.Rational(1, 2)), _x)
    p.step(f"sigma(x) = 1/2 has the real solutions {roots}", roots == [0])
    at0 = sympy.simplify(sp.subs(_x, 0))
    p.step(f"sigma'(0) = {at0}", at0 == sympy.Rational(1, 4))
    g = Sigmoid.gamma()
    p.step(f"Sigmoid.gamma() = {g} equals the proved maximum 1/4", g == sympy.Rational(1, 4))
    return p


def tanh_prime_bounds() -> Proof:
    """0 < tanh'(x) <= 1 for real x, with tanh'(x) = 1 exactly at x = 0."""
    p = Proof("0 < tanh'(x) <= 1 for every real x, and tanh'(x) = 1 only at x = 0")
    tp = Tanh.derivative.scalar(_x)
    p.step(f"tanh'(x) = {tp} (registered, proved by derivative_rule)",
           bool(derivative_rule(Tanh)))
    t_exp = sympy.tanh(_x).rewrite(sympy.exp)
    lo, hi = sympy.together(1 + t_exp), sympy.together(1 - t_exp)
    p.step(f"tanh(x) = {t_exp}; 1 + tanh = {lo} > 0 and 1 - tanh = {hi} > 0 "
           f"(is_positive: {lo.is_positive}, {hi.is_positive}), so tanh is in (-1, 1)",
           lo.is_positive is True and hi.is_positive is True)
    t = sympy.Symbol("t", real=True)
    prod = sympy.factor(tp.subs(sympy.tanh(_x), t))
    p.step(f"tanh' = {prod} in t = tanh(x): a product of the two positive factors, so tanh' > 0",
           sympy.expand(prod - (1 - t) * (1 + t)) == 0)
    gap = sympy.expand(1 - tp.subs(sympy.tanh(_x), t))
    p.step(f"1 - tanh' = {gap} >= 0, so tanh' <= 1 with equality iff tanh(x) = 0",
           gap == t ** 2)
    roots = sympy.solve(sympy.tanh(_x), _x)
    p.step(f"tanh(x) = 0 has the real solutions {roots}", roots == [0])
    at0 = tp.subs(_x, 0)
    p.step(f"tanh'(0) = {at0}", at0 == 1)
    g = Tanh.gamma()
    p.step(f"Tanh.gamma() = {g} equals the proved maximum 1", g == 1)
    return p


def relu_prime_bounds() -> Proof:
    """relu'(x) is 0 or 1, so 0 <= relu' <= 1 = gamma."""
    p = Proof("relu'(x) is in {0, 1} for every real x, so sup relu' = 1")
    pos, neg = sympy.Symbol("x", positive=True), sympy.Symbol("x", negative=True)
    d = Relu.derivative
    vals = {d.scalar(pos), d.scalar(neg), d.scalar(sympy.S.Zero)}
    p.step(f"relu'(x > 0) = {d.scalar(pos)}, relu'(x < 0) = {d.scalar(neg)}, "
           f"relu'(0) = {d.scalar(sympy.S.Zero)}", vals <= {0, 1})
    p.step(f"Relu.gamma() = {Relu.gamma()}", Relu.gamma() == 1)
    return p


def derivative_bounds(cls: type[Elementwise]) -> Proof:
    """The bound proof of a primitive's derivative (sigmoid, tanh, relu)."""
    table = {Sigmoid: sigmoid_prime_bounds, Tanh: tanh_prime_bounds, Relu: relu_prime_bounds}
    if cls not in table:
        p = Proof(f"bounds of {cls.__name__}'")
        p.step(f"no bound proof for {cls.__name__}", False)
        return p
    return table[cls]()


def sigmoid_in_unit_interval() -> Proof:
    """sigma(z) is in (0, 1) for every real z."""
    p = Proof("sigma(z) is in (0, 1) for every real z")
    s_expr = Sigmoid.scalar(_x)
    p.step(f"sigma = {s_expr} > 0 (is_positive = {s_expr.is_positive})",
           s_expr.is_positive is True)
    one_minus = sympy.together(1 - s_expr)
    p.step(f"1 - sigma = {one_minus} > 0 (is_positive = {one_minus.is_positive})",
           one_minus.is_positive is True)
    return p


# ---------------------------------------------------------------------------------------
# cells
# ---------------------------------------------------------------------------------------

def gate_names(cell) -> list:
    """The gates: equations whose value is provably in (0, 1)^H (``sigmoid(...)``, or ``1 - g``
    for such a ``g``, the coupled forget gate of CIFG) and that multiply another quantity
    entrywise (so the logistic hidden state of ``rnn_sigmoid`` is not a gate)."""
    unit: list = []
    for eq in cell.equations:
        rhs = eq.rhs
        if isinstance(rhs, Sigmoid):
            unit.append(eq.lhs.name)
        elif isinstance(rhs, MatAdd) and len(rhs.args) == 2:
            one = [a for a in rhs.args if isinstance(a, OneMatrix)]
            neg = [a for a in rhs.args if isinstance(a, MatMul)
                   and a.args[0] == -1 and len(a.args) == 2 and isinstance(a.args[1], Var)
                   and a.args[1].name in unit]
            if one and neg:
                unit.append(eq.lhs.name)
    factors = set()
    for eq in cell.equations:
        for had in eq.rhs.atoms(HadamardProduct) | ({eq.rhs} if isinstance(eq.rhs, HadamardProduct) else set()):
            factors |= {a.name for a in had.args if isinstance(a, Var)}
            factors |= {a.name for arg in had.args for a in arg.atoms(Var)}
    return [g for g in unit if g in factors]


def gates_in_unit_interval(cell) -> Proof:
    """Every gate of the cell is in (0, 1), entrywise."""
    gates = gate_names(cell)
    p = Proof(f"{cell.name}: the gates {', '.join(gates) or '(none)'} are in (0, 1)^H")
    base = sigmoid_in_unit_interval()
    p.step("sigma(z) in (0, 1) for real z: " + "; ".join(base.steps), bool(base))
    for eq in cell.equations:
        if eq.lhs.name not in gates:
            continue
        if isinstance(eq.rhs, Sigmoid):
            p.step(f"{eq.lhs.name} = sigma({eq.rhs.arg}) entrywise, so {eq.lhs.name} in (0, 1)^H")
        else:
            p.step(f"{eq.lhs.name} = {eq.rhs}: 1 minus a gate in (0, 1) is in (0, 1)")
    return p


def jacobian_norm_bound(cell, state: str = "h") -> Proof:
    """``||d s_t / d s_{t-1}||_2 <= gamma ||W||_2`` from the derived form ``diag(phi'(a)) W``."""
    block = cell.jacobian(state, state)
    p = Proof(f"{cell.name}: ||d{state}_t/d{state}_(t-1)||_2 <= gamma ||W||_2")
    form = cell.elman_form(state)
    if not p.step(f"derived block d{state}_t/d{state}_(t-1) = {block} is diag(phi'(u)) W",
                  form is not None):
        return p
    F, u, W, prim = type(form.derivative), form.preactivation, form.matrix, form.primitive
    gamma = prim.gamma()
    p.claim = f"{cell.name}: ||d{state}_t/d{state}_(t-1)||_2 <= {gamma} ||{W.name}||_2"
    p.step(f"phi = {prim.__name__}, phi' = {F.__name__}, W = {W.name}, u = {u}")
    bounds = derivative_bounds(prim)
    p.step(f"0 <= phi'(x) <= gamma = {gamma} for real x ({bounds.claim})", bool(bounds))
    ok = True
    for n in range(1, 5):
        v = sympy.symbols(f"v0:{n}", real=True)
        Dm = sympy.diag(*v)
        ok &= (Dm.T * Dm).eigenvals() == _multiset([vi ** 2 for vi in v])
    p.step("||diag(v)||_2 = max_i |v_i|: diag(v)^T diag(v) = diag(v_i^2) has the eigenvalues "
           "v_i^2 (SymPy eigenvals, n = 1..4; in general a diagonal matrix's singular values "
           "are |v_i|)", ok)
    p.step(f"so ||diag(phi'(u))||_2 = max_i |phi'(u_i)| <= {gamma}")
    p.step(f"submultiplicativity of the spectral norm: ||diag(phi'(u)) {W.name}||_2 <= "
           f"||diag(phi'(u))||_2 ||{W.name}||_2 <= {gamma} ||{W.name}||_2")
    return p


def elman_cells() -> list:
    """Built-in cells whose derived dh_t/dh_(t-1) is a single diag(phi'(a)) W term."""
    import derive
    out = []
    for name in derive.cells():
        cell = derive.cell(name)
        if cell.states == ("h",) and cell.elman_form() is not None:
            out.append(name)
    return out


def norm_bound(cells=None) -> Proof:
    """:func:`jacobian_norm_bound` for every Elman-type cell (default: all built-in ones)."""
    import derive
    names = elman_cells() if cells is None else list(cells)
    p = Proof("||dh_t/dh_(t-1)||_2 <= gamma ||W_hh||_2 for " + ", ".join(names))
    p.step("cells found", bool(names))
    for name in names:
        sub = jacobian_norm_bound(derive.cell(name))
        p.step(sub.claim + ": " + " / ".join(sub.steps), bool(sub))
    return p


def chain_bound(cells=None, n: int = 2) -> Proof:
    """||dh_t/dh_k||_2 <= (gamma ||W_hh||_2)^(t-k) for the Elman-type cells.

    The chain rule gives dh_t/dh_k = J_t J_(t-1) ... J_(k+1) (numerator layout, ordered);
    checked here with SymPy on an explicit two-step expansion (H = n). Submultiplicativity
    and the one-step bound then give the power."""
    import derive
    names = elman_cells() if cells is None else list(cells)
    p = Proof("||dh_t/dh_k||_2 <= (gamma ||W_hh||_2)^(t-k) for " + ", ".join(names))
    p.step("cells found", bool(names))
    for name in names:
        cell = derive.cell(name)
        one = jacobian_norm_bound(cell)
        p.step(one.claim, bool(one))
        ex = expand(name, n, 2)
        h1 = ex.values["h"]
        x2 = sympy.Matrix([sympy.Symbol(f"x2[{j}]", real=True) for j in range(2)])
        h_prev = ex.leaves[cell.prev["h"]]
        step2 = {a: b for a, b in zip(h_prev, h1)}
        step2.update({a: b for a, b in zip(ex.leaves[cell.input], x2)})
        h2 = h1.xreplace(step2)
        direct = sympy.Matrix(h2).jacobian(list(h_prev))
        J1 = ex.oracle_jacobian("h", "h")
        J2 = J1.xreplace(step2)
        p.step(f"{name}, n = {n}: SymPy jacobian of h_2(h_1(h_0)) w.r.t. h_0 equals J_2 J_1 "
               f"(the ordered product, later step on the left)",
               not entries_equal(direct, J2 * J1))
    p.step("||J_t ... J_(k+1)||_2 <= ||J_t||_2 ... ||J_(k+1)||_2 <= (gamma ||W_hh||_2)^(t-k) "
           "by submultiplicativity and the one-step bound")
    return p


def _multiset(items):
    out: dict = {}
    for it in items:
        out[it] = out.get(it, 0) + 1
    return out


def lstm_direct_path(cell_name: str = "lstm", sizes=(1, 2, 3)) -> Proof:
    """dc_t/dc_{t-1} = diag(f_t) for an LSTM without peepholes: derived form and explicit oracle."""
    import derive
    cell = derive.cell(cell_name)
    p = Proof(f"{cell_name}: dc_t/dc_(t-1) = diag(f_t) (no peepholes; h_(t-1) is the other state)")
    lin = cell.jacobian_linmap("c", "c")
    expr = lin.to_expr()
    f = cell.symbol("f")
    p.step(f"derived: dc_t/dc_(t-1) = {expr}", expr == DiagMatrix(f))
    for n in sizes:
        ex = expand(cell_name, n, 2)
        oracle = ex.oracle_jacobian("c", "c")
        want = sympy.diag(*ex.values["f"])
        p.step(f"n = {n}: SymPy Matrix.jacobian of the explicit c_t w.r.t. c_(t-1) equals "
               f"diag(f_t)", not entries_equal(oracle, want))
    return p

