"""From a Cell's derived expressions to a kernel plan: what the loops compute and in what order.

Everything here is read off the cell (``equations``, ``params``, ``states``, ``backward()``,
``jacobian_linmap()``); nothing is specific to one cell. The plan says:

* **slots**: every product ``W u`` of a weight and a vector in the forward step, grouped by
  the operand ``u``. A group's weights are stacked so the group is ONE matrix product:
  before the time loop when ``u`` depends on the input only (hoisted, all ``T*B`` rows at
  once), else once per step. A per-step slot and a hoisted slot that are added in the same
  sum are *paired*: the per-step product adds the precomputed rows in place, and
  time-invariant terms of that sum (biases) are folded into the hoisted product;
* **activations in place**: a per-step slot whose sum is ``a = W u (+ terms known before the
  step's products)`` and whose only use is ``y = f(a)`` is *activated in place*: the group's
  products are kept gate-major, ``(n_slots, B, H)`` per step, slots sharing ``f`` are laid out
  next to each other, and ``f`` runs once over each such run of slots, writing ``y`` over
  ``a``. The gate values then sit contiguously in one buffer that the backward pass reads;
* **stages**: the forward step as alternating matrix products and elementwise "math"
  functions (a product whose operand is computed in the step, like ``U (r * h_prev)`` of a
  GRU, starts a new stage);
* **backward**: the derived BPTT step, with ``W_k^T v_k`` summed over a group replaced by one
  product ``G_t W_stack`` (``G_t`` holds the group's slot adjoints, stored for the whole
  sequence so that ``dW_stack = G^T U`` is one product after the loop), and derivative nodes
  ``f'(u)`` rewritten to ``from_output`` forms of values the forward pass already computed;
* **jacobian**: the terms ``diag(v) M1 ...`` of every block of the state-transition Jacobian.
"""
from __future__ import annotations

from dataclasses import replace

from sympy import MatAdd, MatMul, MatrixSymbol, OneMatrix, ZeroMatrix

from derive.codegen.exprs import (KernelPlanError, add, canon, expand_all, free_inputs,
                                  is_vector, matmul, rebuild, replace as replace_in, safe_name,
                                  scale, sums, symbols_in, time_invariant)
from derive.codegen.ir import Activation, Group, Plan, Slot, Stage
from derive.codegen.locations import place_values
from derive.codegen.plan_backward import BackwardProgram, Rewriter, attach_adjoints
from derive.codegen.plan_jacobian import jacobian_program
from derive.core.primitives import Elementwise
from derive.core.symbols import H, Input, Param, PrevState, Var
from derive.printing.text import text

__all__ = ["KernelPlanError", "Plan", "Var", "build_plan", "rebuild", "safe_name", "symbols_in"]


class _Namer:
    """Names subexpressions of the forward step so each value the backward pass needs is a
    symbol: every elementwise call, every non-symbol argument of one, every non-symbol
    operand of a matrix product."""

    def __init__(self):
        self.eqs = []           # [(Var, rhs)]
        self.table = {}         # canon(rhs) -> Var
        self.count = 0

    def named(self, e):
        k = canon(e)
        if k in self.table:
            return self.table[k]
        v = Var(f"_e{self.count}", *e.shape)
        self.count += 1
        self.eqs.append((v, e))
        self.table[k] = v
        return v

    def walk(self, e, top=False):
        if isinstance(e, (MatrixSymbol, OneMatrix, ZeroMatrix)):
            return e
        if isinstance(e, Elementwise):
            arg = self.walk(e.arg)
            if not isinstance(arg, MatrixSymbol):
                arg = self.named(arg)
            node = type(e)(arg)
            return node if top else self.named(node)
        if isinstance(e, MatMul):
            c, mats = e.as_coeff_matrices()
            *ms, v = mats
            if not is_vector(v):
                raise KernelPlanError(f"unsupported product {e}")
            if not ms:
                return scale(c, self.walk(v))
            v = self.walk(v)
            if not isinstance(v, MatrixSymbol):
                v = self.named(v)
            return scale(c, matmul(*ms, v))
        return rebuild(e, self.walk)

    def add_equation(self, lhs, rhs):
        new = self.walk(rhs, top=True)
        self.eqs.append((lhs, new))
        self.table.setdefault(canon(new), lhs)
        self.table.setdefault(canon(rhs), lhs)


def _weight_and_operand(e):
    """(coefficient, weight, operand) of a product ``c W1 ... Wk v`` with v a vector."""
    c, mats = e.as_coeff_matrices()
    *ms, v = mats
    w = ms[0] if len(ms) == 1 else MatMul(*ms, evaluate=False)
    return c, w, v


