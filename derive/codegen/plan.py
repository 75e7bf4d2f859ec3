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

The planner is :data:`PASSES`, named passes applied in order to ``start(cell)``, each a
pure function :class:`Draft` -> :class:`Draft` over frozen records (``dataclasses.replace``):
``name_subexpressions``, ``group_products``, ``pair_hoisted``, ``layout_gate_major``,
``attach_backward``, ``keep_values``, ``activate_in_place``, ``stage_forward``,
``place_values`` (the last builds the :class:`~derive.codegen.ir.Plan`). No pass keeps state
between calls: a draft's mappings are :class:`~derive.codegen.ir.FrozenMap`, naming and
grouping are folds over the equations returning frozen :class:`Naming` / :class:`Products`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import reduce

from sympy import MatAdd, MatMul, MatrixSymbol, OneMatrix, ZeroMatrix

from derive.codegen.exprs import (KernelPlanError, add, canon, expand_all, fold_children,
                                  free_inputs, is_vector, matmul, rebuild,
                                  replace as replace_in, safe_name, scale, sums, symbols_in,
                                  time_invariant)
from derive.codegen.ir import (Activation, Backward, FrozenMap, Group, JacobianProgram, Plan,
                               Slot, Stage)
from derive.codegen.locations import place_values as locate
from derive.codegen.plan_backward import attach_adjoints, backward_program
from derive.codegen.plan_jacobian import jacobian_program
from derive.core.primitives import Elementwise
from derive.core.symbols import H, Input, Param, PrevState, Var
from derive.printing.text import text

__all__ = ["PASSES", "Draft", "KernelPlanError", "Plan", "Var", "build_plan", "rebuild", "safe_name",
           "start", "symbols_in"]


@dataclass(frozen=True)
class Naming:
    """The forward step named so far, a fold over its equations: the equations ((Var, rhs),
    ...) in evaluation order, ``table`` canon(expr) -> the Var naming it, and ``count``
    subexpressions named ``_e0, _e1, ...``."""
    eqs: tuple = ()
    table: FrozenMap = FrozenMap()
    count: int = 0


def _named(n: Naming, e):
    """(naming, the Var naming ``e``): the one in the table, else a new ``_e<k>`` equation."""
    k = canon(e)
    v = n.table.get(k)
    if v is not None:
        return n, v
    v = Var(f"_e{n.count}", *e.shape)
    return Naming(n.eqs + ((v, e),), n.table.set(k, v), n.count + 1), v


def _walk(n: Naming, e, top=False):
    """(naming, e) with every elementwise call (but a ``top`` one), every non-symbol
    argument of one and every non-symbol operand of a matrix product replaced by its name."""
    if isinstance(e, (MatrixSymbol, OneMatrix, ZeroMatrix)):
        return n, e
    if isinstance(e, Elementwise):
        n, arg = _walk(n, e.arg)
        if not isinstance(arg, MatrixSymbol):
            n, arg = _named(n, arg)
        node = type(e)(arg)
        return (n, node) if top else _named(n, node)
    if isinstance(e, MatMul):
        c, mats = e.as_coeff_matrices()
        *ms, v = mats
        if not is_vector(v):
            raise KernelPlanError(f"unsupported product {e}")
        n, v = _walk(n, v)
        if not ms:
            return n, scale(c, v)
        if not isinstance(v, MatrixSymbol):
            n, v = _named(n, v)
        return n, scale(c, matmul(*ms, v))
    return fold_children(n, e, _walk)


def _with_equation(n: Naming, eq) -> Naming:
    """The naming with the cell's equation ``eq`` appended, its right side named."""
    n, new = _walk(n, eq.rhs, top=True)
    return replace(n, eqs=n.eqs + ((eq.lhs, new),),
                   table=n.table.with_default(canon(new), eq.lhs).with_default(canon(eq.rhs), eq.lhs))


def _weight_and_operand(e):
    """(coefficient, weight, operand) of a product ``c W1 ... Wk v`` with v a vector."""
    c, mats = e.as_coeff_matrices()
    *ms, v = mats
    w = ms[0] if len(ms) == 1 else MatMul(*ms, evaluate=False)
    return c, w, v


