"""The planner as named passes Draft -> Draft over frozen records: the pipeline is their
composition, each pass leaves its input unchanged, and each establishes its invariant."""
import dataclasses

import pytest
from sympy import MatMul, MatrixSymbol, ZeroMatrix

import derive
from derive.codegen import plan as P
from derive.codegen.exprs import symbols_in, time_invariant
from derive.codegen.ir import Activation, Group, Slot
from derive.core.primitives import Elementwise
from derive.core.symbols import Param

CELLS = ["rnn_relu", "lstm", "lstm_peephole", "gru", "gru_cho"]


def _drafts(name):
    """[draft before pass 0, after pass 0, ..., after the last pass] for the cell."""
    out = [P.start(derive.cell(name))]
    for step in P.PASSES:
        out.append(step(out[-1]))
    return out


@pytest.fixture(scope="module", params=CELLS)
def drafts(request):
    return _drafts(request.param)


def _after(drafts, step):
    return drafts[1 + P.PASSES.index(step)]


def _nodes(e):
    yield e
    for a in getattr(e, "args", ()):
        yield from _nodes(a)


def test_the_pipeline_is_the_named_passes_in_order():
    """build_plan is the composition of PASSES, in this order, applied to start(cell)."""
    assert [f.__name__ for f in P.PASSES] == [
        "name_subexpressions", "group_products", "pair_hoisted", "layout_gate_major",
        "attach_backward", "keep_values", "activate_in_place", "stage_forward", "place_values"]
    for name in ("lstm", "gru"):
        assert _drafts(name)[-1].plan == P.build_plan(derive.cell(name))


@pytest.mark.parametrize("k", range(len(P.PASSES)))
def test_each_pass_leaves_its_input_unchanged(drafts, k):
    """Running pass k on a draft leaves that draft equal to an independently built copy of
    it (a pass returns a new record, it changes nothing it was given)."""
    name = drafts[0].cell.name
    twin = _drafts(name)[k]
    d = drafts[k]
    P.PASSES[k](d)
    assert d == twin


def test_records_are_frozen(drafts):
    """Drafts, groups, slots and activations cannot be assigned to."""
    final = drafts[-1]
    g = final.groups[0]
    records = [final, g, g.slots[0]] + [s.activation for g in final.groups for s in g.slots
                                         if s.activation is not None][:1]
    for rec in records:
        field = dataclasses.fields(rec)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(rec, field, None)
    assert all(isinstance(x, (Group, Slot, Activation, P.Draft)) for x in records)
    assert all(isinstance(g.slots, tuple) for g in final.groups)


def test_name_subexpressions_names_every_call_argument_and_product_operand(drafts):
    """After name_subexpressions the argument of every f(.) and the vector operand of every
    product W u is a symbol."""
    for _, rhs in _after(drafts, P.name_subexpressions).eqs:
        for n in _nodes(rhs):
            if isinstance(n, Elementwise):
                assert isinstance(n.arg, MatrixSymbol), n
            if isinstance(n, MatMul):
                assert isinstance(n.args[-1], MatrixSymbol), n


def test_group_products_leaves_no_weight_product_in_the_step(drafts):
    """After group_products no equation multiplies by a matrix parameter (each product is a
    slot symbol), groups[k].index == k, and each slot lives in the group it names."""
    d = _after(drafts, P.group_products)
    for _, rhs in d.eqs:
        for n in _nodes(rhs):
            if isinstance(n, MatMul):
                assert not any(isinstance(m, Param) and m.shape[1] != 1 for m in n.args), n
    assert [g.index for g in d.groups] == list(range(len(d.groups)))
    syms = [s.sym for g in d.groups for s in g.slots]
    assert len(syms) == len(set(syms))
    assert all(s.group == g.index and s.uses >= 1 for g in d.groups for s in g.slots)
    assert all(g.hoisted == (g.stage == -1) for g in d.groups)


