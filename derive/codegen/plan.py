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

import keyword
from dataclasses import dataclass, field

import sympy
from sympy import HadamardProduct, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix

from derive.core.algebra import VecPoly, add, hadamard, matmul, ones, scale
from derive.core.linmap import LinMap
from derive.core.primitives import ALL_PRIMITIVES, Elementwise
from derive.core.symbols import H, Adjoint, Incoming, Input, Param, PrevState, Var
from derive.printing.text import text

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


def rebuild(e, f):
    """e with f applied to every matrix-valued child, keeping term order."""
    if isinstance(e, MatAdd):
        return add([f(a) for a in e.args], e.shape)
    if isinstance(e, HadamardProduct):
        return hadamard([f(a) for a in e.args])
    if isinstance(e, MatMul):
        c, mats = e.as_coeff_matrices()
        return scale(c, matmul(*[f(m) for m in mats]))
    if isinstance(e, Elementwise):
        return type(e)(f(e.arg))
    if isinstance(e, Transpose):
        return Transpose(f(e.arg))
    return e


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
    raise KernelPlanError(f"from_output form {expr} is not a polynomial in the output")


_PRIMITIVE_OF = {p.derivative: p for p in ALL_PRIMITIVES if p.derivative is not None}


# ---------------------------------------------------------------------------------------
# plan data
# ---------------------------------------------------------------------------------------

@dataclass(eq=False)
class Slot:
    """One product ``weight @ operand`` of the forward step."""
    weight: object              # Param, or a product of Params
    operand: MatrixSymbol       # named operand
    operand_expr: object        # the operand as the cell wrote it (for matching gradients)
    group: int
    sym: MatrixSymbol           # stands for the product in the step's equations
    uses: int = 0
    bias: list = field(default_factory=list)      # folded time-invariant terms (hoisted)
    partner: "Slot | None" = None                 # the hoisted slot added into this one
    partner_of: "Slot | None" = None              # the per-step slot this hoisted one joins
    adjoint: object = None                        # cotangent of the product (backward)
    activation: "Activation | None" = None        # set when the slot is activated in place

    @property
    def weight_params(self):
        return [m.name for m in _matrix_factors(self.weight)]


@dataclass(eq=False)
class Activation:
    """``output = function(pre)`` with ``pre = slot + sum(extra)``, computed in place in the
    slot's block of its group's gate-major buffer."""
    function: type              # the Elementwise primitive
    pre: MatrixSymbol           # the pre-activation (never materialised separately)
    output: MatrixSymbol        # the activation, a forward value
    extra: list                 # terms added to the slot before the activation


@dataclass(eq=False)
class Group:
    index: int
    operand: MatrixSymbol
    operand_expr: object
    slots: list
    hoisted: bool = False
    stage: int = -1                 # forward stage whose products it runs in (-1: before the loop)
    pair_group: int | None = None   # hoisted group whose rows are added into this one
    pair_offset: int = 0            # first paired row block in that hoisted group
    n_paired: int = 0
    buffer: int | None = None       # index of the G buffer holding its slot adjoints
    bstage: int | None = None       # backward stage of G_t @ W_stack (None: not needed)
    psym: MatrixSymbol | None = None   # the backward product G_t W_stack

    @property
    def gate_major(self) -> bool:
        """Whether the step's products are kept as (n_slots, B, H) with activations in place."""
        return any(s.activation is not None for s in self.slots)

    @property
    def widths(self) -> list:
        """Row count (H or D) of each slot's product, in layout order."""
        return [s.sym.shape[0] for s in self.slots]


@dataclass
class Stage:
    """Matrix products of ``groups`` then the math function ``assigns`` -> ``outputs``."""
    groups: list
    inputs: list            # symbols the math function reads
    assigns: list           # [(symbol, expr)] in evaluation order
    outputs: list           # symbols it returns


@dataclass
class Plan:
    cell: object
    output_state: str
    groups: list
    pre: Stage                  # before the loop, over whole sequences
    fwd: list                   # forward stages
    stored: list                # forward Vars kept for backward / jacobian (not states)
    state_vars: dict            # state name -> Var
    bwd: list                   # backward stages
    buffers: list               # G buffers: [(list of (group, slot) in layout order)]
    prev_out: dict              # state -> symbol or None (zero) of delta s_{t-1}
    vec_grads: dict             # param -> ("G", buffer, row) | ("step", symbol)
    mat_fallback: dict          # param -> [(left symbol, right symbol)] summed over steps
    jac_inputs: list
    jac_assigns: list
    jac_outputs: list
    jac_terms: dict             # (state, prev) -> [(lead, chain)] with symbols / constants
    jac_via: dict               # (state, prev) -> (other state, q): J_sr = diag(q) J_other,r + terms
    dx_groups: list             # input groups whose G_b @ W_stack gives (part of) dL/dxs
    dx_step: bool               # other terms of delta x_t, computed per step ("dx" outputs)
    names: dict = field(default_factory=dict)


