"""Hardening of the kernel generator (issue 12): user text cannot reach generated code
unescaped, every accepted spec generates a module that compiles, the forward cache owns its
inputs, a malformed cache is a one-line ValueError, and the floating-point contract of
docs/kernels.md holds."""
from __future__ import annotations

import ast
import copy
import dataclasses
import itertools
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sympy import MatMul

import derive
from conftest import states_like
from derive.export.kernels import export
from derive.codegen.source import module_docstring, module_names
from derive.codegen.module import generate
from derive.codegen.source import module_source
from derive.printing.numpy_code import numpy_code
from derive.spec.tables import SpecError, parse_spec
from derive.spec.lang import MAX_DEPTH
from derive.core.symbols import Input, Param

BASE = """[cell]
name = "{name}"
title = "plain"
states = ["h"]
[params]
W_xh = ["H", "D"]
W_hh = ["H", "H"]
b_h = ["H"]
[equations]
a = "W_xh @ x + W_hh @ h_prev + b_h"
h = "tanh(a)"
"""


def _compile_strict(src, name="<generated>"):
    """compile() with every warning an error (as ``python -W error``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return compile(src, name, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)


@pytest.fixture(scope="module")
def plain():
    cell = parse_spec(BASE.format(name="plain"), "/specs/plain.toml")
    kernel = generate(cell)
    tree = _compile_strict(module_source(kernel))
    return cell, kernel, [type(n).__name__ for n in tree.body]


# -- 1. user text in the module docstring ---------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=60)
HOSTILE = st.sampled_from(['x"""; import os; os.system("touch PWNED"); """', "\\input{x}",
                           "'''", '"', "\\", 'end"', "a\u202eb", "\r\n\x0c\x1b", "\u2028"])
FILE_NAME = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"),
                    min_size=1, max_size=40).filter(lambda s: s not in (".", ".."))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=st.one_of(TEXT, HOSTILE).filter(bool), reference=st.one_of(TEXT, HOSTILE),
       description=st.one_of(TEXT, HOSTILE), file_name=st.one_of(FILE_NAME, HOSTILE))
def test_user_text_cannot_escape_the_docstring(plain, title, reference, description, file_name):
    """For any title, reference, description and spec file name (quotes, triple quotes,
    backslashes, newlines, control and bidi characters): the module compiles with warnings
    as errors, has exactly the top-level statements of a plain-titled module, and its
    docstring holds the title and file name verbatim."""
    cell, kernel, plain_body = plain
    evil = copy.copy(cell)
    evil.title, evil.reference, evil.description = title, reference, description
    evil.source = f"/specs/{file_name}"
    src = module_source(dataclasses.replace(kernel, cell=evil))
    tree = _compile_strict(src)
    assert [type(n).__name__ for n in tree.body] == plain_body
    doc = ast.get_docstring(tree, clean=False)
    assert doc == module_docstring(evil)
    assert doc.startswith(f"NumPy kernels for the cell 'plain': {title}.\n")
    assert f"\nthe cell spec {file_name}. Do not edit" in doc


def test_hostile_spec_file_and_title_run_no_code(tmp_path):
    """A spec whose title and file name try to close the docstring: the written module
    imports under -W error, runs nothing, and its docstring is the text as written."""
    title = 'x"""; import os; os.system("touch PWNED"); """ \\input{x}'   # a TOML literal string
    name = 'a"""; import os; os.system("touch PWNED2"); """.toml'
    spec = tmp_path / name
    spec.write_text(BASE.format(name="evil").replace('title = "plain"', f"title = '{title}'"))
    cell = derive.cell_from_spec(spec)
    assert cell.title == 'x"""; import os; os.system("touch PWNED"); """ \\input{x}'
    files = export([cell], None)
    out = tmp_path / "out"
    (out / "kernels").mkdir(parents=True)
    for rel, text in files.items():
        (out / rel).write_text(text, encoding="utf-8")
    code = ("import kernels.evil as k; import sys; "
            "sys.stdout.write(k.__doc__.split(chr(10))[0] + chr(10) + k.__doc__.split(chr(10))[3])")
    run = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=out,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))
    first, spec_line = run.stdout.split("\n")
    assert first == f"NumPy kernels for the cell 'evil': {cell.title}."
    assert spec_line == f"the cell spec {name}. Do not edit: regenerate with ``python -m derive``."


@pytest.mark.parametrize("field, value", [("name", "import"), ("name", 'a"]; x = ('),
                                          ("param", 'W"]; import os; #'), ("param", "lambda"),
                                          ("state", "h h")])
def test_programmatic_cell_with_unsafe_names_is_refused(field, value):
    """A Cell built in Python (not from a spec) whose names are no identifiers: ValueError
    naming it, from both routes, before any code is generated."""
    cell = parse_spec(BASE.format(name="ok"))
    bad = copy.copy(cell)
    if field == "name":
        bad.name = value
    elif field == "param":
        bad.params = {**cell.params, value: Param(value, 3, 1)}
    else:
        bad.states = (value,)
    with pytest.raises(ValueError, match="cannot be used in generated code"):
        generate(bad)
    with pytest.raises(ValueError, match="cannot be used in generated code"):
        derive.kernels(bad)


# -- 2. names that could clash inside generated code -------------------------------------------

CLASH = """[cell]
name = "{name}"
states = ["h", "c"]
[params]
{P1} = ["H", "D"]
{P2} = ["H", "H"]
{P3} = ["H"]
{P4} = ["H", "H"]
{P5} = ["H"]
[equations]
{E1} = "{P1} @ x + {P2} @ h_prev + {P3}"
{E2} = "sigmoid({E1}) * c_prev + {P5}"
{E3} = "{P4} @ {E2}"
{E4} = "tanh({E3}) * {E1}"
c = "{E2} + {E4}"
h = "tanh(c) * {E3}"
"""


def test_names_of_generated_locals_do_not_clash():
    """Parameters and equations named like the driver's locals and the printer's renamed
    symbols (self / self_, T, p, dt, t, H, B, D) give bitwise the results of the same cell
    with plain names."""
    tricky = dict(P1="self", P2="self_", P3="T", P4="p", P5="dt", E1="t", E2="H", E3="B", E4="D")
    plain_names = dict(P1="A1", P2="A2", P3="A3", P4="A4", P5="A5", E1="e1", E2="e2", E3="e3",
                       E4="e4")
    ka = derive.kernels(parse_spec(CLASH.format(name="tricky", **tricky)))
    kb = derive.kernels(parse_spec(CLASH.format(name="plainn", **plain_names)))
    rng = numpy.random.default_rng(1)
    pb = kb.init_params(3, 4, rng=rng)
    pa = {tricky[k]: pb[v] for k, v in plain_names.items() if k.startswith("P")}
    xs = rng.standard_normal((4, 2, 3))
    hs_a, ca = ka.forward(pa, xs)
    hs_b, cb = kb.forward(pb, xs)
    assert numpy.array_equal(hs_a, hs_b)
    ga, da, dxa = ka.backward(pa, ca, numpy.ones_like(hs_a), return_dxs=True)
    gb, db, dxb = kb.backward(pb, cb, numpy.ones_like(hs_b), return_dxs=True)
    assert all(numpy.array_equal(ga[tricky[k]], gb[v]) for k, v in plain_names.items()
               if k.startswith("P"))
    assert numpy.array_equal(dxa, dxb) and all(map(numpy.array_equal, da, db))
    _compile_strict(module_source(generate(ka.KERNEL.cell)))


def test_reserved_names_cover_every_generated_top_level_name():
    """module_names() holds every top-level name a real generated module defines or imports
    (with and without a [torch] table) and the package's CELLS."""
    for name in ("lstm", "rnn_sigmoid"):
        tree = ast.parse(module_source(generate(derive.cell(name))))
        defined = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.Import)):
                defined |= {node.name} if isinstance(node, ast.FunctionDef) else \
                    {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Assign):
                defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        public = {n for n in defined if n[0].isalpha()}
        assert public and public <= module_names(), public - module_names()
    assert "CELLS" in module_names() and "numpy" in module_names()
    # the spec loader's static list covers them all (it cannot import the generator)
    from derive.spec.tables import RESERVED
    assert {n for n in module_names() if n[0].isalpha()} <= RESERVED


