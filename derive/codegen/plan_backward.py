"""The backward program of a kernel plan: each slot's adjoint, the derived BPTT step
rewritten in the forward step's named values, staged around the grouped products
``P_g = G_t W_stack``; every value it computes is a typed :mod:`~derive.codegen.ir` output.
It is built by :data:`BACKWARD_PASSES`, named passes over a frozen :class:`BackwardDraft`
(``allocate_buffers``, ``collect_deltas``, ``collect_input_gradient``,
``collect_param_gradients``, ``name_forward_values``, ``drop_zero_deltas``,
``stage_backward``); :func:`rewrite` is pure and returns the forward values it reads."""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache, reduce

import sympy
from sympy import MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix

from derive.codegen.exprs import (PRIMITIVE_OF, KernelPlanError, add, canon, coeff_factors,
                                  fold_children, free_inputs, is_vector, outer, rebuild,
                                  scalar_to_vector, scale, symbols_in)
from derive.codegen.ir import (Backward, FromBuffer, FrozenMap, InputDelta, OuterLeft,
                               OuterRight, PerStep, PrevDelta, SlotAdjoint, Stage, VecGrad)
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


def rewrite(table, e):
    """(``e`` in the forward step's named values, the forward Vars it reads): a subexpression
    equal to a named value becomes its symbol (also when it matches only once its own
    arguments are named, as tanh(_e0)), and f'(u) becomes f's from_output form in y = f(u)
    when the forward step names y (sigma' = y (1 - y), tanh' = 1 - y^2)."""
    if isinstance(e, MatrixSymbol):
        return e, (frozenset((e,)) if isinstance(e, Var) else frozenset())
    if isinstance(e, (OneMatrix, ZeroMatrix)):
        return e, frozenset()
    if is_vector(e):
        v = table.get(canon(e))
        if v is not None:
            return v, frozenset((v,))
    if isinstance(e, Elementwise) and e.is_derivative:
        prim = PRIMITIVE_OF[type(e)]
        y = table.get(canon(prim(e.arg)))
        if y is None:
            # the forward pass may hold f(a) with the argument named: y = f(_e0)
            y = table.get(canon(prim(rewrite(table, e.arg)[0])))
        y_s = sympy.Symbol("y")
        form = prim.from_output(y_s) if y is not None else None
        if form is not None:
            return scalar_to_vector(form, y_s, y), frozenset((y,))
    reads, out = fold_children(frozenset(), e, lambda r, a: _reading(r, rewrite(table, a)))
    if is_vector(out) and out != e:
        # named in the forward pass only after its arguments were named: tanh(_e0)
        v = table.get(canon(out))
        if v is not None:
            return v, frozenset((v,))
    return out, reads


def _reading(reads, rewritten):
    """(reads and what ``rewritten`` reads, its expression): one step of the children fold."""
    expr, more = rewritten
    return reads | more, expr


@dataclass(frozen=True)
class BackwardDraft:
    """The backward program while :data:`BACKWARD_PASSES` build it: each pass reads some
    fields and returns a new draft with more set (``dataclasses.replace``)."""
    cell: object
    bw: object                  # the derived BPTT step (Cell.backward())
    table: FrozenMap            # canon(expr) -> the forward Var naming it
    groups: tuple               # the forward groups, adjoints attached
    buffers: tuple = ()         # G buffers: the slots of each, in layout order
    assigns: tuple = ()         # ((Cotangent, expr), ...) the derived step, in order
    outs: tuple = ()            # Output records, valued by expressions
    prev_out: FrozenMap = FrozenMap()
    vec_grads: FrozenMap = FrozenMap()
    mat_fallback: FrozenMap = FrozenMap()
    dx_groups: tuple = ()
    dx_step: bool = False
    reads: frozenset = frozenset()  # forward values the program reads
    stages: tuple = ()


def allocate_buffers(b: BackwardDraft) -> BackwardDraft:
    """Sets ``buffers`` and each group's ``buffer`` and ``psym``: a group with a nonzero slot
    adjoint gets a G buffer (equal adjoint lists share one), a per-step one a product P_g."""
    buffers, keys, groups = (), FrozenMap(), ()
    for g in b.groups:
        if all(isinstance(s.adjoint, ZeroMatrix) for s in g.slots):
            groups += (g,)
            continue
        key = tuple(canon(s.adjoint) for s in g.slots)
        if key not in keys:
            keys, buffers = keys.set(key, len(buffers)), buffers + (g.slots,)
        groups += (replace(g, buffer=keys[key], psym=None if g.hoisted else
                           Cotangent(f"_P{g.index}", g.operand.shape[0], 1)),)
    return replace(b, groups=groups, buffers=buffers)


