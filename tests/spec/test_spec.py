"""The cell-spec language: what it builds, the errors it reports (file, line, column, what
is wrong), and hostile specs (rejected with no side effect, in bounded time and memory)."""
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sympy import MatMul, OneMatrix

import derive
from derive.spec import tables as spec
from derive.core.algebra import add, hadamard, matmul, scale
from derive.core.primitives import Sigmoid, Tanh
from derive.spec.tables import SpecError, load_spec, parse_spec
from derive.core.symbols import DIMS, Input, Param, PrevState, Var

ROOT = Path(__file__).resolve().parents[2]
H, D = DIMS["H"], DIMS["D"]

HEAD = """\
[cell]
name = "t"
states = ["h"]

[params]
W_xh = ["H", "D"]
W_hh = ["H", "H"]
b_h = ["H"]
u = ["H"]

[equations]
"""
EQ_LINE = HEAD.count("\n") + 1          # line of the first equation


def build(*equations, head=HEAD):
    return parse_spec(head + "\n".join(equations) + "\n", path="t.toml")


def head_for(text):
    """HEAD with only the parameters that ``text`` uses (an unused parameter is an error)."""
    keep = [line for line in HEAD.splitlines(keepends=True)
            if not re.match(r'\w+ = \["[HD]"', line) or re.search(rf"\b{line.split()[0]}\b", text)]
    return "".join(keep)


def error_of(text, path="t.toml"):
    with pytest.raises(SpecError) as info:
        parse_spec(text, path=path)
    return info.value


def char_at(text, line, col):
    """The character an error points at: line and column are 1-based, in characters."""
    return text.splitlines()[line - 1][col - 1]


W_xh, W_hh = Param("W_xh", H, D), Param("W_hh", H, H)
b_h, u = Param("b_h", H, 1), Param("u", H, 1)
x, h_prev = Input("x", D, 1), PrevState("h_prev", H, 1)


# ---------------------------------------------------------------------------------------
# what the parser builds
# ---------------------------------------------------------------------------------------

def test_parser_builds_the_engines_nodes_in_written_order():
    c = build('a = "W_xh @ x + W_hh @ h_prev + b_h + u"', 'h = "tanh(a) * sigmoid(a)"')
    a = Var("a", H, 1)
    assert c.definition("a") == add([matmul(W_xh, x), matmul(W_hh, h_prev), b_h, u], (H, 1))
    assert c.definition("h") == hadamard([Tanh(a), Sigmoid(a)])


@pytest.mark.parametrize("text, expected", [
    # '*' and '@' bind equally and group left to right; both bind tighter than + and -
    ("u * h_prev + b_h", lambda: add([hadamard([u, h_prev]), b_h], (H, 1))),
    ("u * (h_prev + b_h)", lambda: hadamard([u, add([h_prev, b_h], (H, 1))])),
    ("-u * h_prev", lambda: hadamard([scale(-1, u), h_prev])),
    ("h_prev - u - b_h", lambda: add([h_prev, scale(-1, u), scale(-1, b_h)], (H, 1))),
    ("1 - u", lambda: add([OneMatrix(H, 1), scale(-1, u)], (H, 1))),
    ("0.5 * h_prev", lambda: scale(sympy_half(), h_prev)),
    ("2 * 3 * h_prev", lambda: scale(6, h_prev)),
    ("W_hh @ W_hh @ h_prev", lambda: matmul(W_hh, W_hh, h_prev)),
    ("W_hh @ (u * h_prev)", lambda: matmul(W_hh, hadamard([u, h_prev]))),
    ("-W_hh @ h_prev", lambda: MatMul(-1, W_hh, h_prev, evaluate=False)),  # one flat product
])
def test_precedence_and_constants(text, expected):
    c = build(f'h = "tanh({text})"', head=head_for(text))
    assert c.definition("h") == Tanh(expected())


def sympy_half():
    import sympy
    return sympy.Rational(1, 2)


def test_equations_may_be_written_in_any_order():
    c = build('h = "tanh(a)"', 'a = "W_xh @ x + W_hh @ h_prev + b_h + u"')
    assert [eq.lhs.name for eq in c.equations] == ["a", "h"]