@dataclass(frozen=True)
class Draft:
    """The plan while the passes build it: each pass reads some fields and returns a new
    draft with more set (``dataclasses.replace``); the last one builds the :class:`Plan`."""
    cell: object
    names: FrozenMap
    output_state: str
    state_vars: FrozenMap = FrozenMap()     # state name -> Var
    eqs: tuple = ()             # ((Var, rhs), ...) the forward step, in evaluation order
    table: FrozenMap = FrozenMap()          # canon(expr) -> the Var naming it
    defs: FrozenMap = FrozenMap()           # Var -> its definition (the named eqs)
    groups: tuple = ()          # Group records, groups[k].index == k
    level: FrozenMap = FrozenMap()          # Var -> -1 (before the loop) or stage
    activations: FrozenMap = FrozenMap()    # slot sym -> Activation (candidates)
    backward: Backward | None = None
    jac: JacobianProgram | None = None
    refs: frozenset = frozenset()   # forward values the backward step and Jacobian read
    stored: tuple = ()              # forward Vars kept for backward / jacobian (not states)
    pre: Stage | None = None
    fwd: tuple = ()
    plan: Plan | None = None

    @property
    def slot_of(self) -> dict:
        return {s.sym: s for g in self.groups for s in g.slots}


def start(cell) -> Draft:
    """The empty draft of ``cell`` (checks that the kernels can take H from a parameter)."""
    if not any(H in p.shape for p in cell.params.values()):
        raise KernelPlanError(f"cell {cell.name!r}: the kernels take H and the dtype from the "
                              f"parameters, and no parameter has a dimension H")
    return Draft(cell, FrozenMap.of({sym.name: safe_name(sym.name)
                                     for sym in cell.variables.values()}),
                 "h" if "h" in cell.states else next(      # else the first vector state
                     (s for s in cell.states if cell.state_shapes[s] == (H, 1)), cell.states[0]))


def name_subexpressions(d: Draft) -> Draft:
    """Sets ``eqs``, ``table``, ``defs``, ``state_vars``: every value the backward pass
    needs is a symbol of the forward step (the :class:`Naming` fold over the equations)."""
    n = reduce(_with_equation, d.cell.equations, Naming())
    return replace(d, eqs=n.eqs, table=n.table, defs=FrozenMap.of(dict(n.eqs)),
                   state_vars=FrozenMap.of({eq.lhs.name: eq.lhs for eq in d.cell.equations
                                            if eq.lhs.name in d.cell.states}))


@dataclass(frozen=True)
class Products:
    """The step's matrix products found so far, a fold over its equations: ``groups``
    canon(u) -> (index, u, u expanded, slot keys), ``slots`` (weight, canon(u)) -> Slot,
    ``uses`` slot key -> how often the product occurs."""
    groups: FrozenMap = FrozenMap()
    slots: FrozenMap = FrozenMap()
    uses: FrozenMap = FrozenMap()


def _slotted(d: Draft, p: Products, e):
    """(products, e) with every product ``c W u`` in e replaced by ``c`` times its slot."""
    if not (isinstance(e, MatMul) and is_vector(e) and any(
            isinstance(m, Param) and m.shape[1] != 1 for m in e.args if hasattr(m, "shape"))):
        return fold_children(p, e, lambda p, a: _slotted(d, p, a))
    c, w, u = _weight_and_operand(e)
    if all(isinstance(x, Param) for x in symbols_in(expand_all(u, d.defs))):
        raise KernelPlanError(
            f"cell {d.cell.name!r}: the product {text(e)} has an operand made of "
            f"parameters only ({text(u)}); the kernels need every matrix product to "
            f"involve the input or a state (fold the constant into a parameter)")
    gk = canon(u)
    if gk not in p.groups:
        p = replace(p, groups=p.groups.set(gk, (len(p.groups), u, expand_all(u, d.defs), ())))
    index, _, uexpr, keys = p.groups[gk]
    key = (w, gk)
    if key not in p.slots:
        p = replace(p, groups=p.groups.set(gk, (index, u, uexpr, keys + (key,))),
                    slots=p.slots.set(key, Slot(w, u, uexpr, index,
                                                Var(f"_s{len(p.slots)}", w.shape[0], 1))))
    p = replace(p, uses=p.uses.set(key, p.uses.get(key, 0) + 1))
    return p, scale(c, p.slots[key].sym)


