"""The kernel plan's data: slots, groups, stages, backward outputs, the whole plan.

The planner (:mod:`derive.codegen.plan`) builds these; the emitter
(:mod:`derive.codegen.module`) only reads them. Every record is frozen and holds no list,
dict or set: a planner pass returns new records (``dataclasses.replace``), sequences are
tuples, mappings are :class:`FrozenMap`; records refer to each other by index (a group) or
symbol (a slot); a backward output is one typed record per kind, not a string-tagged tuple.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sympy import MatrixSymbol

from derive.codegen.exprs import matrix_factors


@dataclass(frozen=True)
class FrozenMap(Mapping):
    """An immutable mapping: ``pairs`` ((key, value), ...) with distinct keys, in order.
    Equal when the pairs are equal in order; hashable when the values are. ``set`` and
    ``with_default`` return a new map (the key replaced in place or appended)."""
    pairs: tuple = ()

    def __post_init__(self):
        index = dict(self.pairs)
        if len(index) != len(self.pairs):
            raise ValueError("FrozenMap: a key occurs twice")
        object.__setattr__(self, "_index", index)     # lookup only, never handed out

    @classmethod
    def of(cls, mapping) -> "FrozenMap":
        """The frozen copy of a mapping (its insertion order kept)."""
        return cls(tuple(mapping.items()))

    def __getitem__(self, key):
        return self._index[key]

    def __iter__(self):
        return (k for k, _ in self.pairs)

    def __len__(self):
        return len(self.pairs)

    def __contains__(self, key):
        return key in self._index

    def get(self, key, default=None):
        return self._index.get(key, default)

    def set(self, key, value) -> "FrozenMap":
        """This map with ``key`` bound to ``value``."""
        if key not in self._index:
            return FrozenMap(self.pairs + ((key, value),))
        return FrozenMap(tuple((k, value if k == key else v) for k, v in self.pairs))

    def with_default(self, key, value) -> "FrozenMap":
        """This map with ``key`` bound to ``value`` unless it is bound already."""
        return self if key in self._index else FrozenMap(self.pairs + ((key, value),))

@dataclass(frozen=True)
class Slot:
    """One product ``weight @ operand`` of the forward step. Passes set its later fields
    with ``dataclasses.replace``; other records refer to a slot by its ``sym``."""
    weight: object              # Param, or a product of Params
    operand: MatrixSymbol       # named operand
    operand_expr: object        # the operand as the cell wrote it (for matching gradients)
    group: int
    sym: MatrixSymbol           # stands for the product in the step's equations
    uses: int = 0
    bias: tuple = ()                              # folded time-invariant terms (hoisted)
    partner: MatrixSymbol | None = None           # sym of the hoisted slot added into this one
    partner_of: MatrixSymbol | None = None        # sym of the per-step slot this hoisted one joins
    adjoint: object = None                        # cotangent of the product (backward)
    activation: "Activation | None" = None        # set when the slot is activated in place

    @property
    def weight_params(self) -> tuple:
        return tuple(m.name for m in matrix_factors(self.weight))


@dataclass(frozen=True)
class Activation:
    """``output = function(pre)`` with ``pre = slot + sum(extra)``, computed in place in the
    slot's block of its group's gate-major buffer."""
    function: type              # the Elementwise primitive
    pre: MatrixSymbol           # the pre-activation (never materialised separately)
    output: MatrixSymbol        # the activation, a forward value
    extra: tuple                # terms added to the slot before the activation


@dataclass(frozen=True)
class Group:
    """The slots sharing one operand: one stacked matrix product. ``index`` is its position
    in the plan's ``groups``."""
    index: int
    operand: MatrixSymbol
    operand_expr: object
    slots: tuple
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
    def widths(self) -> tuple:
        """Row count (H or D) of each slot's product, in layout order."""
        return tuple(s.sym.shape[0] for s in self.slots)


@dataclass(frozen=True)
class Stage:
    """Matrix products of ``groups`` then the math function ``assigns`` -> ``outputs``.
    A backward stage also lists the outputs it computes (``outs``), the outputs that are
    values the driver already holds (``aliases``) and, when it computes per-step dL/dx_t
    terms, the same stage without them (``lean``, run when dL/dxs is not asked for)."""
    groups: tuple
    inputs: tuple           # symbols the math function reads
    assigns: tuple          # ((symbol, expr), ...) in evaluation order
    outputs: tuple          # symbols it returns
    outs: tuple = ()
    aliases: tuple = ()
    lean: "Stage | None" = None


