"""The Jacobian program of a kernel plan: the leads and chain diagonals of every block
d s_t / d s'_{t-1} as vectors to compute, some blocks built by the chain rule from others."""
from __future__ import annotations

import sympy

from derive.codegen.exprs import free_inputs
from derive.codegen.ir import FrozenMap, JacobianProgram
from derive.codegen.plan_backward import rewrite
from derive.core.algebra import VecPoly
from derive.core.linmap import LinMap
from derive.core.matrixstate import Factor
from derive.core.symbols import Var


def jacobian_program(cell, table) -> JacobianProgram:
    """Leads and chain diagonals of every block d s_t / d s'_{t-1} of ``cell``, as vectors in
    the forward step's named values (``table``: canon(expr) -> the Var naming it), in a
    frozen program.

    A block with dense terms (``diag(v) W``) is built from another state's block when that
    is cheaper, by the chain rule through the other state u of the same step:
    ``J_sr = diag(q) J_ur + R`` with ``q = d s_t/d u_t`` diagonal and the remainder
    ``R = J_sr - diag(q) J_ur`` computed exactly in the Hadamard-polynomial algebra (the
    LSTM's ``dh/dh_prev = diag(o tanh'(c)) dc/dh_prev + diag(tanh(c) sigma'(obar)) W_ho``:
    two dense products instead of four). Only blocks computed directly serve as sources."""
    chosen, via = _choose_blocks(cell)
    polys = [vp for lm in chosen.values() for t in lm.terms
             for vp in (t.lead, *(c for c in t.chain if isinstance(c, VecPoly)),
                        *(VecPoly.from_expr(c.a) for c in t.chain if isinstance(c, Factor)))]
    assigns, reads, value = _vectors(polys + [q for _, q in via.values()], table)

    def vec(c):
        """A chain item in computed values: a diagonal's vector, a matrix state's map over
        its computed argument (I (x) q^T with q computed), a parameter as it is."""
        if isinstance(c, Factor):
            return type(c)(value[VecPoly.from_expr(c.a)])
        return value[c] if isinstance(c, VecPoly) else c

    terms = FrozenMap(tuple((key, tuple((vec(t.lead), tuple(vec(c) for c in t.chain))
                                        for t in lm.terms)) for key, lm in chosen.items()))
    via = FrozenMap(tuple((k, (u, vec(q))) for k, (u, q) in via.items()))
    return JacobianProgram(free_inputs(assigns), assigns, tuple(s for s, _ in assigns),
                           terms, via, reads)


def _vectors(polys, table):
    """(assigns, reads, {VecPoly: value}): a fold over ``polys`` in order giving each a
    value, a rational when it is constant, else a symbol ``_L<k>`` assigned the vector in
    the forward step's named values (equal vectors share one)."""
    assigns, reads, value = (), frozenset(), FrozenMap()
    for vp in polys:
        if vp in value:
            continue
        if vp.is_zero():
            value = value.set(vp, sympy.Integer(0))
            continue
        if len(vp.terms) == 1 and vp.terms[0][0] == ():
            c = vp.terms[0][1]
            value = value.set(vp, sympy.Rational(c.numerator, c.denominator))
            continue
        e, more = rewrite(table, vp.to_expr())
        sym = next((sym for sym, old in assigns if old == e), None)
        if sym is None:
            sym = Var(f"_L{len(assigns)}", *e.shape)
            assigns += ((sym, e),)
        value, reads = value.set(vp, sym), reads | more
    return assigns, reads, value


def _dense(lm) -> int:
    """Number of terms of a LinMap that are dense (B, H, H) products, not diagonals."""
    return sum(1 for t in lm.terms if t.chain)


def _choose_blocks(cell):
    """({(s, r): LinMap of the terms to compute}, {(s, r): (u, q)} for blocks built by the
    chain rule J_sr = diag(q) J_ur + terms)."""
    direct = {(s, r): cell.jacobian_linmap(s, r) for s in cell.states for r in cell.states}
    chosen, via = {}, {}
    for (s, r), lm in direct.items():
        chosen[(s, r)] = lm
        for u in cell.states:
            src = direct[(u, r)]
            if u == s or _dense(src) == 0:
                continue
            d = cell.state_partial(s, u)
            if len(d.terms) != 1 or d.terms[0].chain:
                continue                      # not a diagonal d s_t / d u_t
            q = d.terms[0].lead
            rest = (lm + (LinMap.diagonal(q) @ src).scaled(-1)).simplified()
            if _dense(rest) + 1 < _dense(chosen[(s, r)]):
                chosen[(s, r)] = rest
                via[(s, r)] = (u, q)
    # a block whose source is itself built by the chain rule is built directly instead
    # (repeat: that only ever turns chain-rule blocks into direct ones)
    while any((u, r) in via for (s, r), (u, _) in via.items()):
        for (s, r), (u, _) in list(via.items()):
            if (u, r) in via:
                del via[(s, r)]
                chosen[(s, r)] = direct[(s, r)]
    return chosen, via