def _matrix_factors(w):
    if isinstance(w, MatrixSymbol):
        return [w]
    if isinstance(w, MatMul):
        return [m for m in w.args if hasattr(m, "shape")]
    raise KernelPlanError(f"weight {w} is not a parameter or a product of parameters")


# ---------------------------------------------------------------------------------------
# forward program
# ---------------------------------------------------------------------------------------

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
            if all(isinstance(x, Param) for x in symbols_in(_expand_all(u, defs))):
                raise KernelPlanError(
                    f"cell {cell.name!r}: the product {text(e)} has an operand made of "
                    f"parameters only ({text(u)}); the kernels need every matrix product to "
                    f"involve the input or a state (fold the constant into a parameter)")
            gk = canon(u)
            if gk not in group_of:
                g = Group(len(groups), u, _expand_all(u, defs), [])
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
        for sub in _sums(rhs):
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
            elif _time_invariant(t):
                h.bias.append(t)
            else:
                keep.append(t)
        new = add(keep, sub.shape)
        eqs = [(v, _replace(rhs, sub, new)) for v, rhs in eqs]

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
    _attach_adjoints(cell, bw, slots)
    rewriter = _Rewriter(namer.table)
    back = _Backward(cell, bw, groups, slots, rewriter)
    jac = _Jacobian(cell, _Rewriter(namer.table))

    # 6. forward values kept for the backward pass and the jacobian
    fwd_vars = {v for v, _ in eqs}
    needed = (rewriter.refs | jac.rewriter.refs) & fwd_vars
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
    return Plan(cell=cell, output_state=output_state, groups=groups, pre=pre, fwd=fwd,
                stored=stored, state_vars=state_vars, bwd=back.stages, buffers=back.buffers,
                prev_out=back.prev_out, vec_grads=back.vec_grads, mat_fallback=back.mat_fallback,
                jac_inputs=jac.inputs, jac_assigns=jac.assigns, jac_outputs=jac.outputs,
                jac_terms=jac.terms, jac_via=jac.via, dx_groups=back.dx_groups,
                dx_step=back.dx_step, names=names)


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


def _dense(lm) -> int:
    """Number of terms of a LinMap that are dense (B, H, H) products, not diagonals."""
    return sum(1 for t in lm.terms if t.chain)


def _time_invariant(t):
    return is_vector(t) and all(isinstance(s, Param) for s in symbols_in(t))


def _expand_all(e, defs):
    """A named operand back in terms of the cell's own symbols (to match gradient terms)."""
    if isinstance(e, MatrixSymbol):
        return _expand_all(defs[e], defs) if e.name.startswith("_") and e in defs else e
    return rebuild(e, lambda a: _expand_all(a, defs))


def _sums(e):
    """Every sum inside e, outermost first."""
    out = [e] if isinstance(e, MatAdd) else []
    for a in getattr(e, "args", ()):
        if hasattr(a, "shape") and not isinstance(a, MatrixSymbol):
            out += _sums(a)
    return out


def _replace(e, old, new):
    if e == old:
        return new
    if isinstance(e, MatrixSymbol):
        return e
    return rebuild(e, lambda a: _replace(a, old, new))


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
        return Stage([g for g in groups if g.stage == lv], _free_inputs(mine), mine, outputs)

    return stage(-1), [stage(k) for k in range(n)]


def _free_inputs(assigns):
    """The arguments of a math function running ``assigns``: every symbol they read and do
    not define, in :func:`_ordered` order."""
    defined = {d for d, _ in assigns}
    return _ordered({s for _, e in assigns for s in symbols_in(e)} - defined)


def _ordered(syms):
    """Arguments of a math function: by role, then by name with numbers in numeric order."""
    import re
    rank = {Incoming: 0, PrevState: 1, Input: 2, Var: 3, Adjoint: 4, Param: 5}

    def natural(name):
        return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", name)]
    return sorted(syms, key=lambda s: (rank.get(type(s), 3), natural(s.name)))


# ---------------------------------------------------------------------------------------
# backward program
# ---------------------------------------------------------------------------------------

def _attach_adjoints(cell, bw, slots):
    """Each slot's adjoint: the v of the term v u^T of dW (u = the slot's operand)."""
    for pname, gexpr in bw.params.items():
        if cell.params[pname].shape[1] == 1:
            continue
        for term in (gexpr.args if isinstance(gexpr, MatAdd) else (gexpr,)):
            vu = _outer(term)
            if vu is None:
                continue
            v, u = vu
            for s in slots:
                if s.weight == cell.params[pname] and canon(s.operand_expr) == canon(u):
                    s.adjoint = v if s.adjoint is None else add([s.adjoint, v], v.shape)
    for s in slots:
        if s.adjoint is None:
            s.adjoint = ZeroMatrix(*s.sym.shape)