def group_products(d: Draft) -> Draft:
    """Sets ``groups`` and ``level``: every product ``c W u`` of the step becomes ``c`` times
    a slot symbol, slots with the same operand ``u`` form one group."""
    p, eqs = Products(), ()
    for v, rhs in d.eqs:
        p, new = _slotted(d, p, rhs)
        eqs += ((v, new),)
    return _levelled(replace(d, eqs=eqs, groups=tuple(
        Group(index, u, uexpr, tuple(replace(p.slots[k], uses=p.uses[k]) for k in keys))
        for index, u, uexpr, keys in p.groups.values())))


def _levelled(d: Draft) -> Draft:
    """Sets ``level`` (-1 before the loop over whole sequences, k >= 0 the k-th stage of the
    step) and each group's ``stage`` and ``hoisted``."""
    level, slot_of = {}, d.slot_of

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
            return group_stage(d.groups[slot_of[sym].group])
        return level[sym]

    for v, rhs in d.eqs:
        # a state is written every step, even one that depends on the input only
        floor = 0 if d.state_vars.get(v.name) == v else -1
        level[v] = max([floor] + [dep_level(s) for s in symbols_in(rhs)])
    groups = tuple(replace(g, stage=group_stage(g), hoisted=group_stage(g) == -1)
                   for g in d.groups)
    return replace(d, level=FrozenMap.of(level), groups=groups)


def pair_hoisted(d: Draft) -> Draft:
    """Pairs a per-step slot with a hoisted slot of the same sum (the per-step product adds
    the precomputed rows: ``partner`` / ``partner_of``) and folds the sum's time-invariant
    terms into the hoisted slot's ``bias``; the equations lose what moved."""
    slot_of = d.slot_of

    def usable(t, hoisted):
        return (t in slot_of and slot_of[t].uses == 1
                and d.groups[slot_of[t].group].hoisted == hoisted)

    candidates = []                         # (sum, hoisted slot, per-step slot or None)
    for v, rhs in d.eqs:
        for sub in sums(rhs):
            ts = list(sub.args)
            hs = [t for t in ts if usable(t, True)]
            if not hs:
                continue
            ps = [t for t in ts if usable(t, False)]
            candidates.append((sub, hs[0], ps[0] if ps else None))
    partner, partner_of, first_partner, bias = {}, {}, {}, {}
    for sub, h, p in candidates:
        if p is not None:
            g, hg = slot_of[p].group, slot_of[h].group
            first_partner.setdefault(g, hg)
            if first_partner[g] == hg and p not in partner and h not in partner_of:
                partner[p], partner_of[h] = h, p
    eqs = d.eqs
    for sub, h, p in candidates:
        keep = []
        for t in sub.args:
            if t == h:
                if h not in partner_of:
                    keep.append(t)
            elif time_invariant(t):
                bias.setdefault(h, []).append(t)
            else:
                keep.append(t)
        new = add(keep, sub.shape)
        eqs = tuple((v, replace_in(rhs, sub, new)) for v, rhs in eqs)
    groups = tuple(replace(g, slots=tuple(
        replace(s, partner=partner.get(s.sym), partner_of=partner_of.get(s.sym),
                bias=s.bias + tuple(bias.get(s.sym, ()))) for s in g.slots)) for g in d.groups)
    return replace(d, eqs=eqs, groups=groups)


def layout_gate_major(d: Draft) -> Draft:
    """Sets ``activations`` (the slots that can be activated in place) and each group's
    layout: paired slots first (in the order they were paired), then the rest; within
    each, slots that can be activated in place grouped by their activation function; a
    hoisted group lays out the rows paired with each per-step group contiguously."""
    acts = FrozenMap.of(_activation_candidates(d.eqs, d.groups, d.slot_of, d.level,
                                                d.state_vars))
    slot_of = d.slot_of
    groups = list(d.groups)
    for k, g in enumerate(groups):
        if not g.hoisted:
            paired = [s for s in g.slots if s.partner is not None]
            groups[k] = replace(
                g, slots=tuple(_by_function(paired, acts)
                               + _by_function([s for s in g.slots if s.partner is None], acts)),
                n_paired=len(paired),
                pair_group=slot_of[paired[0].partner].group if paired else None)
    for k in range(len(groups)):
        if groups[k].hoisted:
            order = []
            for j, pg in enumerate(groups):
                if pg.pair_group == k:
                    groups[j] = replace(pg, pair_offset=len(order))
                    order += [slot_of[s.partner] for s in pg.slots[:pg.n_paired]]
            groups[k] = replace(groups[k], slots=tuple(
                order + [s for s in groups[k].slots if s not in order]))
    return _levelled(replace(d, groups=tuple(groups), activations=acts))


