"""Random user cells, drawn by Hypothesis, through the kernel generator.

Each drawn spec mixes what user cells do: products with H or D rows, products of weights,
rational coefficients and negated sums, Hadamard products, the four activations, named
values computed before the loop or in the step, one or two states, tied weights. Every cell
goes through ``check_user_cell`` (tests/kernels/test_kernels.py): one step against SymPy's
entry-by-entry evaluation of the spec, backward (every parameter, the initial states,
dL/dxs) and step_jacobian against central finite differences, and the written module
bitwise against the run-time route. A failure shrinks to a small spec, printed in full.

Examples per run: a quarter of the Hypothesis profile's (5 dev, 25 ci, 250 thorough). The
parameters are scaled down (entries below 0.3) so that finite differences stay accurate in
cells whose values grow fast (products of products); the kernels' own rounding is far
below the tolerance.
"""
import tempfile

import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from derive.codegen.plan import KernelPlanError
from derive.spec.tables import SpecError, parse_spec
from test_kernels import check_user_cell

COEFFICIENTS = ["", "2 * ", "0.5 * ", "-", "-0.5 * "]
FUNCTIONS = ["tanh", "sigmoid", "relu"]


@st.composite
def cell_specs(draw, max_named=3, depth=2):
    """The text of a valid cell spec (without its [cell] name line)."""
    two = draw(st.booleans())
    params = {}

    def param(shape):
        same = [n for n, s in params.items() if s == shape]
        if same and draw(st.integers(0, 3)) == 0:
            return draw(st.sampled_from(same))            # a tied weight
        name = f"P{len(params)}"
        params[name] = shape
        return name

    avail = {"H": ["h_prev"] + (["c_prev"] if two else []), "D": ["x"]}
    used = set()

    def leaf(dim):
        v = draw(st.sampled_from(avail[dim]))
        used.add(v)
        return v

    def wrap(e):
        return e if e.isidentifier() else f"({e})"

    def expr(dim, d):
        kind = draw(st.sampled_from(["leaf", "product", "product", "sum", "hadamard",
                                     "function", "scaled"] if d > 0 else ["leaf", "product"]))
        if kind == "leaf":
            return leaf(dim)
        src = draw(st.sampled_from(["H", "D"]))
        if kind == "product":
            operand = expr(src, d - 1) if d > 0 else leaf(src)
            if d > 0 and draw(st.integers(0, 4)) == 0:            # a product of weights
                mid = draw(st.sampled_from(["H", "D"]))
                return f"{param((dim, mid))} @ {param((mid, src))} @ {wrap(operand)}"
            return f"{param((dim, src))} @ {wrap(operand)}"
        if kind == "sum":
            terms = [draw(st.sampled_from(COEFFICIENTS)) + wrap(expr(dim, d - 1))
                     for _ in range(draw(st.integers(2, 3)))]
            if draw(st.booleans()):
                terms.append(param((dim,)))                       # a bias
            return " + ".join(terms)
        if kind == "hadamard":
            return f"{wrap(expr(dim, d - 1))} * {wrap(expr(dim, d - 1))}"
        if kind == "function":
            return f"{draw(st.sampled_from(FUNCTIONS))}({expr(dim, d - 1)})"
        return f"{param((dim,))} * {wrap(expr(dim, d - 1))}"

    equations = []
    for k in range(draw(st.integers(0, max_named))):
        dim = draw(st.sampled_from(["H", "D"]))
        equations.append((f"m{k}", expr(dim, depth)))
        avail[dim].append(f"m{k}")
    states = ["h", "c"] if two else ["h"]
    for s in reversed(states):
        e = expr("H", depth + 1)
        for name, _ in equations:                 # every named value is used somewhere
            if name not in used and not any(name in rhs for _, rhs in equations):
                used.add(name)
                e = f"{wrap(e)} + " + (name if name in avail["H"] else f"{param(('H', 'D'))} @ {name}")
        if f"{s}_prev" not in e and draw(st.booleans()):
            e = f"{wrap(e)} + 0.5 * {s}_prev"
        equations.append((s, e))
        avail["H"].append(s)
    lines = [f"states = [{', '.join(repr(s) for s in states)}]".replace("'", '"'), "[params]"]
    lines += [f'{n} = [{", ".join(chr(34) + d + chr(34) for d in shape)}]' for n, shape in params.items()]
    lines += ["[equations]"] + [f'{n} = "{rhs}"' for n, rhs in equations]
    return "\n".join(lines) + "\n"


@settings(max_examples=max(5, settings.default.max_examples // 4), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(cell_specs())
def test_random_user_cells_against_the_oracles(body):
    """Every kernel of a random valid cell agrees with SymPy's evaluation, finite
    differences and the written module (see the module docstring)."""
    note(body)
    try:
        cell = parse_spec('[cell]\nname = "random_cell"\n' + body, "random_cell.toml")
    except SpecError as exc:
        assume("derivation size" not in str(exc))            # too large to derive: skip
        raise
    try:
        with tempfile.TemporaryDirectory() as tmp:
            check_user_cell(cell, tmp, scale=0.6)
    except KernelPlanError as exc:
        # the one construct the drawn specs can hit that the generator refuses by design
        assume("no parameter has a dimension H" not in str(exc))
        raise


def test_the_strategy_reaches_the_interesting_constructs():
    """The drawn specs do contain D-row products, weight products, negations and two states
    (a strategy that never draws them would make the test above vacuous)."""
    seen = set()

    @settings(max_examples=300, deadline=None, database=None)
    @given(cell_specs())
    def collect(body):
        if '["D", "H"]' in body or '["D", "D"]' in body:
            seen.add("D rows")
        if body.count("@") >= 2 and any(f"] @ P" in line or "@ P" in line for line in body.splitlines()):
            seen.add("weight product")
        if "-" in body.replace("h_prev", "").replace("c_prev", ""):
            seen.add("negation")
        if '"c"' in body:
            seen.add("two states")
    collect()
    assert seen == {"D rows", "weight product", "negation", "two states"}
