"""The backward program of a kernel plan: each slot's adjoint, the derived BPTT step
rewritten in the forward step's named values, staged around the grouped products
``P_g = G_t W_stack``; every value it computes is a typed :mod:`~derive.codegen.ir` output."""
from __future__ import annotations

from dataclasses import replace

import sympy
from sympy import MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix

from derive.codegen.exprs import (PRIMITIVE_OF, KernelPlanError, add, canon, coeff_factors,
                                  free_inputs, is_vector, outer, rebuild, scalar_to_vector,
                                  scale, symbols_in)
from derive.codegen.ir import (Backward, FromBuffer, InputDelta, OuterLeft, OuterRight, PerStep,
                               PrevDelta, SlotAdjoint, Stage, VecGrad)
from derive.core.primitives import Elementwise
from derive.core.symbols import Cotangent, Input, Var

def attach_adjoints(cell, bw, groups) -> tuple:
    """The groups with each slot's adjoint set: the v of the term v u^T of dW (u = the
    slot's operand), summed over such terms; zero when dW has none."""
    slots = [s for g in groups for s in g.slots]
    adjoint = {}
    for pname, gexpr in bw.params.items():
        if cell.params[pname].shape[1] == 1:
            continue
        for term in (gexpr.args if isinstance(gexpr, MatAdd) else (gexpr,)):
            vu = outer(term)
            if vu is None:
                continue
            v, u = vu
            for s in slots:
                if s.weight == cell.params[pname] and canon(s.operand_expr) == canon(u):
                    old = adjoint.get(s.sym)
                    adjoint[s.sym] = v if old is None else add([old, v], v.shape)
    return tuple(replace(g, slots=tuple(
        replace(s, adjoint=adjoint.get(s.sym, ZeroMatrix(*s.sym.shape))) for s in g.slots))
        for g in groups)


class Rewriter:
    """Derived expressions in terms of the forward step's named values: a subexpression
    equal to a named value becomes its symbol (also when it matches only once its own
    arguments are named, as tanh(_e0)), and f'(u) becomes f's from_output form in y = f(u)
    when the forward step names y (sigma' = y (1 - y), tanh' = 1 - y^2)."""

    def __init__(self, table):
        self.table = table
        self.refs = set()

    def __call__(self, e):
        if isinstance(e, MatrixSymbol):
            if isinstance(e, Var):
                self.refs.add(e)
            return e
        if isinstance(e, (OneMatrix, ZeroMatrix)):
            return e
        if is_vector(e):
            v = self.table.get(canon(e))
            if v is not None:
                self.refs.add(v)
                return v
        if isinstance(e, Elementwise) and e.is_derivative:
            prim = PRIMITIVE_OF[type(e)]
            y = self.table.get(canon(prim(e.arg)))
            if y is None:
                # the forward pass may hold f(a) with the argument named: y = f(_e0)
                saved = set(self.refs)
                y = self.table.get(canon(prim(self(e.arg))))
                self.refs = saved
            y_s = sympy.Symbol("y")
            form = prim.from_output(y_s) if y is not None else None
            if form is not None:
                self.refs.add(y)
                return scalar_to_vector(form, y_s, y)
        saved = set(self.refs)
        out = rebuild(e, self)
        if is_vector(out) and out != e:
            # named in the forward pass only after its arguments were named: tanh(_e0)
            v = self.table.get(canon(out))
            if v is not None:
                self.refs = saved | {v}
                return v
        return out


def backward_program(cell, bw, groups, rewriter) -> Backward:
    """The frozen backward program of ``cell`` from its derived step ``bw`` and the forward
    groups (with adjoints attached); ``rewriter`` names forward values (it records which)."""
    b = _BackwardBuilder(cell, bw, groups, rewriter)
    return Backward(b.groups, tuple(b.stages), tuple(tuple(s.sym for s in slots)
                                                     for slots in b.buffers),
                    b.prev_out, b.vec_grads, b.mat_fallback,
                    tuple(g.index for g in b.dx_groups), b.dx_step)