# -- 3. every accepted spec compiles ------------------------------------------------------------

def test_long_products_print_flat():
    """A product of 300 matrices, applied to a vector or not, prints without nesting (the old
    printer opened one parenthesis per factor: Python refuses 200) and compiles."""
    W = Param("W", 3, 3)
    v = Input("x", 3, 1)
    vec = numpy_code(MatMul(*([W] * 300 + [v]), evaluate=False))
    mat = numpy_code(MatMul(*([W] * 300), evaluate=False))
    for code in (vec, mat):
        assert code.count("(") <= 1
        _compile_strict(f"y = {code}\n")
    W3 = numpy.diag([1.0, 2.0, 0.5])
    x = numpy.array([[1.0, 1.0, 1.0]])
    assert numpy.allclose(eval(compile(vec, "v", "eval"), {"W": W3, "x": x}),  # noqa: S307 - our own text
                          x @ numpy.linalg.matrix_power(W3.T, 300))


@pytest.mark.skipif(not os.environ.get("RNN_CALCULUS_SLOW"), reason="about 20 s: set RNN_CALCULUS_SLOW=1")
def test_200_chained_products_generate_a_module_that_compiles():
    """The spec of issue 12: W_hh @ ... @ h_prev with 200 factors."""
    chain = " @ ".join(["W_hh"] * 200) + " @ h_prev"
    cell = parse_spec(BASE.format(name="chain").replace('"W_xh @ x + W_hh @ h_prev + b_h"',
                                                        f'"W_xh @ x + {chain} + b_h"'))
    _compile_strict(module_source(generate(cell)))