def build_plan(cell) -> Plan:
    if not any(H in p.shape for p in cell.params.values()):
        raise KernelPlanError(f"cell {cell.name!r}: the kernels take H and the dtype from the "
                              f"parameters, and no parameter has a dimension H")
    names = {sym.name: safe_name(sym.name) for sym in cell.variables.values()}
    output_state = "h" if "h" in cell.states else cell.states[0]

    # 1. name subexpressions
    namer = _Namer()
    for eq in cell.equations:
        namer.add_equation(eq.lhs, eq.rhs)
    defs = dict(namer.eqs)
    state_vars = {eq.lhs.name: eq.lhs for eq in cell.equations if eq.lhs.name in cell.states}

    # 2. slots and groups
    slots, groups, by_key, group_of = [], [], {}, {}

    def to_slots(e):
        if isinstance(e, MatMul) and is_vector(e) and any(
                isinstance(m, Param) and m.shape[1] != 1 for m in e.args if hasattr(m, "shape")):
            c, w, u = _weight_and_operand(e)
            if all(isinstance(x, Param) for x in symbols_in(expand_all(u, defs))):
                raise KernelPlanError(
                    f"cell {cell.name!r}: the product {text(e)} has an operand made of "
                    f"parameters only ({text(u)}); the kernels need every matrix product to "
                    f"involve the input or a state (fold the constant into a parameter)")
            gk = canon(u)
            if gk not in group_of:
                g = Group(len(groups), u, expand_all(u, defs), [])
                groups.append(g)
                group_of[gk] = g
            g = group_of[gk]
            if (w, gk) not in by_key:
                s = Slot(w, u, g.operand_expr, g.index, Var(f"_s{len(slots)}", w.shape[0], 1))
                slots.append(s)
                g.slots.append(s)
                by_key[(w, gk)] = s
            s = by_key[(w, gk)]
            s.uses += 1
            return scale(c, s.sym)
        return rebuild(e, to_slots)

    eqs = [(v, to_slots(rhs)) for v, rhs in namer.eqs]
    slot_of = {s.sym: s for s in slots}

    # 3. levels: -1 before the loop (whole sequences), k >= 0 the k-th stage of the step
    level = {}

    def group_stage(g):
        u = g.operand
        if isinstance(u, Input):
            return -1
        if isinstance(u, PrevState):
            return 0
        if u not in level:
            raise KernelPlanError(f"operand {u} is used before it is computed")
        # an operand computed before the loop is read per step: only x itself is hoisted
        return 0 if level[u] == -1 else level[u] + 1

    def dep_level(sym):
        if isinstance(sym, (Param, Input)):
            return -1
        if isinstance(sym, PrevState):
            return 0
        if sym in slot_of:
            return group_stage(groups[slot_of[sym].group])
        return level[sym]

    def relevel():
        level.clear()
        for v, rhs in eqs:
            # a state is written every step, even one that depends on the input only
            floor = 0 if state_vars.get(v.name) == v else -1
            level[v] = max([floor] + [dep_level(s) for s in symbols_in(rhs)])
        for g in groups:
            g.stage = group_stage(g)
            g.hoisted = g.stage == -1

    relevel()

    # 4. pair per-step slots with hoisted slots of the same sum; fold biases into hoisted ones
    def usable(t, hoisted):
        return (t in slot_of and slot_of[t].uses == 1
                and groups[slot_of[t].group].hoisted == hoisted)

    candidates = []                         # (sum, hoisted slot, per-step slot or None)
    for v, rhs in eqs:
        for sub in sums(rhs):
            ts = list(sub.args)
            hs = [t for t in ts if usable(t, True)]
            if not hs:
                continue
            ps = [t for t in ts if usable(t, False)]
            candidates.append((sub, slot_of[hs[0]], slot_of[ps[0]] if ps else None))
    first_partner = {}
    for sub, h, p in candidates:
        if p is not None:
            g = p.group
            first_partner.setdefault(g, h.group)
            if first_partner[g] == h.group and p.partner is None and h.partner_of is None:
                p.partner, h.partner_of = h, p
    for sub, h, p in candidates:
        keep = []
        for t in sub.args:
            if t == h.sym:
                if h.partner_of is None:
                    keep.append(t)
            elif time_invariant(t):
                h.bias.append(t)
            else:
                keep.append(t)
        new = add(keep, sub.shape)
        eqs = [(v, replace_in(rhs, sub, new)) for v, rhs in eqs]

    # layout: paired slots first (in the order they were paired), then the rest; within each,
    # slots that can be activated in place grouped by their activation function
    candidates = _activation_candidates(eqs, groups, slot_of, level, state_vars)
    for g in groups:
        if not g.hoisted:
            paired = [s for s in g.slots if s.partner is not None]
            g.slots = (_by_function(paired, candidates)
                       + _by_function([s for s in g.slots if s.partner is None], candidates))
            g.n_paired = len(paired)
            g.pair_group = paired[0].partner.group if paired else None
    for g in groups:
        if g.hoisted:
            order = []
            for pg in groups:
                if pg.pair_group == g.index:
                    pg.pair_offset = len(order)
                    order += [s.partner for s in pg.slots[:pg.n_paired]]
            g.slots = order + [s for s in g.slots if s not in order]
    relevel()

    # 5. backward and jacobian programs
    bw = cell.backward()
    attach_adjoints(cell, bw, slots)
    rewriter, jac_rewriter = Rewriter(namer.table), Rewriter(namer.table)
    back = BackwardProgram(cell, bw, groups, slots, rewriter)
    jac = jacobian_program(cell, jac_rewriter)

    # 6. forward values kept for the backward pass and the jacobian
    fwd_vars = {v for v, _ in eqs}
    needed = (rewriter.refs | jac_rewriter.refs) & fwd_vars
    for g in groups:
        if g.buffer is not None and isinstance(g.operand, Var):
            needed.add(g.operand)
    stored = [v for v, _ in eqs if v in needed and v.name not in state_vars]

    # 7. activations in place: a pre-activation that backward needs itself stays in the math
    for s, act in candidates.items():
        if act.pre not in needed:
            s.activation = act
            eqs = [(v, rhs) for v, rhs in eqs if v not in (act.pre, act.output)]
    pre, fwd = _forward_stages(eqs, level, groups, state_vars, stored)
    plan = Plan(cell=cell, output_state=output_state, groups=groups, pre=pre, fwd=tuple(fwd),
                stored=stored, state_vars=state_vars, bwd=tuple(back.stages), buffers=back.buffers,
                prev_out=back.prev_out, vec_grads=back.vec_grads, mat_fallback=back.mat_fallback,
                jac=jac, dx_groups=back.dx_groups, dx_step=back.dx_step, names=names)
    return replace(plan, locations=place_values(plan))