def _outer(term):
    """(v, u) of a gradient term c v u^T; None for other shapes of term."""
    if not isinstance(term, MatMul):
        return None
    from derive.core.algebra import transpose
    c, mats = term.as_coeff_matrices()
    split = next((i for i, m in enumerate(mats) if m.shape[1] == 1), None)
    if split is None or split == len(mats) - 1:
        return None
    u = transpose(matmul(*mats[split + 1:]))
    if not is_vector(u):
        return None
    return scale(c, matmul(*mats[:split + 1])), u


class _Rewriter:
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
            prim = _PRIMITIVE_OF[type(e)]
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


class _Backward:
    """The BPTT step as stages: group products P_g = G_t W_stack, rewritten derivatives."""

    def __init__(self, cell, bw, groups, slots, rewriter):
        self.cell, self.groups = cell, groups
        # G buffers: groups with a nonzero slot adjoint; equal adjoint lists share one
        self.buffers, keys = [], {}
        for g in groups:
            if all(isinstance(s.adjoint, ZeroMatrix) for s in g.slots):
                continue
            key = tuple(canon(s.adjoint) for s in g.slots)
            if key not in keys:
                keys[key] = len(self.buffers)
                self.buffers.append([(g, s) for s in g.slots])
            g.buffer = keys[key]
            if not g.hoisted:
                g.psym = Adjoint(f"_P{g.index}", g.operand.shape[0], 1)

        def rw(e):
            return rewriter(self.use_products(e))

        assigns = [(d, rw(e)) for d, e in bw.assignments]
        outs = []                         # (kind, key, expr)
        for b, entries in enumerate(self.buffers):
            for j, (g, s) in enumerate(entries):
                outs.append(("G", (b, j), rw(s.adjoint)))
        self.prev_out = {}
        for st in cell.states:
            e = rw(bw.prev_states[st])
            self.prev_out[st] = None if isinstance(e, ZeroMatrix) else True
            if self.prev_out[st]:
                outs.append(("prev", st, e))
        # delta x_t: sum_k W_k^T v_k over an input group is one product G @ W_stack after
        # the loop, over all T * B rows; other terms (x used elementwise) are per step
        self.dx_groups, rest = self._input_products(bw.input)
        self.dx_step = rest is not None
        if self.dx_step:
            outs.append(("dx", None, rw(rest)))
        self.vec_grads, self.mat_fallback = {}, {}
        for pname, psym in cell.params.items():
            e = bw.params.get(pname)
            if e is None or isinstance(e, ZeroMatrix):
                continue
            if psym.shape[1] == 1:
                hit = self._find_in_buffers(e)
                if hit is not None:
                    self.vec_grads[pname] = ("G",) + hit
                else:
                    outs.append(("vec", pname, rw(e)))
                    self.vec_grads[pname] = ("step",)
                continue
            for n, term in enumerate(e.args if isinstance(e, MatAdd) else (e,)):
                vu = _outer(term)
                if vu is None:
                    raise KernelPlanError(f"gradient term {term} of {pname} is not v u^T")
                v, u = vu
                if any(s.weight == psym and canon(s.operand_expr) == canon(u)
                       and not isinstance(s.adjoint, ZeroMatrix) for s in slots):
                    continue                      # a whole-sequence product of its G buffer
                outs.append(("matL", (pname, n), rw(v)))
                outs.append(("matR", (pname, n), rw(u)))
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
            for j, (g, s) in enumerate(entries):
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
        for n, (kind, key, e) in enumerate(outs):
            if isinstance(e, MatrixSymbol) and e not in expr_of:
                aliases.append((kind, key, e))
            elif isinstance(e, MatrixSymbol):
                out_syms.append((kind, key, e))
            else:
                sym = Adjoint(f"_o{n}", *e.shape)
                expr_of[sym] = e
                assigns.append((sym, e))
                out_syms.append((kind, key, sym))
        g_entries = {}
        for kind, key, sym in out_syms:
            if kind == "G":
                g_entries.setdefault(key[0], []).append(sym)
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

        for kind, key, sym in aliases:
            if kind == "G":
                g_entries.setdefault(key[0], []).append(sym)
        need = set()
        for _, _, sym in out_syms + aliases:
            need.add(sym)
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
        for g in self.groups:
            g.bstage = lv(g.psym) if g.psym in need else None
        nst = 1 + max([0] + [level[d] for d, _ in assigns] + [lv(a) for _, _, a in aliases]
                      + [g.bstage for g in self.groups if g.bstage is not None])
        stages = []
        for k in range(nst):
            mine = [(d, e) for d, e in assigns if level[d] == k]
            defined = {d for d, _ in mine}
            later = set()
            for d, e in assigns:
                if level[d] > k:
                    later |= symbols_in(e)
            outset = {sym for _, _, sym in out_syms}
            outputs = [d for d, _ in mine if d in later or d in outset]
            st = Stage([g for g in self.groups if g.bstage == k], _free_inputs(mine), mine, outputs)
            st.outs = [(kind, key, sym) for kind, key, sym in out_syms if sym in defined]
            st.aliases = [(kind, key, sym) for kind, key, sym in aliases if lv(sym) == k]
            st.lean = _without_input_gradient(st, later)
            stages.append(st)
        return stages