# Round trip: a random expression tree, written out with random spacing and redundant
# parentheses, parses back to the tree built directly with the engine's constructors.
_LEAVES = {"h_prev": h_prev, "u": u, "b_h": b_h}


def _trees():
    leaf = st.sampled_from(sorted(_LEAVES)).map(lambda n: (n, _LEAVES[n]))

    def extend(sub):
        def binop(op):
            def make(pair):
                (ta, ea), (tb, eb) = pair
                if op == "+":
                    return f"{ta} + {tb}", add([ea, eb], (H, 1))
                if op == "-":
                    return f"{ta} - ({tb})", add([ea, scale(-1, eb)], (H, 1))
                return f"({ta}) * ({tb})", hadamard([ea, eb])
            return st.tuples(sub, sub).map(make)
        fn = st.tuples(st.sampled_from([("tanh", Tanh), ("sigmoid", Sigmoid)]), sub).map(
            lambda p: (f"{p[0][0]}({p[1][0]})", p[0][1](p[1][1])))
        mat = sub.map(lambda p: (f"W_hh @ ({p[0]})", matmul(W_hh, p[1])))
        return st.one_of(binop("+"), binop("-"), binop("*"), fn, mat)
    return st.recursive(leaf, extend, max_leaves=12)


@given(_trees(), st.sampled_from(["", " ", "\t", "\n  "]))
def test_round_trip_of_random_expressions(tree, space):
    """Parsing the written form of a random expression gives the directly built expression."""
    text, expected = tree
    written = text.replace(" ", space + " ") if space else text.replace(" ", "")
    c = build(f'h = """{written}"""', head=head_for(text))
    assert c.definition("h") == expected


