"""The kernel plan as an immutable IR: every record every pass returns is a frozen dataclass
holding no list, dict or set (mappings are FrozenMap), the planner modules define no class
with mutable state, and planning is a pure function of the cell."""
import dataclasses
import inspect
from functools import reduce

import pytest
from sympy import MatrixSymbol

import derive
from derive.codegen import ir, locations, module, plan as P, plan_backward as PB, plan_jacobian
from derive.codegen.ir import FrozenMap

CELLS = derive.cells()


def _mutable_parts(obj, path="plan", seen=None):
    """Paths of the list / dict / set values (and non-frozen codegen records) reachable from
    ``obj`` through codegen records, tuples, frozensets and FrozenMaps. The cell, its
    derived step and SymPy expressions are inputs, not walked."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, (list, dict, set, bytearray)) or type(obj).__name__ == "mappingproxy":
        return [f"{path}: {type(obj).__name__}"]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type) \
            and type(obj).__module__.startswith("derive.codegen"):
        bad = [] if type(obj).__dataclass_params__.frozen else [f"{path}: not frozen"]
        for f in dataclasses.fields(obj):
            bad += _mutable_parts(getattr(obj, f.name), f"{path}.{f.name}", seen)
        return bad
    if isinstance(obj, (tuple, frozenset)):
        return [b for k, x in enumerate(obj) for b in _mutable_parts(x, f"{path}[{k}]", seen)]
    return []


def _drafts(cell):
    out = [P.start(cell)]
    for step in P.PASSES:
        out.append(step(out[-1]))
    return out


def _around_attach(cell):
    """The drafts of ``cell`` just before and just after attach_backward."""
    k = P.PASSES.index(P.attach_backward)
    drafts = _drafts(cell)
    return drafts[k], drafts[k + 1]


def _backward_drafts(d):
    """The backward drafts of the draft ``d`` that attach_backward receives, before and
    after each of BACKWARD_PASSES."""
    bw = d.cell.backward()
    out = [PB.BackwardDraft(d.cell, bw, d.table, PB.attach_adjoints(d.cell, bw, d.groups))]
    for step in PB.BACKWARD_PASSES:
        out.append(step(out[-1]))
    return out


def test_the_walk_finds_mutable_parts():
    """The checker itself: a dict, a list inside a tuple and a non-frozen record are found."""
    @dataclasses.dataclass
    class Loose:
        x: int = 0
    Loose.__module__ = "derive.codegen.fake"
    assert _mutable_parts({"a": 1}) and _mutable_parts((1, [2]))
    assert _mutable_parts(Loose()) == ["plan: not frozen"]
    assert _mutable_parts(FrozenMap((("a", (1, 2)),))) == []
    assert _mutable_parts(FrozenMap((("a", [1]),)))


@pytest.mark.parametrize("name", CELLS)
def test_every_pass_returns_frozen_records_without_mutable_fields(name):
    """Each draft after each of PASSES (the plan, its stages, groups, slots, outputs, the
    location table) and after each of BACKWARD_PASSES, and the Kernel, hold no list, dict
    or set at any depth, and every codegen record in them is frozen."""
    drafts = _drafts(derive.cell(name))
    for k, d in enumerate(drafts):
        assert _mutable_parts(d, f"draft{k}") == []
    for k, b in enumerate(_backward_drafts(drafts[P.PASSES.index(P.attach_backward)])):
        assert _mutable_parts(b, f"backward{k}") == []
    kernel = module.generate(derive.cell(name))
    assert dataclasses.fields(kernel) and type(kernel).__dataclass_params__.frozen
    assert isinstance(kernel.math, FrozenMap)
    hash(drafts[-1].plan)                   # every field, at every depth, is hashable


@pytest.mark.parametrize("name", ["lstm", "gru", "lstm_peephole"])
def test_planning_twice_gives_equal_plans(name):
    """The pipeline is a function of the cell: run twice on one cell it gives equal plans
    with equal hashes, and the backward program equals the fold of its passes."""
    cell = derive.cell(name)
    first, second = P.build_plan(cell), P.build_plan(cell)
    assert first == second and first is not second and hash(first) == hash(second)
    before, d = _around_attach(cell)
    b = _backward_drafts(before)[-1]
    assert (b.stages, b.prev_out, b.vec_grads, b.reads) == (
        d.backward.stages, d.backward.prev_out, d.backward.vec_grads, d.backward.reads)


def test_planner_modules_define_no_mutable_class():
    """Every class the planner modules define is a frozen dataclass (or an error type): no
    builder, namer or rewriter object carries state from one call to the next."""
    for mod in (ir, P, PB, plan_jacobian, locations):
        for name, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ != mod.__name__ or issubclass(cls, Exception):
                continue
            assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, \
                f"{mod.__name__}.{name}"


def test_frozen_map_is_an_immutable_mapping():
    """FrozenMap reads as a mapping, cannot be assigned to, returns new maps from set and
    with_default (the original unchanged), rejects a repeated key, compares in order."""
    m = FrozenMap.of({"a": 1, "b": 2})
    assert dict(m) == {"a": 1, "b": 2} and list(m) == ["a", "b"] and len(m) == 2
    assert m["a"] == 1 and m.get("z", 0) == 0 and "b" in m and "z" not in m
    with pytest.raises(TypeError):
        m["c"] = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.pairs = ()
    assert m.set("a", 5).pairs == (("a", 5), ("b", 2)) and m.set("c", 3)["c"] == 3
    assert m.with_default("a", 9) is m and m.with_default("c", 9)["c"] == 9
    assert m == FrozenMap((("a", 1), ("b", 2))) and dict(m) == {"a": 1, "b": 2}
    assert m != FrozenMap((("b", 2), ("a", 1)))
    assert hash(m) == hash(FrozenMap.of({"a": 1, "b": 2}))
    with pytest.raises(ValueError, match="twice"):
        FrozenMap((("a", 1), ("a", 2)))


@pytest.mark.parametrize("name", ["lstm", "gru_cho", "rnn_tanh"])
def test_rewrite_reports_every_forward_value_it_reads(name):
    """rewrite(table, e) is pure (same answer twice, the table unchanged) and its reads
    cover every forward Var in its result; the backward program's reads cover every forward
    value its stages read, and the draft's refs are the two programs' reads."""
    _, d = _around_attach(derive.cell(name))
    fwd = {v for v, _ in d.eqs}
    table = d.table.pairs
    for _, e in d.cell.backward().assignments:
        out, reads = PB.rewrite(d.table, e)
        assert PB.rewrite(d.table, e) == (out, reads) and d.table.pairs == table
        used = {s for s in _leaves(out) if s in fwd}
        assert used <= reads <= fwd, (used - reads, reads - fwd)
    for st in d.backward.stages:
        assert {s for _, e in st.assigns for s in _leaves(e) if s in fwd} <= d.backward.reads
    assert {s for _, e in d.jac.assigns for s in _leaves(e) if s in fwd} <= d.jac.reads
    assert d.refs == d.backward.reads | d.jac.reads and d.refs <= fwd


def test_location_shape_kinds():
    """Every location's shape is a declared kind; a kind outside SHAPES is rejected; the
    kind follows the symbol's shape (scalar 1 x 1, vector n x 1, matrix n x m)."""
    from derive.core.symbols import H
    assert set(locations.SHAPES) == {"scalar", "vector", "matrix"}
    assert locations.shape_kind(MatrixSymbol("a", 1, 1)) == "scalar"
    assert locations.shape_kind(MatrixSymbol("v", H, 1)) == "vector"
    assert locations.shape_kind(MatrixSymbol("M", H, H)) == "matrix"
    with pytest.raises(ValueError, match="shape kind 'tensor'"):
        locations.Location("local", H, shape="tensor")


def _leaves(e):
    if isinstance(e, MatrixSymbol):
        yield e
    for a in getattr(e, "args", ()):
        yield from _leaves(a)


def test_backward_passes_are_named_and_documented():
    """BACKWARD_PASSES and PASSES: each a named function with a docstring; the backward
    fold applied to a draft gives the program attach_backward stores."""
    for step in P.PASSES + PB.BACKWARD_PASSES:
        assert step.__name__ and not step.__name__.startswith("_") and step.__doc__
    before, d = _around_attach(derive.cell("lstm"))
    b = reduce(lambda x, f: f(x), PB.BACKWARD_PASSES, _backward_drafts(before)[0])
    assert b.groups == d.backward.groups