def _coeff_factors(t):
    """(c, [M1, M2, ...]) for a product c M1 M2 ..., nested products flattened."""
    c, mats = sympy.Integer(1), [t]
    while len(mats) == 1 and isinstance(mats[0], MatMul):
        k, mats = mats[0].as_coeff_matrices()
        c *= k
    return c, list(mats)


def _left_factor(t):
    """W for a term c W^T v (c rational, W a weight), else None."""
    _, mats = _coeff_factors(t)
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
    c, mats = _coeff_factors(t)
    return scale(c, mats[1])


def _without_input_gradient(st, later):
    """The stage without the per-step dL/dx_t terms and the values only they need (run when
    dL/dxs is not asked for); None when the stage computes no such term. ``later``: what
    later stages read."""
    dx = {sym for kind, _, sym in st.outs if kind == "dx"}
    if not dx:
        return None
    need = {sym for kind, _, sym in st.outs if kind != "dx"} | (set(st.outputs) & later)
    for d, e in reversed(st.assigns):
        if d in need:
            need |= symbols_in(e)
    assigns = [(d, e) for d, e in st.assigns if d in need]
    return Stage(st.groups, _free_inputs(assigns), assigns, [d for d in st.outputs if d in need])


# ---------------------------------------------------------------------------------------
# jacobian program
# ---------------------------------------------------------------------------------------

class _Jacobian:
    """Leads and chain diagonals of every block d s_t / d s'_{t-1}, as vectors to compute.

    A block with dense terms (``diag(v) W``) is built from another state's block when that
    is cheaper, by the chain rule through the other state u of the same step:
    ``J_sr = diag(q) J_ur + R`` with ``q = d s_t/d u_t`` diagonal and the remainder
    ``R = J_sr - diag(q) J_ur`` computed exactly in the Hadamard-polynomial algebra (the
    LSTM's ``dh/dh_prev = diag(o tanh'(c)) dc/dh_prev + diag(tanh(c) sigma'(obar)) W_ho``:
    two dense products instead of four). Only blocks computed directly serve as sources."""

    def __init__(self, cell, rewriter):
        self.rewriter = rewriter
        self.assigns, self.outputs, self.terms, self.via = [], [], {}, {}
        direct = {(s, r): cell.jacobian_linmap(s, r) for s in cell.states for r in cell.states}
        chosen = {}
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
                    self.via[(s, r)] = (u, q)
        # a block whose source is itself built by the chain rule is built directly instead
        # (repeat: that only ever turns chain-rule blocks into direct ones)
        while any((u, r) in self.via for (s, r), (u, _) in self.via.items()):
            for (s, r), (u, _) in list(self.via.items()):
                if (u, r) in self.via:
                    del self.via[(s, r)]
                    chosen[(s, r)] = direct[(s, r)]
        for key, lm in chosen.items():
            terms = []
            for t in lm.terms:
                lead = self._vector(t.lead)
                chain = [self._vector(c) if isinstance(c, VecPoly) else c for c in t.chain]
                terms.append((lead, chain))
            self.terms[key] = terms
        self.via = {k: (u, self._vector(q)) for k, (u, q) in self.via.items()}
        self.inputs = _free_inputs(self.assigns)

    def _vector(self, vp: VecPoly):
        """A symbol holding the vector, or a rational constant when it is constant."""
        if vp.is_zero():
            return sympy.Integer(0)
        if len(vp.terms) == 1 and vp.terms[0][0] == ():
            c = vp.terms[0][1]
            return sympy.Rational(c.numerator, c.denominator)
        e = self.rewriter(vp.to_expr())
        for sym, old in self.assigns:
            if old == e:
                return sym
        sym = Var(f"_L{len(self.assigns)}", *e.shape)
        self.assigns.append((sym, e))
        self.outputs.append(sym)
        return sym