@given(st.text(max_size=60))
def test_arbitrary_equation_text_gives_a_cell_or_a_spec_error(body):
    """No input makes the parser fail with anything but SpecError (no IndexError, no
    RecursionError, no SymPy exception)."""
    text = head_for("") + 'h = ' + _toml_string(body) + "\n"
    try:
        parse_spec(text)
    except SpecError as exc:
        assert exc.line >= 1 and exc.col >= 1, str(exc)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_cell_or_a_spec_error(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("fuzz") / "f.toml"
    p.write_bytes(data)
    try:
        load_spec(p)
    except SpecError:
        pass


def _toml_string(s):
    return json.dumps(s, ensure_ascii=True).replace("\\/", "/")


# ---------------------------------------------------------------------------------------
# errors: file, line, column and what is wrong
# ---------------------------------------------------------------------------------------

EQ = 'a = "W_xh @ x + W_hh @ h_prev + b_h"\nh = "tanh(a) * u"\n'

# (name, spec text, message fragment, the character the error points at)
ERRORS = [
    ("syntax error", HEAD + 'a = "W_xh @ x + W_hh @ h_prev + * b_h"\nh = "tanh(a) * u"\n',
     "unexpected '*'", "*"),
    ("unclosed parenthesis", HEAD + 'a = "W_xh @ x + (W_hh @ h_prev + b_h"\nh = "tanh(a) * u"\n',
     "expected ')' to close the '(' at column 17", '"'),
    ("unknown function", HEAD + 'a = "W_xh @ x + W_hh @ h_prev + b_h"\nh = "erf(a) * u"\n',
     "unknown function 'erf'; the functions are abs, cos, dot, exp, log, logsigmoid, max, mean, min, norm, outer, relu, "
     "sigmoid, "
     "silu, sin, softplus, sqrt, sum, tanh", "e"),
    ("undeclared symbol", HEAD + 'a = "W_xh @ x + W_hh @ hprev + b_h"\nh = "tanh(a) * u"\n',
     "undeclared symbol 'hprev'; did you mean 'h_prev'?", "h"),
    ("shape mismatch", HEAD + 'a = "W_xh @ x + W_hh @ x + b_h"\nh = "tanh(a) * u"\n',
     "shape mismatch in '@': 'W_hh' is (H, H) but 'x' is (D,)", "@"),
    ("shape mismatch in a sum", HEAD + 'a = "W_xh @ x + x"\nh = "tanh(a) * u + W_hh @ h_prev + b_h"\n',
     "shape mismatch in '+': 'W_xh @ x' has H rows but 'x' has D", "+"),
    ("matrix times vector with '*'", HEAD + 'a = "W_xh @ x + W_hh * h_prev + b_h"\nh = "tanh(a) * u"\n',
     "'W_hh' is a (H, H) matrix; use '@'", "*"),
    ("'*' before '@'", HEAD + 'a = "W_xh @ x + u * W_hh @ h_prev + b_h"\nh = "tanh(a)"\n',
     "'*' and '@' bind equally, left to right", "*"),
    ("vector on the left of '@'", HEAD + 'a = "W_xh @ x + h_prev @ W_hh + b_h"\nh = "tanh(a) * u"\n',
     "the left operand of '@' must be a parameter matrix", "h"),
    ("function of a matrix", HEAD + 'a = "W_xh @ x + W_hh @ h_prev + b_h"\nh = "tanh(a) * u + sigmoid(W_hh)"\n',
     "sigmoid() applies to vectors; 'W_hh' is a (H, H) matrix", "W"),
    ("cycle between equations", HEAD + 'a = "W_xh @ x + W_hh @ h + b_h"\nh = "tanh(a) * u"\n',
     "cycle between equations: a -> h -> a; for the previous step's value write h_prev", "a"),
    ("equation refers to itself", HEAD + 'h = "tanh(W_xh @ x + W_hh @ h + b_h) * u"\n',
     "equation 'h' refers to itself; use h_prev for the previous step", "h"),
    ("number with exponent", HEAD + EQ.replace("tanh(a) * u", "tanh(a) * u * 1e999999"),
     "no exponent", "1"),
    ("number too long", HEAD + EQ.replace("tanh(a) * u", "tanh(a) * u * " + "9" * 40),
     "has 40 characters; the limit is 24", "9"),
    ("attribute access", HEAD + EQ.replace("tanh(a) * u", "tanh(a).__class__ * u"),
     "unexpected character '.'", "."),
    ("lookalike letter", HEAD + EQ.replace("tanh(a) * u", "tanh(\u0430) * u"),
     "U+0430 CYRILLIC SMALL LETTER A", "\u0430"),
    ("bidi control", HEAD + EQ.replace("tanh(a) * u", "tanh(a) * u\u202e"),
     "U+202E RIGHT-TO-LEFT OVERRIDE", "\u202e"),
    ("state not an (H,) vector", HEAD + 'a = "W_xh @ x + W_hh @ h_prev + b_h"\nh = "x"\n',
     "state 'h' must be an (H,) vector, got (D,)", '"'),
    ("matrix-valued equation", HEAD + 'M = "2 * W_hh"\nh = "tanh(W_xh @ x + W_hh @ h_prev + b_h) * u"\n',
     "equation 'M' is a (H, H) matrix", "2"),
    ("bare number", HEAD + 'k = "3"\nh = "tanh(W_xh @ x + W_hh @ h_prev + b_h) * u"\n',
     "equation 'k' is a bare number", "3"),
    ("unused parameter", HEAD + 'h = "tanh(W_xh @ x + W_hh @ h_prev + b_h)"\n',
     "parameter 'u' is declared but not used", "u"),
    ("state without equation", HEAD.replace('["h"]', '["h", "c"]') + EQ,
     "state 'c' has no equation", '"'),
    ("state listed twice", HEAD.replace('["h"]', '["h", "h"]') + EQ, "state 'h' is listed twice", '"'),
    ("bad parameter shape", HEAD.replace('u = ["H"]', 'u = ["H", "Q"]') + EQ,
     "parameter 'u': shape must be", "["),
    ("reserved name", HEAD.replace('u = ["H"]', 'delta_u = ["H"]') + EQ.replace("* u", "* delta_u"),
     "parameter name 'delta_u' is reserved", "d"),
    ("keyword as a name", HEAD.replace('u = ["H"]', 'lambda = ["H"]') + EQ.replace("* u", "* lambda"),
     "parameter name 'lambda' is reserved", "l"),
    ("non-ASCII name", HEAD.replace('u = ["H"]', '"\u00fc" = ["H"]') + EQ,
     "parameter name '\u00fc' must be ASCII letters", '"'),
    ("unknown table", HEAD + EQ + "[equation]\nk = \"x\"\n", "unknown table [equation]; did you mean [equations]?", "["),
    ("unknown [cell] key", HEAD.replace('states =', 'stats = ["h"]\nstates =') + EQ,
     "unknown key 'stats' in [cell]", "s"),
    ("equation not a string", HEAD + 'a = 3\nh = "tanh(W_xh @ x + W_hh @ h_prev + b_h) * u"\n',
     "equation 'a' must be a string, got an integer", "3"),
    ("[params] not a table", "params = 3\n" + head_for("").replace("[params]\n", "") + 'h = "tanh(x)"\n',
     "[params] must be a table, got an integer", "p"),
    ("readout parameter in a step equation",
     HEAD + EQ.replace("tanh(a) * u", "tanh(a) * u + W_hy @ h_prev") + '[readout_params]\nW_hy = ["H", "H"]\n'
     '[readout]\ny = "W_hy @ h"\n', "'W_hy' is a readout parameter; the step equations use [params] only", "W"),
    ("matrix in a sum (the seed's eq. 2)", HEAD + EQ + '[readout_params]\nW_hy = ["H", "H"]\nb_y = ["H"]\n'
     '[readout]\ny = "W_hy + b_y"\n', "'+' needs two vectors of one shape; 'W_hy' is a (H, H) matrix", "W"),
    ("unclosed parenthesis across lines", HEAD + 'a = """W_xh @ x + (W_hh @ h_prev\n+ b_h"""\nh = "tanh(a) * u"\n',
     f"expected ')' to close the '(' at line {EQ_LINE}, column 19", '"'),
    ("TOML syntax error", HEAD + 'a = "W_xh @ x + W_hh @ h_prev + b_h\nh = "tanh(a) * u"\n',
     "TOML syntax error", None),
    ("TOML duplicate key", HEAD + EQ + 'a = "x"\n', "TOML syntax error", None),
    ("LaTeX command that reads a file", HEAD + EQ + '[latex]\nu = "\\\\input{/etc/passwd}"\n',
     "command \\input is not allowed", "\\"),
    ("LaTeX character-code trick", HEAD + EQ + '[latex]\nu = "^^5cinput"\n', "'^^'", "^"),
    ("control character in a title", HEAD.replace('name = "t"', 'name = "t"\ntitle = "a\\u0007b"') + EQ,
     "control or format character", '"'),
]


@pytest.mark.parametrize("name, text, fragment, points_at", ERRORS, ids=[e[0] for e in ERRORS])
def test_error_names_file_line_column_and_problem(name, text, fragment, points_at):
    err = error_of(text)
    assert err.path == "t.toml"
    assert fragment in err.message, err.message
    assert err.line >= 1 and err.col >= 1, str(err)
    assert str(err).startswith(f"t.toml:{err.line}:{err.col}: ")
    if points_at is not None:
        assert char_at(text, err.line, err.col) == points_at, (str(err), text.splitlines()[err.line - 1])


def test_column_is_exact_through_escapes_multiline_and_literal_strings():
    """The column of an error inside an equation is that of the offending character in the
    file, whatever TOML string form the equation is written in."""
    forms = {
        "escapes": 'a = "W_xh @ x + \\u0057_hh @ h_prev + \\tc_h"',
        "literal": "a = 'W_xh @ x + W_hh @ h_prev + c_h'",
        "multi-line": 'a = """\nW_xh @ x\n  + W_hh @ h_prev\n  + c_h"""',
        "line-ending backslash": 'a = """W_xh @ x + \\\n      W_hh @ h_prev + c_h"""',
        "multi-line literal": "a = '''\nW_xh @ x + W_hh @ h_prev\n+ c_h'''",
        "quoted key": '"a" = "W_xh @ x + W_hh @ h_prev + c_h"',
        "dotted key at top level": None,
    }
    for name, eq in forms.items():
        if eq is None:
            text = ('equations.a = "W_xh @ x + c_h"\n'
                    'equations.h = "tanh(a + W_hh @ h_prev + b_h) * u"\n'
                    + HEAD.replace("[equations]\n", ""))
        else:
            text = HEAD + eq + '\nh = "tanh(a) * u"\n'
        err = error_of(text)
        assert "undeclared symbol 'c_h'" in err.message, (name, str(err))
        line = text.splitlines()[err.line - 1]
        assert line[err.col - 1:err.col + 2] == "c_h", (name, str(err), line)


@given(terms=st.lists(st.sampled_from(["h_prev", "u", "b_h", "W_hh @ h_prev"]), max_size=5),
       where=st.integers(min_value=0, max_value=5),
       style=st.sampled_from(['"', "'", '"""', "'''"]),
       escapes=st.lists(st.booleans(), min_size=80, max_size=80),
       breaks=st.lists(st.booleans(), min_size=20, max_size=20))
def test_error_position_is_the_raw_position_of_the_offending_name(terms, where, style, escapes,
                                                                   breaks):
    """Whatever the TOML string form (basic with \\u escapes, literal, multi-line with line
    breaks), the reported (line, col) is where the undeclared name starts in the file."""
    terms = list(terms)
    terms.insert(min(where, len(terms)), "zz_q")
    expr = " + ".join(terms)
    raw, start, k = [], None, 0
    for i, ch in enumerate(expr):
        if i == expr.index("zz_q"):
            start = sum(map(len, raw))
        if ch == " " and style in ('"""', "'''") and breaks[k % 20]:
            k += 1
            raw.append("\n")
        elif style.startswith('"') and escapes[i % 80]:
            raw.append(f"\\u{ord(ch):04x}")
        else:
            raw.append(ch)
    prefix = HEAD + "h = " + style
    text = prefix + "".join(raw) + style + "\n"
    err = error_of(text)
    assert "undeclared symbol 'zz_q'" in err.message
    offset = len(prefix) + start
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    assert (err.line, err.col) == (line, col), (str(err), text)


def test_crlf_tabs_and_byte_order_mark(tmp_path):
    text = (HEAD + 'a = "W_xh @ x +\tW_hh @ h_prev + c_h"\nh = "tanh(a) * u"\n').replace("\n", "\r\n")
    p = tmp_path / "crlf.toml"
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())
    with pytest.raises(SpecError) as info:
        load_spec(p)
    err = info.value
    assert err.path == str(p)
    assert text.split("\r\n")[err.line - 1][err.col - 1:err.col + 2] == "c_h"