def collect_deltas(b: BackwardDraft) -> BackwardDraft:
    """Sets ``assigns`` and appends the slot adjoints and every dL/ds_{t-1} to ``outs``,
    sum_k W_k^T v_k over a per-step group replaced by its product P_g."""
    def prod(e):
        return use_products(b.groups, e)
    outs = tuple(SlotAdjoint(prod(s.adjoint), k, j)
                 for k, entries in enumerate(b.buffers) for j, s in enumerate(entries))
    outs += tuple(PrevDelta(prod(b.bw.prev_states[st]), st) for st in b.cell.states)
    return replace(b, assigns=tuple((d, prod(e)) for d, e in b.bw.assignments),
                   outs=b.outs + outs)


def collect_input_gradient(b: BackwardDraft) -> BackwardDraft:
    """Sets ``dx_groups`` and ``dx_step``: sum_k W_k^T v_k over an input group is one
    product G @ W_stack after the loop, over all T * B rows; other terms of delta x_t (x
    used elementwise) are an :class:`InputDelta` output, per step."""
    e = b.bw.input
    terms = () if isinstance(e, ZeroMatrix) else tuple(e.args if isinstance(e, MatAdd) else (e,))
    found_groups = ()
    for g in b.groups:
        if not (g.hoisted and isinstance(g.operand, Input) and g.buffer is not None):
            continue
        found = _group_terms(terms, g)
        if found:
            found_groups += (g.index,)
            terms = tuple(t for t in terms if t not in found)
    rest = (InputDelta(use_products(b.groups, add(list(terms), e.shape))),) if terms else ()
    return replace(b, dx_groups=found_groups, dx_step=bool(terms), outs=b.outs + rest)


def collect_param_gradients(b: BackwardDraft) -> BackwardDraft:
    """Sets ``vec_grads`` and ``mat_fallback`` and appends the per-step gradient outputs: a
    vector gradient equal to a G buffer row is summed from it, else accumulated per step; a
    term v u^T of dW not given by a whole-sequence product of a G buffer, per step."""
    slots = [s for g in b.groups for s in g.slots]
    outs, vec_grads, mat_fallback = (), FrozenMap(), FrozenMap()
    for pname, psym in b.cell.params.items():
        e = b.bw.params.get(pname)
        if e is None or isinstance(e, ZeroMatrix):
            continue
        if psym.shape[1] == 1:
            hit = _find_in_buffers(b.buffers, e)
            if hit is None:
                outs += (VecGrad(use_products(b.groups, e), pname),)
            vec_grads = vec_grads.set(pname, PerStep() if hit is None else FromBuffer(*hit))
            continue
        for n, term in enumerate(e.args if isinstance(e, MatAdd) else (e,)):
            vu = outer(term)
            if vu is None:
                raise KernelPlanError(f"gradient term {term} of {pname} is not v u^T")
            v, u = vu
            if any(s.weight == psym and canon(s.operand_expr) == canon(u)
                   and not isinstance(s.adjoint, ZeroMatrix) for s in slots):
                continue                      # a whole-sequence product of its G buffer
            outs += (OuterLeft(use_products(b.groups, v), pname, n),
                     OuterRight(use_products(b.groups, u), pname, n))
            mat_fallback = mat_fallback.set(pname, mat_fallback.get(pname, ()) + (n,))
    return replace(b, outs=b.outs + outs, vec_grads=vec_grads, mat_fallback=mat_fallback)


def name_forward_values(b: BackwardDraft) -> BackwardDraft:
    """Rewrites ``assigns`` and every output's value in the forward step's named values
    (:func:`rewrite`) and sets ``reads``, the forward values they read."""
    assigns = tuple((d, rewrite(b.table, e)) for d, e in b.assigns)
    outs = tuple((out, rewrite(b.table, out.value)) for out in b.outs)
    reads = frozenset().union(*(r for _, (_, r) in assigns + outs))
    return replace(b, assigns=tuple((d, e) for d, (e, _) in assigns),
                   outs=tuple(replace(out, value=e) for out, (e, _) in outs), reads=reads)


def drop_zero_deltas(b: BackwardDraft) -> BackwardDraft:
    """Sets ``prev_out`` (state -> True, or None when dL/ds_{t-1} is zero) and drops the
    zero :class:`PrevDelta` outputs."""
    zero = {out.state for out in b.outs
            if isinstance(out, PrevDelta) and isinstance(out.value, ZeroMatrix)}
    return replace(b, prev_out=FrozenMap(tuple((st, None if st in zero else True)
                                               for st in b.cell.states)),
                   outs=tuple(out for out in b.outs
                              if not (isinstance(out, PrevDelta) and out.state in zero)))