def test_pair_hoisted_pairs_symmetrically_and_folds_only_constants(drafts):
    """partner and partner_of are inverse maps between per-step and hoisted slots; a paired
    hoisted slot no longer appears in the equations; every folded bias is time-invariant."""
    d = _after(drafts, P.pair_hoisted)
    slot_of = d.slot_of
    used = set().union(*(symbols_in(rhs) for _, rhs in d.eqs))
    for s in slot_of.values():
        if s.partner is not None:
            h = slot_of[s.partner]
            assert h.partner_of == s.sym and d.groups[h.group].hoisted
            assert not d.groups[s.group].hoisted and h.sym not in used
        assert all(time_invariant(t) for t in s.bias)
    if d.cell.name in ("lstm", "gru"):
        assert any(s.partner is not None for s in slot_of.values())


def test_layout_puts_paired_rows_first_and_contiguous(drafts):
    """In a per-step group the first n_paired slots are the paired ones, and their partners
    are rows pair_offset .. pair_offset + n_paired of the hoisted group, in the same order;
    slots activated in place with the same function are adjacent."""
    d = _after(drafts, P.layout_gate_major)
    for g in d.groups:
        if g.hoisted:
            continue
        assert all(s.partner is not None for s in g.slots[:g.n_paired])
        assert all(s.partner is None for s in g.slots[g.n_paired:])
        if g.n_paired:
            hg = d.groups[g.pair_group]
            rows = hg.slots[g.pair_offset:g.pair_offset + g.n_paired]
            assert [s.sym for s in rows] == [s.partner for s in g.slots[:g.n_paired]]
        for part in (g.slots[:g.n_paired], g.slots[g.n_paired:]):
            fs = [d.activations[s.sym].function for s in part if s.sym in d.activations]
            assert all(fs.index(f) == k or fs[k - 1] == f for k, f in enumerate(fs))


def test_attach_backward_gives_every_slot_an_adjoint_and_buffers(drafts):
    """After attach_backward every slot has an adjoint; a group has a G buffer exactly when
    one of its adjoints is nonzero, and a per-step one of those has a product symbol."""
    d = _after(drafts, P.attach_backward)
    for g in d.groups:
        assert all(s.adjoint is not None for s in g.slots)
        nonzero = any(not isinstance(s.adjoint, ZeroMatrix) for s in g.slots)
        assert (g.buffer is not None) == nonzero
        assert (g.psym is not None) == (nonzero and not g.hoisted)
    assert d.backward.groups == d.groups


def test_activate_in_place_drops_exactly_the_activated_equations(drafts):
    """An activated slot's pre-activation is not kept for backward, and neither it nor its
    output is computed by the math any more; every other candidate keeps its equations."""
    before, d = _after(drafts, P.keep_values), _after(drafts, P.activate_in_place)
    defined = {v for v, _ in d.eqs}
    acts = {s.sym: s.activation for g in d.groups for s in g.slots if s.activation}
    for sym, act in before.activations.items():
        if sym in acts:
            assert act == acts[sym] and act.pre not in d.stored
            assert act.pre not in defined and act.output not in defined
        else:
            assert act.pre in defined and act.output in defined
    assert all(g.gate_major == any(s.sym in acts for s in g.slots) for g in d.groups)
    if d.cell.name == "rnn_relu":
        assert not acts


def test_place_values_binds_stages_to_the_final_groups(drafts):
    """Every group a stage of the plan runs is the plan's own record of that group, and the
    input-gradient groups are indices of input groups with a G buffer."""
    plan = drafts[-1].plan
    stages = (plan.pre, *plan.fwd, *plan.bwd, *(st.lean for st in plan.bwd if st.lean))
    for st in stages:
        for g in st.groups:
            assert g == plan.groups[g.index]
    for k in plan.dx_groups:
        assert plan.groups[k].hoisted and plan.groups[k].buffer is not None