def test_toml_error_position_is_tomllibs(tmp_path):
    text = HEAD + 'a = "W_xh @ x"\nh = tanh(a)\n'
    err = error_of(text)
    assert (err.line, err.col) == (EQ_LINE + 1, 5) and "TOML syntax error" in err.message


def test_unreadable_and_non_regular_files(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "missing.toml")
    with pytest.raises(SpecError, match="not a regular file"):
        load_spec(tmp_path)
    with pytest.raises(SpecError, match="not a regular file"):
        load_spec("/dev/zero")
    p = tmp_path / "latin1.toml"
    p.write_bytes((HEAD + '# caf\xe9\n' + EQ).encode("latin-1"))
    with pytest.raises(SpecError, match="not UTF-8") as info:
        load_spec(p)
    assert info.value.line == EQ_LINE


TORCH_GRU_HEAD = (ROOT / "derive" / "cells" / "gru.toml").read_text()


@pytest.mark.parametrize("edit, fragment", [
    (('module = "GRU"', 'module = "Transformer"'), "module must be one of RNN, GRU, LSTM"),
    (('weight_ih_l0 = ["W_xr", "W_xz", "W_xn"]', 'weight_ih_l0 = ["W_xr", "W_xz"]'),
     "weight_ih_l0 must list 3 parameter(s)"),
    (('weight_hh_l0 = ["W_hr", "W_hz", "W_hn"]', 'weight_hh_l0 = ["W_hr", "W_hz", "W_xn"]'),
     "weight_hh_l0: 'W_xn' is (H, D), but weight_hh_l0 stacks (H, H) blocks"),
    (('bias_hh_l0 = ["b_r", "b_z", "b_hn"]', 'bias_hh_l0 = ["b_z", "b_r", "b_hn"]'),
     "listed under both biases at different gates"),
    (('bias_hh_l0 = ["b_r", "b_z", "b_hn"]', 'bias_hh_l0 = ["b_r", "b_z", "b_xn"]'),
     "does not place parameter 'b_hn'"),
    (('module = "GRU"', 'module = "GRU"\nnonlinearity = "relu"'), "nonlinearity"),
    (('module = "GRU"', 'module = "GRU"\nbatch_first = true'), "unknown key 'batch_first' in [torch]"),
])
def test_torch_table_is_checked(edit, fragment):
    text = TORCH_GRU_HEAD.replace(*edit)
    assert text != TORCH_GRU_HEAD
    err = error_of(text, path="gru.toml")
    assert fragment in err.message and err.line >= 1, str(err)