def stage_backward(b: BackwardDraft) -> BackwardDraft:
    """Sets ``stages`` and each group's ``bstage``: every value levelled (0: computable from
    what step t receives; a product P_g one level after all of its G entries), stages cut
    by level, each with its ``lean`` form."""
    assigns, computed, aliases = _output_symbols(b.assigns, b.outs)
    expr_of = dict(assigns)
    psyms = {g.psym: g for g in b.groups if g.psym is not None}
    entries = {}                          # G buffer -> the symbols written into it
    for out in computed + aliases:
        if isinstance(out, SlotAdjoint):
            entries.setdefault(out.buffer, []).append(out.value)
    lv = _leveller(expr_of, psyms, entries)
    need = _needed(assigns, {out.value for out in computed + aliases}, expr_of, psyms, entries)
    assigns = tuple((d, e) for d, e in assigns if d in need)
    groups = tuple(replace(g, bstage=lv(g.psym) if g.psym in need else None)
                   for g in b.groups)
    nst = 1 + max([0] + [lv(d) for d, _ in assigns] + [lv(a.value) for a in aliases]
                  + [g.bstage for g in groups if g.bstage is not None])
    outset = {out.value for out in computed}
    stages = ()
    for k in range(nst):
        mine = [(d, e) for d, e in assigns if lv(d) == k]
        defined = {d for d, _ in mine}
        later = set().union(*(symbols_in(e) for d, e in assigns if lv(d) > k))
        st = Stage(tuple(g for g in groups if g.bstage == k), free_inputs(mine), tuple(mine),
                   tuple(d for d, _ in mine if d in later or d in outset),
                   outs=tuple(out for out in computed if out.value in defined),
                   aliases=tuple(out for out in aliases if lv(out.value) == k))
        stages += (replace(st, lean=_without_input_gradient(st, later)),)
    return replace(b, groups=groups, stages=stages)


BACKWARD_PASSES = (allocate_buffers, collect_deltas, collect_input_gradient,
                   collect_param_gradients, name_forward_values, drop_zero_deltas,
                   stage_backward)


def backward_program(cell, bw, groups, table) -> Backward:
    """The frozen backward program of ``cell`` from its derived step ``bw``, the forward
    groups (with adjoints attached) and the forward step's names ``table``: the
    :data:`BACKWARD_PASSES` applied in order."""
    b = reduce(lambda d, step: step(d), BACKWARD_PASSES, BackwardDraft(cell, bw, table, groups))
    return Backward(b.groups, b.stages, tuple(tuple(s.sym for s in slots) for slots in b.buffers),
                    b.prev_out, b.vec_grads, b.mat_fallback, b.dx_groups, b.dx_step, b.reads)


def use_products(groups, e):
    """``e`` with sum_k W_k^T v_k over a whole per-step group replaced by its product P_g."""
    if isinstance(e, MatrixSymbol):
        return e
    if isinstance(e, (MatAdd, MatMul)):
        ts = list(e.args) if isinstance(e, MatAdd) else [e]
        hit = False
        for g in groups:
            found = _group_terms(ts, g) if g.psym is not None else None
            if found:
                ts = [t for t in ts if t not in found] + [g.psym]
                hit = True
        if hit:
            return add([use_products(groups, t) for t in ts], e.shape)
    return rebuild(e, lambda a: use_products(groups, a))


def _find_in_buffers(buffers, e):
    """(buffer, row) of the slot whose adjoint equals ``e``, or None."""
    k = canon(e)
    return next(((b, j) for b, entries in enumerate(buffers)
                 for j, s in enumerate(entries) if canon(s.adjoint) == k), None)


def _output_symbols(assigns, outs):
    """(assigns, computed, aliases): each output valued by an expression gets a symbol
    ``_o<n>`` assigned that expression; an output that is a value the driver already holds
    (a symbol no assignment defines) is an alias."""
    defined = {d for d, _ in assigns}
    extra, computed, aliases = (), (), ()
    for n, out in enumerate(outs):
        e = out.value
        if isinstance(e, MatrixSymbol) and e not in defined:
            aliases += (out,)
        elif isinstance(e, MatrixSymbol):
            computed += (out,)
        else:
            sym = Cotangent(f"_o{n}", *e.shape)
            extra += ((sym, e),)
            computed += (replace(out, value=sym),)
    return assigns + extra, computed, aliases


def _leveller(expr_of, psyms, entries):
    """The level of a symbol: 0 for what step t receives, the max over what it reads, and
    a product P_g one more than all of its G entries."""
    @lru_cache(maxsize=None)
    def lv(sym):
        if sym in psyms:
            return 1 + max([0] + [lv(o) for o in entries.get(psyms[sym].buffer, [])])
        if sym in expr_of:
            return max([0] + [lv(s) for s in symbols_in(expr_of[sym])])
        return 0
    return lv


def _needed(assigns, outputs, expr_of, psyms, entries) -> frozenset:
    """Every symbol the outputs need: what their assignments read, and a needed product
    P_g's G entries with what those read."""
    need = set(outputs)
    for d, e in reversed(assigns):
        if d in need:
            need |= symbols_in(e)
    changed = True
    while changed:
        changed = False
        for p, g in psyms.items():
            if p in need:
                for o in entries.get(g.buffer, []):
                    if o not in need:
                        need.add(o)
                        need |= symbols_in(expr_of.get(o, o))
                        changed = True
        for d, e in reversed(assigns):
            if d in need and not symbols_in(e) <= need:
                need |= symbols_in(e)
                changed = True
    return frozenset(need)


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
