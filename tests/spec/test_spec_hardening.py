"""Spec hardening (issue 12): cell names that would break ``from kernels import <name>`` or
shadow a generated module's own names are spec errors at the name's position, and the
nesting limit is exactly what its message says."""
from __future__ import annotations

import keyword
import re

import pytest

import derive
from derive.codegen.source import module_names
from derive.spec.tables import SpecError, parse_spec
from derive.spec.lang import MAX_CALL_DEPTH, MAX_DEPTH

SPEC = """[cell]
name = "{name}"
states = ["h"]
[params]
W = ["H", "H"]
[equations]
h = "{expr}"
"""

_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
RESERVED_CELL_NAMES = sorted({n for n in set(keyword.kwlist) | set(keyword.softkwlist)
                              | set(module_names()) | {"np", "numpy", "type"} if _IDENT.match(n)})


@pytest.mark.parametrize("name", RESERVED_CELL_NAMES)
def test_reserved_cell_name_is_a_spec_error_at_the_name(name):
    """Keywords, soft keywords and every public top-level name of a generated module or of
    kernels/__init__.py: SpecError at file:2:8, the name's value."""
    with pytest.raises(SpecError, match=rf"^cells/x\.toml:2:8: cell name '{name}' is reserved"):
        parse_spec(SPEC.format(name=name, expr="tanh(W @ h_prev)"), "cells/x.toml")


def test_reserved_cell_names_include_the_issue_examples():
    for name in ("import", "lambda", "match", "case", "type", "numpy", "STATE", "PARAMS", "step",
                 "forward", "backward", "init_params", "step_jacobian", "CELLS", "sigmoid"):
        assert name in RESERVED_CELL_NAMES


def test_builtin_cell_names_are_not_reserved():
    assert not set(derive.cells()) & set(RESERVED_CELL_NAMES)


def _nested(kind, n):
    """n levels of one kind; calls beyond MAX_CALL_DEPTH (a limit of their own) are topped up
    with parentheses so that the depth limit is what is tested."""
    core = "W @ h_prev"
    if kind == "minus":
        return "-" * n + core
    if kind == "calls":
        calls = min(n, MAX_CALL_DEPTH)
        return "tanh(" * calls + "(" * (n - calls) + core + ")" * n
    return "(" * n + core + ")" * n


@pytest.mark.parametrize("kind", ["parens", "calls", "minus"])
def test_nesting_limit_matches_its_message(kind):
    """MAX_DEPTH levels of parentheses, calls or unary minus are accepted, MAX_DEPTH + 1 are
    rejected with a message naming MAX_DEPTH (the old parser rejected MAX_DEPTH parentheses
    and MAX_DEPTH / 2 calls)."""
    for n in (MAX_DEPTH - 1, MAX_DEPTH):
        parse_spec(SPEC.format(name="deep", expr=_nested(kind, n)))
    with pytest.raises(SpecError, match=rf"nested deeper than {MAX_DEPTH} levels"):
        parse_spec(SPEC.format(name="deep", expr=_nested(kind, MAX_DEPTH + 1)))


def test_nesting_levels_of_mixed_kinds_add_up():
    calls = MAX_CALL_DEPTH // 2
    groups = MAX_DEPTH // 3
    mixed = ("-(tanh(" * calls + "-((" * (groups - calls) + "-" * (MAX_DEPTH % 3) + "W @ h_prev"
             + "))" * groups)
    parse_spec(SPEC.format(name="deep", expr=mixed))
    with pytest.raises(SpecError, match="nested deeper"):
        parse_spec(SPEC.format(name="deep", expr="-" + mixed))


def test_nested_function_calls_are_limited_where_generation_stays_fast():
    """Each nested activation doubles the derivative (the product of the f'(u) factors):
    MAX_CALL_DEPTH nested calls are accepted and generate a module in seconds, one more is
    a located error that names the limit."""
    import time

    from derive.codegen.source import module_source
    from derive.codegen.module import generate

    def spec(depth):
        rhs = "tanh(" * depth + "W @ x + U @ h_prev" + ")" * depth
        return ('[cell]\nname = "deep"\nstates = ["h"]\n[params]\nW = ["H", "D"]\nU = ["H", "H"]\n'
                f'[equations]\nh = "{rhs}"\n')
    start = time.process_time()
    cell = parse_spec(spec(MAX_CALL_DEPTH), "deep.toml")
    compile(module_source(generate(cell)), "deep.py", "exec")
    assert time.process_time() - start < 60          # generous: about 1 s on the dev machine
    with pytest.raises(SpecError, match=rf"deep.toml:8:\d+: function calls nested deeper than "
                                        rf"{MAX_CALL_DEPTH} levels"):
        parse_spec(spec(MAX_CALL_DEPTH + 1), "deep.toml")