class _BackwardBuilder:
    """Builds the BPTT step as stages (group products P_g = G_t W_stack, rewritten
    derivatives) in its own fields; the groups it is given are not changed."""

    def __init__(self, cell, bw, groups, rewriter):
        self.cell = cell
        # G buffers: groups with a nonzero slot adjoint; equal adjoint lists share one
        self.buffers, keys, new = [], {}, []
        for g in groups:
            if all(isinstance(s.adjoint, ZeroMatrix) for s in g.slots):
                new.append(g)
                continue
            key = tuple(canon(s.adjoint) for s in g.slots)
            if key not in keys:
                keys[key] = len(self.buffers)
                self.buffers.append(g.slots)
            new.append(replace(g, buffer=keys[key], psym=None if g.hoisted else
                               Cotangent(f"_P{g.index}", g.operand.shape[0], 1)))
        self.groups = tuple(new)
        slots = [s for g in self.groups for s in g.slots]

        def rw(e):
            return rewriter(self.use_products(e))

        assigns = [(d, rw(e)) for d, e in bw.assignments]
        outs = []                         # Output records, valued by expressions
        for b, entries in enumerate(self.buffers):
            for j, s in enumerate(entries):
                outs.append(SlotAdjoint(rw(s.adjoint), b, j))
        self.prev_out = {}
        for st in cell.states:
            e = rw(bw.prev_states[st])
            self.prev_out[st] = None if isinstance(e, ZeroMatrix) else True
            if self.prev_out[st]:
                outs.append(PrevDelta(e, st))
        # delta x_t: sum_k W_k^T v_k over an input group is one product G @ W_stack after
        # the loop, over all T * B rows; other terms (x used elementwise) are per step
        self.dx_groups, rest = self._input_products(bw.input)
        self.dx_step = rest is not None
        if self.dx_step:
            outs.append(InputDelta(rw(rest)))
        self.vec_grads, self.mat_fallback = {}, {}
        for pname, psym in cell.params.items():
            e = bw.params.get(pname)
            if e is None or isinstance(e, ZeroMatrix):
                continue
            if psym.shape[1] == 1:
                hit = self._find_in_buffers(e)
                if hit is not None:
                    self.vec_grads[pname] = FromBuffer(*hit)
                else:
                    outs.append(VecGrad(rw(e), pname))
                    self.vec_grads[pname] = PerStep()
                continue
            for n, term in enumerate(e.args if isinstance(e, MatAdd) else (e,)):
                vu = outer(term)
                if vu is None:
                    raise KernelPlanError(f"gradient term {term} of {pname} is not v u^T")
                v, u = vu
                if any(s.weight == psym and canon(s.operand_expr) == canon(u)
                       and not isinstance(s.adjoint, ZeroMatrix) for s in slots):
                    continue                      # a whole-sequence product of its G buffer
                outs.append(OuterLeft(rw(v), pname, n))
                outs.append(OuterRight(rw(u), pname, n))
                self.mat_fallback.setdefault(pname, []).append(n)
        self.stages = self._stage(assigns, outs)

    def _input_products(self, e):
        """(input groups whose whole W^T v sum is in e, the rest of e or None)."""
        terms = [] if isinstance(e, ZeroMatrix) else list(e.args if isinstance(e, MatAdd) else (e,))
        found_groups = []
        for g in self.groups:
            if not (g.hoisted and isinstance(g.operand, Input) and g.buffer is not None):
                continue
            found = _group_terms(terms, g)
            if found:
                found_groups.append(g)
                terms = [t for t in terms if t not in found]
        return found_groups, (add(terms, e.shape) if terms else None)

    def _find_in_buffers(self, e):
        k = canon(e)
        for b, entries in enumerate(self.buffers):
            for j, s in enumerate(entries):
                if canon(s.adjoint) == k:
                    return (b, j)
        return None

    def use_products(self, e):
        """Replace sum_k W_k^T v_k over a whole per-step group by the group's product P_g."""
        if isinstance(e, MatrixSymbol):
            return e
        if isinstance(e, (MatAdd, MatMul)):
            ts = list(e.args) if isinstance(e, MatAdd) else [e]
            hit = False
            for g in self.groups:
                found = _group_terms(ts, g) if g.psym is not None else None
                if found:
                    ts = [t for t in ts if t not in found] + [g.psym]
                    hit = True
            if hit:
                return add([self.use_products(t) for t in ts], e.shape)
        return rebuild(e, self.use_products)

    def _stage(self, assigns, outs):
        """Level every value (0: computable from what step t receives; a product P_g runs
        one level after all of its G entries), then cut stages."""
        expr_of = dict(assigns)
        out_syms = []
        aliases = []                      # outputs that are a value the driver holds
        for n, out in enumerate(outs):
            e = out.value
            if isinstance(e, MatrixSymbol) and e not in expr_of:
                aliases.append(out)
            elif isinstance(e, MatrixSymbol):
                out_syms.append(out)
            else:
                sym = Cotangent(f"_o{n}", *e.shape)
                expr_of[sym] = e
                assigns.append((sym, e))
                out_syms.append(replace(out, value=sym))
        g_entries = {}
        for out in out_syms:
            if isinstance(out, SlotAdjoint):
                g_entries.setdefault(out.buffer, []).append(out.value)
        psyms = {g.psym: g for g in self.groups if g.psym is not None}
        level = {}

        def lv(sym):
            if sym in level:
                return level[sym]
            if sym in psyms:
                g = psyms[sym]
                level[sym] = 1 + max([0] + [lv(o) for o in g_entries.get(g.buffer, [])])
            elif sym in expr_of:
                level[sym] = max([0] + [lv(s) for s in symbols_in(expr_of[sym])])
            else:
                return 0
            return level[sym]

        for out in aliases:
            if isinstance(out, SlotAdjoint):
                g_entries.setdefault(out.buffer, []).append(out.value)
        need = {out.value for out in out_syms + aliases}
        for d, e in reversed(assigns):
            if d in need:
                need |= symbols_in(e)
        # P_g needs its G entries
        changed = True
        while changed:
            changed = False
            for p, g in psyms.items():
                if p in need:
                    for o in g_entries.get(g.buffer, []):
                        if o not in need:
                            need.add(o)
                            need |= symbols_in(expr_of.get(o, o))
                            changed = True
            for d, e in reversed(assigns):
                if d in need and not symbols_in(e) <= need:
                    need |= symbols_in(e)
                    changed = True
        assigns = [(d, e) for d, e in assigns if d in need]
        for d, _ in assigns:
            lv(d)
        self.groups = tuple(replace(g, bstage=lv(g.psym) if g.psym in need else None)
                            for g in self.groups)
        nst = 1 + max([0] + [level[d] for d, _ in assigns] + [lv(a.value) for a in aliases]
                      + [g.bstage for g in self.groups if g.bstage is not None])
        stages = []
        for k in range(nst):
            mine = [(d, e) for d, e in assigns if level[d] == k]
            defined = {d for d, _ in mine}
            later = set()
            for d, e in assigns:
                if level[d] > k:
                    later |= symbols_in(e)
            outset = {out.value for out in out_syms}
            outputs = [d for d, _ in mine if d in later or d in outset]
            st = Stage(tuple(g for g in self.groups if g.bstage == k), free_inputs(mine),
                       tuple(mine), tuple(outputs),
                       outs=tuple(out for out in out_syms if out.value in defined),
                       aliases=tuple(out for out in aliases if lv(out.value) == k))
            stages.append(replace(st, lean=_without_input_gradient(st, later)))
        return stages