# -- backward outputs: where one value the backward step computes goes ------------------

@dataclass(frozen=True)
class Output:
    """A value of the backward step (an expression until staged, then its symbol)."""
    value: object


@dataclass(frozen=True)
class SlotAdjoint(Output):
    """Row block ``row`` of the G buffer ``buffer`` at step t: a slot's adjoint."""
    buffer: int
    row: int


@dataclass(frozen=True)
class PrevDelta(Output):
    """dL/ds_{t-1} of one state (the next iteration's delta)."""
    state: str


@dataclass(frozen=True)
class InputDelta(Output):
    """The per-step terms of dL/dx_t (computed only when dL/dxs is asked for)."""


@dataclass(frozen=True)
class VecGrad(Output):
    """A vector parameter's gradient contribution at step t, summed over the batch."""
    param: str


@dataclass(frozen=True)
class OuterLeft(Output):
    """v of the term n of a matrix parameter's gradient sum_t v u^T (per step)."""
    param: str
    term: int


@dataclass(frozen=True)
class OuterRight(Output):
    """u of the term n of a matrix parameter's gradient sum_t v u^T (per step)."""
    param: str
    term: int


# -- how a vector parameter's gradient is summed -----------------------------------------

@dataclass(frozen=True)
class FromBuffer:
    """The gradient is the batch-and-time sum of row block ``row`` of G buffer ``buffer``."""
    buffer: int
    row: int


@dataclass(frozen=True)
class PerStep:
    """The gradient is accumulated per step from a :class:`VecGrad` output."""


@dataclass(frozen=True)
class JacobianProgram:
    """Vectors to compute (``assigns`` -> ``outputs`` from ``inputs``) and, per block
    (state, prev), its terms ``[(lead, chain)]`` and optionally ``via``: (other state u, q)
    for J_sr = diag(q) J_ur + terms."""
    inputs: tuple
    assigns: tuple
    outputs: tuple
    terms: FrozenMap            # (state, prev) -> ((lead, (chain, ...)), ...)
    via: FrozenMap              # (state, prev) -> (u, q)
    reads: frozenset = frozenset()  # forward values it reads


@dataclass(frozen=True)
class Backward:
    """The backward program: the groups with their G buffer, product symbol and backward
    stage set, the stages, and how each gradient is put together."""
    groups: tuple
    stages: tuple
    buffers: tuple              # G buffers: the slot symbols of each, in layout order
    prev_out: FrozenMap         # state -> True, or None when dL/ds_{t-1} is zero
    vec_grads: FrozenMap        # param -> FromBuffer | PerStep
    mat_fallback: FrozenMap     # param -> (term numbers, ...) summed over steps as v u^T
    dx_groups: tuple            # indices of the input groups whose G_b @ W_stack is in dL/dxs
    dx_step: bool               # other terms of delta x_t, computed per step (InputDelta)
    reads: frozenset = frozenset()  # forward values it reads


@dataclass(frozen=True)
class Plan:
    cell: object
    output_state: str
    groups: tuple
    pre: Stage                  # before the loop, over whole sequences
    fwd: tuple                  # forward stages
    stored: tuple               # forward Vars kept for backward / jacobian (not states)
    state_vars: FrozenMap       # state name -> Var
    bwd: tuple                  # backward stages
    buffers: tuple              # G buffers: the slot symbols of each, in layout order
    prev_out: FrozenMap         # state -> True, or None when dL/ds_{t-1} is zero
    vec_grads: FrozenMap        # param -> FromBuffer | PerStep
    mat_fallback: FrozenMap     # param -> (term numbers, ...) summed over steps as v u^T
    jac: JacobianProgram
    dx_groups: tuple            # indices of the input groups whose G_b @ W_stack is in dL/dxs
    dx_step: bool               # other terms of delta x_t, computed per step (InputDelta)
    names: FrozenMap = FrozenMap()
    locations: FrozenMap = FrozenMap()   # symbol -> Location (place_values)

    @property
    def jac_terms(self):
        return self.jac.terms

    @property
    def jac_via(self):
        return self.jac.via