@st.composite
def nesting(draw):
    """MAX_DEPTH - 3 .. MAX_DEPTH enclosing levels: parentheses and unary minus, with at most
    four function calls among them (each nested activation multiplies the size of the
    kernel planner's expanded derivative forms by two: see the report of issue 12)."""
    n = draw(st.integers(MAX_DEPTH - 3, MAX_DEPTH))
    calls = draw(st.lists(st.sampled_from(["tanh(", "sigmoid(", "relu("]), max_size=4))
    rest = draw(st.lists(st.sampled_from(["(", "-"]), min_size=n - len(calls), max_size=n - len(calls)))
    return draw(st.permutations(calls + rest))


@settings(max_examples=max(2, settings().max_examples // 5), deadline=None)
@given(levels=nesting(), n_products=st.integers(1, 30), two=st.booleans())
def test_specs_near_the_limits_generate_modules_that_compile(levels, n_products, two):
    """Random valid specs near the loader's limits (MAX_DEPTH levels of parentheses, calls
    and unary minus; chains of up to 30 products): the generated module compiles with
    warnings as errors and its forward and backward run."""
    core = " @ ".join(["W_hh"] * n_products) + " @ h_prev + W_xh @ x"
    text = core
    for w in reversed(levels):
        text = f"{w}{text}" if w == "-" else f"{w}{text})"
    spec = BASE.format(name="deep").replace('"W_xh @ x + W_hh @ h_prev + b_h"', f'"{text} + b_h"')
    if two:
        spec = spec.replace('states = ["h"]', 'states = ["h", "c"]') + 'c = "tanh(W_hh @ c_prev) * a"\n'
    try:
        cell = parse_spec(spec)
    except SpecError as exc:
        assume("derivation would be too large" not in str(exc))
        raise
    _compile_strict(module_source(generate(cell)))
    k = derive.kernels(cell)
    p = k.init_params(2, 3, rng=0)
    hs, cache = k.forward(p, numpy.full((2, 1, 2), 0.5))
    k.backward(p, cache, numpy.ones_like(hs))


# -- 4. the cache owns its inputs ---------------------------------------------------------------

def _written(cell_name, tmp_path):
    import importlib.util
    path = tmp_path / f"{cell_name}_kernel.py"
    path.write_text(module_source(generate(derive.cell(cell_name))))
    spec = importlib.util.spec_from_file_location(f"{cell_name}_kernel", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("cell_name", ["lstm", "gru", "rnn_tanh"])
def test_changing_xs_after_forward_does_not_change_the_gradients(cell_name, tmp_path):
    """backward reads the inputs as they were when forward ran (both routes)."""
    for k in (derive.kernels(cell_name), _written(cell_name, tmp_path)):
        rng = numpy.random.default_rng(3)
        p = k.init_params(3, 4, rng=rng)
        xs = rng.standard_normal((5, 2, 3))
        dhs = rng.standard_normal((5, 2, 4))
        want = k.backward(p, k.forward(p, xs.copy())[1], dhs, return_dxs=True)
        hs, cache = k.forward(p, xs)
        xs *= -3.0
        xs += 1.0
        got = k.backward(p, cache, dhs, return_dxs=True)
        for a, b in zip(want[0].values(), got[0].values()):
            assert numpy.array_equal(a, b)
        assert all(map(numpy.array_equal, want[1], got[1])) and numpy.array_equal(want[2], got[2])


# -- 5. malformed caches ------------------------------------------------------------------------

def _bad_caches(c, xs):
    return {
        "only the cell": ({"cell": "lstm"}, r"cache: missing key 'xs' \(the inputs\)"),
        "S a string": ({"cell": "lstm", "S": "x"}, r"cache: missing key 'xs'"),
        "no V": ({k: v for k, v in c.items() if k != "V"}, r"cache: missing key 'V'"),
        "no S": ({k: v for k, v in c.items() if k != "S"}, r"cache: missing key 'S'"),
        "another cell": ({**c, "cell": "gru"}, r"this cell's forward \('lstm'\), got cell 'gru'"),
        "not a dict": ([c], r"this cell's forward \('lstm'\), got list"),
        "S not a tuple": ({**c, "S": "xy"}, r"cache: 'S' must be a tuple of 2 arrays ordered like "
                                            r"STATE = \('h', 'c'\), got str"),
        "S too short": ({**c, "S": c["S"][:1]}, r"'S' must be a tuple of 2 arrays .* got 1 arrays"),
        "S wrong shape": ({**c, "S": (c["S"][0][:, :1], c["S"][1])},
                          r"cache: 'S'\[0\] \(h\) must be an array \(T\+1=6, B=2, H=4\) of float64, "
                          r"got shape \(6, 1, 4\) float64"),
        "S a list": ({**c, "S": ([1.0], c["S"][1])}, r"'S'\[0\] \(h\) must be an array .* got list"),
        "xs wrong D": ({**c, "xs": xs[:, :, :2]}, r"cache: 'xs' must be an array \(T, B, D=3\) of "
                                                 r"float64, got shape \(5, 2, 2\) float64"),
        "xs wrong dtype": ({**c, "xs": xs.astype(numpy.float32)}, r"'xs' must be .* got shape "
                                                                  r"\(5, 2, 3\) float32"),
        "xs not an array": ({**c, "xs": xs.tolist()}, r"cache: 'xs' must be an array .* got list"),
        "V missing a key": ({**c, "V": {k: v for k, v in c["V"].items() if k != "i"}},
                            r"cache: 'V' must be a dict with the keys \[.*'i'.*\], got keys"),
        "V wrong shape": ({**c, "V": {**c["V"], "f": c["V"]["f"][:4]}},
                          r"cache: 'V'\['f'\] must be an array \(T=5, B=2, H=4\) of float64, got "
                          r"shape \(4, 2, 4\)"),
        "V not a dict": ({**c, "V": None}, r"cache: 'V' must be a dict .* got NoneType"),
    }


BAD_CACHES = ["only the cell", "S a string", "no V", "no S", "another cell", "not a dict",
              "S not a tuple", "S too short", "S wrong shape", "S a list", "xs wrong D",
              "xs wrong dtype", "xs not an array", "V missing a key", "V wrong shape",
              "V not a dict"]


@pytest.mark.parametrize("case", BAD_CACHES)
def test_malformed_cache_is_a_one_line_value_error(case):
    """Each malformed cache: a one-line ValueError naming the key and what was expected."""
    k = derive.kernels("lstm")
    p = k.init_params(3, 4, rng=0)
    xs = numpy.random.default_rng(0).standard_normal((5, 2, 3))
    hs, c = k.forward(p, xs)
    bad, msg = _bad_caches(c, xs)[case]
    with pytest.raises(ValueError, match=msg) as info:
        k.backward(p, bad, numpy.ones_like(hs))
    assert "\n" not in str(info.value)


# -- 6. the floating-point contract of docs/kernels.md -----------------------------------------

def _run_all(k, p, xs, s0, under):
    with numpy.errstate(over="raise", invalid="raise", divide="raise", under=under):
        hs, c = k.forward(p, xs, s0)
        k.backward(p, c, numpy.ones_like(hs), tuple(numpy.ones_like(s) for s in s0),
                   return_dxs=True)
        k.step_jacobian(p, xs[0], s0)


#: cells whose state is not squashed: with weights of 1e30 the exact float32 values leave the
#: range (docs/kernels.md says so)
UNBOUNDED = {"rnn_relu", "lstm_niaf"}

#: (cell, dtype, magnitude, what is large) where docs/kernels.md names an event as expected:
#: exp of a large parameter (lru), f / (f + i)^2 with both gates saturated (minlstm), float32
#: initial states of 1e30 (slstm). The test checks that each of these does raise.
DOCUMENTED = {("lru", "float32", 1e4, "params"), ("lru", "float32", 1e30, "params"),
              ("lru", "float64", 1e4, "params"), ("lru", "float64", 1e30, "params"),
              ("minlstm", "float32", 1e4, "inputs"), ("minlstm", "float32", 1e30, "inputs"),
              ("minlstm", "float32", 1e30, "params"), ("minlstm", "float64", 1e30, "inputs"),
              ("minlstm", "float64", 1e30, "params"), ("slstm", "float32", 1e30, "inputs"),
              # squares and outer products of entries above 1.8e19 leave float32's range:
              # layer norm's variance, the l2 norms, mLSTM's v k^T
              *((c, "float32", 1e30, b) for c in ("lnlstm", "mlstm", "gated_deltanet")
                for b in ("inputs", "params"))}


@pytest.mark.parametrize("cell_name", derive.cells())
def test_no_overflow_invalid_or_divide_for_finite_inputs_of_any_magnitude(cell_name):
    """docs/kernels.md, "Floating-point events": xs and initial states of magnitude 1e4 and
    1e30 (parameters as init_params makes them), or parameters of that magnitude (inputs of
    order one), in float32 and float64: forward, backward and step_jacobian raise no
    overflow, invalid or divide event; the only exception is an unbounded cell with weights
    whose exact values leave float32's range. Under all="raise" the only event is underflow."""
    k = derive.kernels(cell_name)
    for dt, mag, big in itertools.product((numpy.float32, numpy.float64), (1e4, 1e30),
                                          ("inputs", "params")):
        rng = numpy.random.default_rng(0)
        p = k.init_params(3, 4, rng=rng, dtype=dt)
        xs = rng.standard_normal((4, 2, 3)).astype(dt)
        s0 = states_like(k, 2, 4, lambda shape: rng.standard_normal(shape).astype(dt))
        if big == "inputs":
            xs, s0 = xs * dt(mag), tuple(s * dt(mag) for s in s0)
        else:
            p = {n: v * dt(mag) for n, v in p.items()}
        if big == "params" and mag == 1e30 and dt == numpy.float32 and cell_name in UNBOUNDED:
            # the exact values are beyond float32: the float64 run holds |values| > 3.4e38
            p64 = {n: v.astype(numpy.float64) for n, v in p.items()}
            _, c64 = k.forward(p64, xs.astype(numpy.float64), tuple(s.astype(numpy.float64) for s in s0))
            big_values = [numpy.abs(v).max() for v in list(c64["S"]) + list(c64["V"].values())]
            peep = [numpy.abs(p64[w] * c64["S"][1][:-1]).max() for w in ("W_ci", "W_cf") if w in p64]
            assert max(big_values + peep) > numpy.finfo(numpy.float32).max
            with pytest.raises(FloatingPointError, match="overflow"):
                _run_all(k, p, xs, s0, "ignore")
            continue
        if (cell_name, numpy.dtype(dt).name, mag, big) in DOCUMENTED:
            with pytest.raises(FloatingPointError, match="overflow|invalid"):
                _run_all(k, p, xs, s0, "ignore")
            continue
        _run_all(k, p, xs, s0, "ignore")
        try:
            _run_all(k, p, xs, s0, "raise")
        except FloatingPointError as exc:
            assert "underflow" in str(exc)