def attach_backward(d: Draft) -> Draft:
    """Sets ``backward``, ``jac`` and ``refs``: each slot's adjoint, the staged backward
    program, the Jacobian program, and the forward values they read."""
    bw = d.cell.backward()
    back = backward_program(d.cell, bw, attach_adjoints(d.cell, bw, d.groups), d.table)
    jac = jacobian_program(d.cell, d.table)
    return replace(d, groups=back.groups, backward=back, jac=jac, refs=back.reads | jac.reads)


def keep_values(d: Draft) -> Draft:
    """Sets ``stored``: the forward values (not states) the backward pass and the Jacobian
    read, and the computed operands of groups whose weight gradient is a product."""
    return replace(d, stored=tuple(v for v, _ in d.eqs
                                   if v in _needed(d) and v.name not in d.state_vars))


def _needed(d: Draft) -> set:
    fwd_vars = {v for v, _ in d.eqs}
    return (set(d.refs) & fwd_vars) | {g.operand for g in d.groups
                                       if g.buffer is not None and isinstance(g.operand, Var)}


def activate_in_place(d: Draft) -> Draft:
    """Sets the ``activation`` of each candidate slot whose pre-activation the backward
    pass does not read (one that it reads stays in the math) and drops its two equations."""
    needed = _needed(d)
    chosen = {sym: act for sym, act in d.activations.items() if act.pre not in needed}
    gone = {x for act in chosen.values() for x in (act.pre, act.output)}
    groups = tuple(replace(g, slots=tuple(replace(s, activation=chosen.get(s.sym))
                                          for s in g.slots)) for g in d.groups)
    return replace(d, groups=groups, eqs=tuple((v, rhs) for v, rhs in d.eqs if v not in gone))


def stage_forward(d: Draft) -> Draft:
    """Sets ``pre`` and ``fwd``: the forward equations split by level."""
    pre, fwd = _forward_stages(d.eqs, d.level, d.groups, d.state_vars, d.stored)
    return replace(d, pre=pre, fwd=tuple(fwd))


def place_values(d: Draft) -> Draft:
    """Sets ``plan``: the frozen :class:`Plan`, its stages holding the final group records,
    and its location table (:func:`derive.codegen.locations.place_values`)."""
    back = d.backward

    def rebind(st):
        if st is None:
            return None
        return replace(st, groups=tuple(d.groups[g.index] for g in st.groups),
                       lean=rebind(st.lean))

    plan = Plan(cell=d.cell, output_state=d.output_state, groups=d.groups, pre=rebind(d.pre),
                fwd=tuple(map(rebind, d.fwd)), stored=d.stored, state_vars=d.state_vars,
                bwd=tuple(map(rebind, back.stages)), buffers=back.buffers,
                prev_out=back.prev_out, vec_grads=back.vec_grads,
                mat_fallback=back.mat_fallback, jac=d.jac, dx_groups=back.dx_groups,
                dx_step=back.dx_step, names=d.names)
    return replace(d, plan=replace(plan, locations=locate(plan)))


PASSES = (name_subexpressions, group_products, pair_hoisted, layout_gate_major,
          attach_backward, keep_values, activate_in_place, stage_forward, place_values)


def build_plan(cell) -> Plan:
    """The kernel plan of ``cell``: the passes applied in order to its empty draft."""
    d = start(cell)
    for step in PASSES:
        d = step(d)
    return d.plan


def _activation_candidates(eqs, groups, slot_of, level, state_vars):
    """Per-step slots s with an equation ``a = s + extra`` (extra known before the stage's
    math runs: parameters, the input, previous states, products of the stage, values of
    earlier stages) and ``y = f(a)`` the only use of ``a``: {slot sym: Activation}."""
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
                out[s.sym] = Activation(type(f_of_a), a, y, tuple(extra))
    # a slot that another activation reads keeps its product value
    read = {x for act in out.values() for t in act.extra for x in symbols_in(t)}
    return {sym: act for sym, act in out.items() if sym not in read}


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
        if s.sym in candidates and candidates[s.sym].function not in order:
            order.append(candidates[s.sym].function)
    rank = {f: k for k, f in enumerate(order)}
    return sorted(slots, key=lambda s: rank.get(candidates[s.sym].function, len(order))
                  if s.sym in candidates else len(order))


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