def _left_factor(t):
    """W for a term c W^T v (c rational, W a weight), else None."""
    _, mats = coeff_factors(t)
    if len(mats) == 2 and isinstance(mats[0], Transpose):
        return mats[0].arg
    return None


def _group_terms(terms, g):
    """The terms that together make sum_k W_k^T v_k over the group's slots (v_k the slot's
    adjoint, W_k its weight), or None. A slot's part is either every c W_k^T v term (when
    they sum to W_k^T v_k) or one term W_k^T v_k (when W_k also multiplies another operand)."""
    found = []
    for s in g.slots:
        if isinstance(s.adjoint, ZeroMatrix):
            continue
        mine = [t for t in terms if t not in found and _left_factor(t) == s.weight]
        key = canon(s.adjoint)
        if mine and canon(add([_right_part(t) for t in mine], s.adjoint.shape)) == key:
            found += mine
            continue
        one = next((t for t in mine if canon(_right_part(t)) == key), None)
        if one is None:
            return None
        found.append(one)
    return found or None


def _right_part(t):
    """c v for a term c W^T v."""
    c, mats = coeff_factors(t)
    return scale(c, mats[1])


def _without_input_gradient(st, later):
    """The stage without the per-step dL/dx_t terms and the values only they need (run when
    dL/dxs is not asked for); None when the stage computes no such term. ``later``: what
    later stages read."""
    dx = {out.value for out in st.outs if isinstance(out, InputDelta)}
    if not dx:
        return None
    need = {out.value for out in st.outs if not isinstance(out, InputDelta)} | (set(st.outputs) & later)
    for d, e in reversed(st.assigns):
        if d in need:
            need |= symbols_in(e)
    assigns = [(d, e) for d, e in st.assigns if d in need]
    return Stage(st.groups, free_inputs(assigns), tuple(assigns),
                 tuple(d for d in st.outputs if d in need))
