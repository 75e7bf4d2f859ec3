"""The kernel plan's IR: frozen records, typed backward outputs, one location table the
emitter reads, and the generated API as a real module copied verbatim."""
import dataclasses

import numpy
import pytest

import derive
from derive.codegen import api_template, api_torch
from derive.codegen.copied import module_body
from derive.codegen.ir import Output, Stage
from derive.codegen.locations import Location
from derive.codegen.module import generate
from derive.codegen.source import module_source

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "lstm_peephole", "lstm_peephole_full", "gru", "gru_cho"]


def _plan(name):
    return generate(derive.cell(name)).plan


@pytest.mark.parametrize("name", CELLS)
def test_plan_records_are_frozen(name):
    """The plan, its stages, their outputs and the location table cannot be changed after
    the planner built them (a pass returns a new record, dataclasses.replace)."""
    plan = _plan(name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.stored = []
    for st in (plan.pre, *plan.fwd, *plan.bwd):
        assert isinstance(st, Stage) and isinstance(st.assigns, tuple)
        with pytest.raises(dataclasses.FrozenInstanceError):
            st.lean = None
        for out in st.outs + st.aliases:
            assert isinstance(out, Output) and type(out) is not Output
    loc = next(iter(plan.locations.values()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        loc.kind = "local"


@pytest.mark.parametrize("name", CELLS)
def test_location_table_covers_every_value_the_emitter_reads(name):
    """Every symbol a math function of the forward loop, the backward loop or the Jacobian
    reads, and every backward output, has a location with code for that context; every
    value forward keeps has the code of what it stores; every shape kind is declared."""
    plan = _plan(name)
    locs = plan.locations
    assert all(isinstance(v, Location) for v in locs.values())
    # batched values are vectors today; only a matrix parameter is a matrix
    assert {v.shape for v in locs.values() if v.kind != "param"} == {"vector"}
    assert all(v.shape == ("matrix" if s.shape[1] != 1 else "vector")
               for s, v in locs.items() if v.kind == "param")
    for s in plan.pre.inputs:
        assert locs[s].sequence is not None, s
    for st in plan.fwd:
        for s in st.inputs:
            assert locs[s].step is not None, s
        for g in st.groups:
            assert locs[g.operand].step is not None
    for st in plan.bwd + tuple(s.lean for s in plan.bwd if s.lean is not None):
        for s in st.inputs:
            assert locs[s].cached is not None, s
        for out in st.outs + st.aliases:
            assert locs[out.value].cached is not None, out
    for s in plan.jac.inputs:
        assert locs[s].cached is not None, s
    for v in plan.stored:
        assert locs[v].kept is not None, v
    for g in plan.groups:
        if g.buffer is not None:
            assert locs[g.operand].sequence is not None


def test_location_kinds_follow_the_plan():
    """LSTM: the gates activated in place live in the gate-major buffer, c is a state, the
    parameters and the input are where the driver receives them."""
    plan = _plan("lstm")
    kind = {s.name: loc.kind for s, loc in plan.locations.items()}
    assert {kind[g] for g in "ifgo"} == {"gate"}
    assert kind["c"] == "state" and kind["x"] == "input" and kind["h_prev"] == "prev_state"
    assert kind["W_hi"] == "param"


def test_generated_api_is_the_template_verbatim():
    """The API functions of a generated module are api_template.py (and api_torch.py for a
    cell with a [torch] table) as written, the torch module's name filled in."""
    src = module_source(generate(derive.cell("lstm")))
    assert module_body(api_template) in src
    assert module_body(api_torch).replace("{module}", "LSTM") in src
    plain = module_source(generate(derive.cell("lstm_peephole")))
    assert module_body(api_template) in plain and "def params_from_torch" not in plain


def test_api_template_imports_and_its_functions_behave(monkeypatch):
    """The template as a module: bound to a cell's constants and a toy driver (h = x + h_prev),
    step/forward/backward/step_jacobian check their input and return what the driver gives."""
    calls = []

    def toy_forward(p, xs, s0):
        calls.append(xs.shape)
        S = numpy.concatenate([s0[0][None], s0[0][None] + numpy.cumsum(xs, axis=0)])
        return {"cell": "toy", "xs": xs, "S": (S,), "V": {}}

    def toy_backward(p, c, dhs, ds, want_dx):
        acc = numpy.cumsum(dhs[::-1], axis=0)[::-1] + ds[0]
        return {}, (acc[0].copy(),), (acc if want_dx else None)

    for name, value in {"CELL": "toy", "STATE": ("h",), "STATE_SHAPES": {"h": ("H",)}, "OUTPUT": "h", "PARAMS": {},
                        "_KEPT": {}, "_forward": toy_forward, "_backward": toy_backward,
                        "_jacobian": lambda p, x, s0: numpy.ones((x.shape[0], 1, 1))}.items():
        monkeypatch.setattr(api_template, name, value, raising=False)
    monkeypatch.setattr(api_template, "_check_params",
                        lambda params, spec: ({}, {"H": 3, "D": 3}, numpy.float64))
    xs = numpy.arange(12.0).reshape(2, 2, 3)
    hs, cache = api_template.forward({}, xs)
    numpy.testing.assert_array_equal(hs, numpy.cumsum(xs, axis=0))
    assert cache["xs"] is not xs                # the cache owns a copy
    (h1,) = api_template.step({}, xs[0], (numpy.ones((2, 3)),))
    numpy.testing.assert_array_equal(h1, xs[0] + 1)
    grads, (d0,), dxs = api_template.backward({}, cache, numpy.ones((2, 2, 3)), return_dxs=True)
    numpy.testing.assert_array_equal(d0, 2 * numpy.ones((2, 3)))
    assert dxs.shape == xs.shape
    assert len(api_template.backward({}, cache, numpy.ones((2, 2, 3)))) == 2
    with pytest.raises(ValueError, match="xs"):
        api_template.forward({}, numpy.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="dhs"):
        api_template.backward({}, cache, numpy.ones((3, 2, 3)))


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_building_a_plan_leaves_the_cell_unchanged(name):
    """Planning reads the cell and returns new records: a second plan of the same cell
    gives the same generated module byte for byte."""
    from derive.codegen.module import _generate
    cell = derive.cell(name)
    eqs = [(e.lhs, e.rhs) for e in cell.equations]
    first = module_source(_generate(cell))
    assert [(e.lhs, e.rhs) for e in cell.equations] == eqs
    assert module_source(_generate(cell)) == first