def _activation_candidates(eqs, groups, slot_of, level, state_vars):
    """Per-step slots s with an equation ``a = s + extra`` (extra known before the stage's
    math runs: parameters, the input, previous states, products of the stage, values of
    earlier stages) and ``y = f(a)`` the only use of ``a``: {slot: Activation}."""
    uses = {}
    for v, rhs in eqs:
        for sym in symbols_in(rhs):
            uses.setdefault(sym, []).append((v, rhs))
    out = {}
    for g in groups:
        if g.hoisted or len({s.sym.shape[0] for s in g.slots}) != 1:
            continue                    # a gate-major buffer needs one block height
        for s in g.slots:
            if s.uses != 1 or len(uses.get(s.sym, ())) != 1:
                continue
            a, rhs = uses[s.sym][0]
            if rhs == s.sym:
                extra = []
            elif isinstance(rhs, MatAdd) and list(rhs.args).count(s.sym) == 1:
                extra = [t for t in rhs.args if t != s.sym]
            else:
                continue
            if a.name in state_vars or any(c.pre == a for c in out.values()) or not all(
                    _known_before(x, g.stage, slot_of, groups, level)
                    for t in extra for x in symbols_in(t)):
                continue
            users = uses.get(a, ())
            if len(users) != 1:
                continue
            y, f_of_a = users[0]
            if (isinstance(f_of_a, Elementwise) and not f_of_a.is_derivative
                    and f_of_a.arg == a and y.name not in state_vars):
                out[s] = Activation(type(f_of_a), a, y, extra)
    # a slot that another activation reads keeps its product value
    read = {x for act in out.values() for t in act.extra for x in symbols_in(t)}
    return {s: act for s, act in out.items() if s.sym not in read}


def _known_before(sym, stage, slot_of, groups, level):
    """Whether ``sym`` has its value before the math of forward stage ``stage`` runs."""
    if isinstance(sym, (Param, Input, PrevState)):
        return True
    if sym in slot_of:
        return groups[slot_of[sym].group].stage <= stage
    return level.get(sym, stage) < stage


def _by_function(slots, candidates):
    """Slots activated in place first, grouped by activation function in order of first
    appearance; the others after them; otherwise in the given order."""
    order = []
    for s in slots:
        if s in candidates and candidates[s].function not in order:
            order.append(candidates[s].function)
    rank = {f: k for k, f in enumerate(order)}
    return sorted(slots, key=lambda s: rank.get(candidates[s].function, len(order))
                  if s in candidates else len(order))


def _forward_stages(eqs, level, groups, state_vars, stored):
    """Split the forward equations by level into the pre-loop stage and the step stages."""
    n = 1 + max([0] + list(level.values()) + [g.stage for g in groups])
    keep = set(stored) | set(state_vars.values())
    keep |= {g.operand for g in groups if isinstance(g.operand, Var)}
    # values the driver adds to a slot before activating it in place
    keep |= {x for g in groups for s in g.slots if s.activation is not None
             for t in s.activation.extra for x in symbols_in(t)}

    def stage(lv):
        mine = [(v, rhs) for v, rhs in eqs if level[v] == lv]
        later = set()
        for v, rhs in eqs:
            if level[v] > lv:
                later |= symbols_in(rhs)
        outputs = [v for v, _ in mine if v in keep or v in later]
        return Stage(tuple(g for g in groups if g.stage == lv), free_inputs(mine), tuple(mine),
                     tuple(outputs))

    return stage(-1), [stage(k) for k in range(n)]