def test_builtin_torch_tables_place_every_parameter():
    for name in derive.cells():
        c = derive.cell(name)
        if c.torch:
            placed = {n for k, v in c.torch.items() if k.startswith(("weight", "bias")) for n in v}
            assert placed == set(c.params), name


# ---------------------------------------------------------------------------------------
# the CLI and the API entry points
# ---------------------------------------------------------------------------------------

def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "derive", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("kind", ["syntax error", "unknown function", "undeclared symbol",
                                  "shape mismatch", "cycle between equations", "TOML syntax error"])
def test_cli_reports_a_bad_spec_in_one_line_with_exit_2(tmp_path, kind):
    text, fragment = next((t, f) for n, t, f, _ in ERRORS if n == kind)
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    r = run_cli("--spec", str(bad), "--out", str(tmp_path / "out"))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    err = error_of(text, path=str(bad))
    assert lines[0] in (f"error: {err}", f"python -m derive: error: {err}")   # the CLI's prefix
    assert f"{bad}:{err.line}:{err.col}: " in lines[0] and fragment in lines[0]
    assert not (tmp_path / "out").exists()


def test_cli_derives_a_user_spec(tmp_path):
    r = run_cli("--spec", "examples/indrnn.toml", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    summary = (tmp_path / "summary" / "indrnn.txt").read_text()
    assert "dh/dh_prev = diag(u ⊙ relu'(a))" in summary     # IndRNN: a diagonal Jacobian
    assert not any("lstm" in p.name for p in tmp_path.rglob("*"))


def test_cell_from_spec_gives_what_a_builtin_gets(tmp_path):
    """A spec-defined copy of a built-in cell derives exactly the same results."""
    text = (ROOT / "derive" / "cells" / "lstm_peephole.toml").read_text()
    p = tmp_path / "my_lstm.toml"
    p.write_text(text.replace('name = "lstm_peephole"', 'name = "my_lstm"'))
    mine, builtin = derive.cell_from_spec(p), derive.cell("lstm_peephole")
    assert mine.name == "my_lstm" and mine.source == str(p)
    assert mine.step_jacobian() == builtin.step_jacobian()
    assert mine.backward().outputs() == builtin.backward().outputs()


def test_builtin_cells_are_specs_parsed_by_the_same_parser():
    for name in derive.cells():
        path = ROOT / "derive" / "cells" / f"{name}.toml"
        c = derive.cell(name)
        assert Path(c.source) == path
        again = parse_spec(path.read_text(), path=path)
        assert again.equations == c.equations and again.params == c.params


# ---------------------------------------------------------------------------------------
# hostile specs: no side effect, bounded time and memory
# ---------------------------------------------------------------------------------------

SENTINEL = "SENTINEL_created_by_a_spec"

HOSTILE = {
    "__import__": HEAD + f'h = "__import__(\'os\').system(\'touch {SENTINEL}\')"\n',
    "__import__ as a bare call": HEAD + 'h = "__import__(os)"\n',
    "attribute access": HEAD + 'h = "x.__class__.__bases__"\n',
    "lambda": HEAD + 'h = "(lambda: __import__(\'os\').system(\'touch ' + SENTINEL + '\'))()"\n',
    "eval in a name": HEAD + 'h = "eval(x)"\n',
    "python in a title": HEAD.replace('name = "t"', f'name = "t"\ntitle = "{{__import__(\'os\').system(\'touch {SENTINEL}\')}}"')
    + EQ,
    "python in a cell name": HEAD.replace('name = "t"', 'name = "__import__(\'os\')"') + EQ,
    "path in a cell name": HEAD.replace('name = "t"', 'name = "../../etc/x"') + EQ,
    "LaTeX write18": HEAD + EQ + f'[latex]\nu = "\\\\immediate\\\\write18{{touch {SENTINEL}}}"\n',
    "100000 parentheses": HEAD + 'h = "' + "(" * 100000 + "h_prev" + ")" * 100000 + '"\n',
    "deep nesting within the size limit": HEAD + 'h = "tanh(' + "(" * 200 + "h_prev" + ")" * 201 + '"\n',
    "deeply nested calls": HEAD + 'h = "' + "tanh(" * 200 + "h_prev" + ")" * 200 + '"\n',
    "100000 unary minus": HEAD + 'h = "' + "-" * 100000 + 'h_prev"\n',
    "deeply nested TOML arrays": HEAD + "z = " + "[" * 100000 + "\n",
    "deeply nested TOML tables": HEAD + "z = " + "{a=" * 20000 + "\n",
    "huge float": HEAD + 'h = "1e999999 * h_prev"\n',
    "huge integer in TOML": HEAD.replace('b_h = ["H"]', "b_h = " + "9" * 5000) + EQ,
    "huge number in an equation": HEAD + 'h = "' + "9" * 3000 + ' * h_prev"\n',
    "huge folded constant": HEAD + 'h = "' + " * ".join(["99999999999999999999"] * 40) + ' * h_prev"\n',
    "1000 tokens": HEAD + 'h = "' + "+".join(["u"] * 600) + '"\n',
    "exponential derivation": HEAD.replace('u = ["H"]\n', "") + "\n".join(
        ['e0 = "tanh(W_hh @ h_prev + W_xh @ x + b_h)"']
        + [f'e{k} = "tanh(e{k - 1} + W_hh @ e{k - 1})"' for k in range(1, 40)]
        + ['h = "e39"']) + "\n",
    "fullwidth digits": HEAD + 'h = "\uff12 * h_prev"\n',
    "unicode identifier": HEAD + 'h = "\u210ep\u0280ev"\n',
    "zero-width space": HEAD + 'h = "h\u200b_prev"\n',
    "NUL byte": HEAD + 'h = "h_prev\\u0000"\n',
}

#: hostile-looking text where text is allowed: kept as text, nothing runs
HARMLESS_TEXT = {"python in a title"}

_HOSTILE_RUNNER = textwrap.dedent(r"""
    import json, os, resource, sys, time, tracemalloc
    from derive.spec.tables import SpecError, load_spec, parse_spec
    cases = json.load(open(sys.argv[1]))
    big = sys.argv[2]
    parse_spec(open(os.path.join(sys.argv[3], "derive", "cells", "gru.toml")).read())  # warm up
    WATCH = ("exec", "compile", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
             "subprocess.Popen", "ctypes", "socket", "import", "open", "os.remove", "os.rename",
             "shutil", "os.mkdir", "urllib")
    events = []
    sys.addaudithook(lambda ev, args: events.append([ev, repr(args)[:100]]) if ev.startswith(WATCH) else None)
    modules = set(sys.modules)
    ten_mb = "[cell]\nname = 'x'\ntitle = '" + "A" * 10_000_000 + "'\n"
    out = {}
    for name, text in list(cases.items()) + [("10 MB line (file)", None), ("10 MB line (text)", "")]:
        del events[:]
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            if text is None:
                load_spec(big)
            else:
                parse_spec(text or ten_mb)
            result = "accepted"
        except SpecError as exc:
            result = str(exc)
        except BaseException as exc:
            result = "NOT A SPEC ERROR: " + type(exc).__name__ + ": " + str(exc)[:200]
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[name] = {"result": result, "seconds": seconds, "peak_bytes": peak,
                     "events": list(events), "new_modules": sorted(set(sys.modules) - modules)}
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def hostile_results(tmp_path_factory):
    """Every hostile spec parsed in one subprocess with an audit hook, an address-space limit
    and a timeout, run in an empty directory (so a created sentinel file would be seen)."""
    import resource
    work = tmp_path_factory.mktemp("hostile")
    cases = work / "cases.json"
    cases.write_text(json.dumps(HOSTILE))
    big = work / "big.toml"
    with open(big, "w") as fh:
        fh.write('[cell]\nname = "big"\ntitle = "' + "A" * 10_000_000 + '"\n')
    runner = work / "runner.py"
    runner.write_text(_HOSTILE_RUNNER)
    limit = 2 * 1024 ** 3

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    r = subprocess.run([sys.executable, str(runner), str(cases), str(big), str(ROOT)], cwd=work,
                       capture_output=True, text=True, timeout=300, preexec_fn=limits,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    return work, json.loads(r.stdout)


@pytest.mark.parametrize("name", list(HOSTILE) + ["10 MB line (file)", "10 MB line (text)"])
def test_hostile_spec_is_rejected_without_side_effects(hostile_results, name):
    work, results = hostile_results
    res = results[name]
    if name in HARMLESS_TEXT:
        assert res["result"] == "accepted", res
    else:
        assert res["result"] != "accepted", res
    assert not res["result"].startswith("NOT A SPEC ERROR"), res
    # no code ran: no exec/compile/process/network/file events, no module imported
    allowed = [["open", repr((str(work / "big.toml"), "rb", 0))[:100]]] if name.endswith("(file)") else []
    assert [e for e in res["events"] if e not in allowed and e[0] != "open"] == [], res["events"]
    assert all(e[0] != "open" or e in allowed for e in res["events"]), res["events"]
    assert res["new_modules"] == [], res["new_modules"]
    assert not (work / SENTINEL).exists()
    # bounded memory (the peak of Python allocations while reading this spec)
    assert res["peak_bytes"] < 64 * 1024 ** 2, res["peak_bytes"]


def test_hostile_error_messages_name_the_problem(hostile_results):
    _, results = hostile_results
    expect = {
        "__import__": "unexpected character \"'\": strings are not part of the language",
        "__import__ as a bare call": "unknown function '__import__'",
        "attribute access": "unexpected character '.'",
        "lambda": "unexpected character ':'",
        "eval in a name": "unknown function 'eval'",
        "python in a cell name": "cell name",
        "path in a cell name": "cell name",
        "LaTeX write18": "command \\immediate is not allowed",
        "100000 parentheses": "expression is 200006 characters long; the limit is 4000",
        "deep nesting within the size limit": "nested deeper than 40 levels",
        "deeply nested calls": "function calls nested deeper than 8 levels",
        "deeply nested TOML arrays": "nested too deeply",
        "huge integer in TOML": "Exceeds the limit (4300 digits)",
        "huge number in an equation": "the limit is 24",
        "huge folded constant": "larger than 128 bits",
        "1000 tokens": "more than 1000 tokens",
        "exponential derivation": "the derivation would be too large",
        "fullwidth digits": "U+FF12 FULLWIDTH DIGIT TWO",
        "zero-width space": "U+200B ZERO WIDTH SPACE",
        "10 MB line (file)": "spec file is 1000",
        "10 MB line (text)": "spec is larger than 262144 bytes",
    }
    for name, fragment in expect.items():
        assert fragment in results[name]["result"], (name, results[name]["result"])


def test_derivation_size_bounds_the_builtin_cells():
    """The limit leaves room: every built-in cell is far below it."""
    sizes = {n: spec.derivation_size(derive.cell(n).equations + derive.cell(n).readout)
             for n in derive.cells()}
    assert max(sizes.values()) * 4 < spec.MAX_DERIVATION_SIZE, sizes
