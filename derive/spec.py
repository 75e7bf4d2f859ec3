"""Cell specs: a TOML file with the step equations in a small expression language.

Every cell, built-in or user-defined, is written this way (``derive/cells/*.toml``)::

    [cell]
    name = "rnn_tanh"
    title = "Elman RNN, tanh"
    states = ["h"]

    [params]                 # name = [rows, cols] or [rows]; dims are "H" and "D"
    W_xh = ["H", "D"]
    W_hh = ["H", "H"]
    b_h = ["H"]

    [equations]              # in order; x is the input, <state>_prev the previous state
    a = "W_xh @ x + W_hh @ h_prev + b_h"
    h = "tanh(a)"

Expression language: ``@`` matrix product, ``*`` Hadamard product (or a number times a
matrix), ``+``, ``-``, numbers, parentheses and the functions ``sigmoid``, ``tanh``, ``relu``.
The text is read by the tokenizer and recursive-descent parser below into SymPy matrix
expressions; nothing is passed to ``eval``, ``exec`` or ``sympify``. Input size, token count
and nesting depth are bounded, so a hostile spec fails fast with a :class:`SpecError` naming
file, line and column.
"""
from __future__ import annotations

import re
import sys
from fractions import Fraction
from pathlib import Path

import sympy
from sympy import MatrixSymbol

from .algebra import add, hadamard, matmul, ones, scale
from .cell import Cell, Equation
from .primitives import FUNCTIONS
from .symbols import DIMS, Param, PrevState, Var, prev_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_SPEC_BYTES = 256 * 1024
MAX_EXPR_CHARS = 4000
MAX_TOKENS = 1000
MAX_DEPTH = 40
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


class SpecError(ValueError):
    """A problem in a cell spec, located by file, line and column."""

    def __init__(self, message, path="<spec>", line=0, col=0):
        self.path, self.line, self.col, self.message = str(path), line, col, message
        where = f"{self.path}:{line}:{col}" if line else self.path
        super().__init__(f"{where}: {message}")


# ---------------------------------------------------------------------------------------
# tokenizer and parser
# ---------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                       r"|(?P<op>[-+*@()]))")


def tokenize(text, locate):
    """[(kind, value, offset)]; ``locate(offset)`` turns an offset into (line, col)."""
    if len(text) > MAX_EXPR_CHARS:
        raise SpecError(f"expression is {len(text)} characters long; the limit is "
                        f"{MAX_EXPR_CHARS}", *locate(0))
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(text, pos)
        if not m:
            ch = text[pos:].lstrip()[:1]
            off = pos + (len(text[pos:]) - len(text[pos:].lstrip()))
            raise SpecError(f"unexpected character {ch!r}", *locate(off))
        kind = m.lastgroup
        tokens.append((kind, m.group(kind), m.start(kind)))
        if len(tokens) > MAX_TOKENS:
            raise SpecError(f"expression has more than {MAX_TOKENS} tokens", *locate(pos))
        pos = m.end()
    tokens.append(("end", "", len(text)))
    return tokens


class _Parser:
    """Recursive descent over: expr := term (('+'|'-') term)*;
    term := unary (('*'|'@') unary)*;  unary := '-' unary | atom;
    atom := number | name | name '(' expr ')' | '(' expr ')'."""

    def __init__(self, text, scope, locate):
        self.tokens = tokenize(text, locate)
        self.i = 0
        self.scope = scope          # name -> SymPy symbol
        self.locate = locate
        self.depth = 0
        self.used = []              # (name, offset) of every symbol referenced

    def error(self, msg, offset=None):
        if offset is None:
            offset = self.tokens[self.i][2]
        return SpecError(msg, *self.locate(offset))

    def peek(self):
        return self.tokens[self.i]

    def take(self):
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self):
        node = self.expr()
        kind, val, off = self.peek()
        if kind != "end":
            raise self.error(f"unexpected {val!r}")
        return node

    def _nest(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels")

    def expr(self):
        self._nest()
        left, loff = self.term()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            _, op, off = self.take()
            right, roff = self.term()
            left = self.combine_add(left, right, op, off)
        self.depth -= 1
        return left

    def term(self):
        left, loff = self.unary()
        while self.peek()[0] == "op" and self.peek()[1] in ("*", "@"):
            _, op, off = self.take()
            right, _ = self.unary()
            left = self.combine_mul(left, right, op, off)
        return left, loff

    def unary(self):
        kind, val, off = self.peek()
        if kind == "op" and val == "-":
            self.take()
            self._nest()
            inner, _ = self.unary()
            self.depth -= 1
            return (-inner if isinstance(inner, Fraction) else scale(-1, inner)), off
        return self.atom(), off

    def atom(self):
        kind, val, off = self.take()
        if kind == "num":
            return Fraction(val)
        if kind == "op" and val == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        if kind == "name":
            if self.peek()[1] == "(" and self.peek()[0] == "op":
                fn = FUNCTIONS.get(val)
                if fn is None:
                    raise self.error(f"unknown function {val!r}; the functions are "
                                     + ", ".join(sorted(FUNCTIONS)), off)
                self.take()
                arg = self.expr()
                self.expect(")")
                if isinstance(arg, Fraction):
                    raise self.error(f"{val}() of a number is not a cell quantity", off)
                return fn(arg)
            if val in FUNCTIONS:
                raise self.error(f"function {val!r} needs an argument in parentheses", off)
            sym = self.scope.get(val)
            if sym is None:
                raise self.error(f"undeclared symbol {val!r}", off)
            self.used.append((val, off))
            return sym
        if kind == "end":
            raise self.error("expression ends too early", off)
        raise self.error(f"unexpected {val!r}", off)

    def expect(self, ch):
        kind, val, off = self.take()
        if val != ch:
            raise self.error(f"expected {ch!r}, found {val or 'end of expression'!r}", off)

    # -- typing and building ----------------------------------------------------------
    def combine_add(self, a, b, op, off):
        if isinstance(a, Fraction) and isinstance(b, Fraction):
            return a + b if op == "+" else a - b
        shape = (b if isinstance(a, Fraction) else a).shape
        a = _const(a, shape)
        b = _const(b, shape)
        if a.shape != b.shape:
            raise self.error(f"shape mismatch in {op!r}: {_shape(a)} vs {_shape(b)}", off)
        return add([a, b if op == "+" else scale(-1, b)], shape)

    def combine_mul(self, a, b, op, off):
        if isinstance(a, Fraction) or isinstance(b, Fraction):
            if op == "@":
                raise self.error("'@' needs two matrices; use '*' to scale by a number", off)
            if isinstance(a, Fraction) and isinstance(b, Fraction):
                return a * b
            k, m = (a, b) if isinstance(a, Fraction) else (b, a)
            return scale(sympy.Rational(k.numerator, k.denominator), m)
        if op == "@":
            if a.shape[1] != b.shape[0]:
                raise self.error(f"shape mismatch in '@': {_shape(a)} @ {_shape(b)}", off)
            if a.shape[1] == 1:
                raise self.error("'@' of two column vectors: use '*' for the elementwise product", off)
            if not isinstance(a, Param) and not (hasattr(a, "free_symbols") and
                                                 all(isinstance(s, Param) for s in _matrix_leaves(a))):
                raise self.error("the left operand of '@' must be a parameter matrix", off)
            return matmul(a, b)
        if a.shape != b.shape:
            raise self.error(f"shape mismatch in '*': {_shape(a)} * {_shape(b)}", off)
        if a.shape[1] != 1:
            raise self.error("'*' is the elementwise product of vectors; use '@' for matrices", off)
        return hadamard([a, b])


def _const(v, shape):
    if isinstance(v, Fraction):
        return scale(sympy.Rational(v.numerator, v.denominator), ones(shape))
    return v


def _shape(e):
    r, c = e.shape
    return f"({r}, {c})" if c != 1 else f"({r},)"


def _matrix_leaves(e):
    if isinstance(e, MatrixSymbol):
        return [e]
    return [s for a in e.args if hasattr(a, "shape") for s in _matrix_leaves(a)]


# ---------------------------------------------------------------------------------------
# spec files
# ---------------------------------------------------------------------------------------

class _Locator:
    """Maps (table, key) and an offset within its string value to (line, col) in the file."""

    def __init__(self, text):
        self.lines = text.splitlines()

    def find(self, table, key):
        """(line, col of the first character inside the quotes) of ``key = "..."`` in [table]."""
        section = None
        for n, raw in enumerate(self.lines, 1):
            s = raw.strip()
            if s.startswith("[") and s.endswith("]"):
                section = s.strip("[]").strip()
                continue
            if section == table:
                m = re.match(r"\s*(" + re.escape(key) + r")\s*=\s*(['\"]{1,3})", raw)
                if m:
                    return n, m.end() + 1
        return 0, 0

    def for_value(self, table, key):
        line, col = self.find(table, key)

        def locate(offset):
            return (line, col + offset) if line else (0, 0)
        return locate


def _require(table, key, kind, path, loc, section):
    if key not in table:
        raise SpecError(f"[{section}] needs {key!r}", path, *loc.find(section, key))
    val = table[key]
    if not isinstance(val, kind):
        raise SpecError(f"[{section}] {key!r} must be a {kind.__name__}", path, *loc.find(section, key))
    return val


def _check_name(name, path, loc, section, what):
    if not NAME_RE.match(name) or name in FUNCTIONS or name == "x":
        raise SpecError(f"{what} name {name!r} is not allowed (letters, digits and _, starting "
                        f"with a letter; not a function name or 'x')", path, *loc.find(section, name))


def _param_shape(name, dims, path, loc):
    if not isinstance(dims, list) or not 1 <= len(dims) <= 2 or any(d not in DIMS for d in dims):
        raise SpecError(f"parameter {name!r}: shape must be [\"H\"], [\"H\", \"D\"] or "
                        f"[\"H\", \"H\"] (dims are H and D), got {dims!r}", path,
                        *loc.find("params", name))
    rows = DIMS[dims[0]]
    cols = DIMS[dims[1]] if len(dims) == 2 else 1
    return rows, cols


def load_spec(path) -> Cell:
    """Read a cell spec file (see the module docstring)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SpecError(f"cannot read spec: {exc.strerror}", path) from None
    if size > MAX_SPEC_BYTES:
        raise SpecError(f"spec file is {size} bytes; the limit is {MAX_SPEC_BYTES}", path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec: {exc}", path) from None
    return parse_spec(text, path)


def parse_spec(text: str, path="<spec>") -> Cell:
    """Build a :class:`Cell` from spec text."""
    if len(text.encode("utf-8", "replace")) > MAX_SPEC_BYTES:
        raise SpecError(f"spec is larger than {MAX_SPEC_BYTES} bytes", path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+), column (\d+)", str(exc))
        line, col = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        raise SpecError(f"TOML syntax error: {str(exc).split(' (at')[0]}", path, line, col) from None
    loc = _Locator(text)
    for section in doc:
        if section not in ("cell", "params", "equations", "readout", "readout_params", "latex",
                           "torch"):
            raise SpecError(f"unknown table [{section}]", path, *loc.find(section, ""))
    meta = _require(doc, "cell", dict, path, loc, "cell") if "cell" in doc else None
    if meta is None:
        raise SpecError("spec needs a [cell] table", path)
    name = _require(meta, "name", str, path, loc, "cell")
    if not NAME_RE.match(name):
        raise SpecError(f"cell name {name!r} must be letters, digits and _", path, *loc.find("cell", "name"))
    states = _require(meta, "states", list, path, loc, "cell")
    if not states or not all(isinstance(s, str) for s in states):
        raise SpecError("[cell] states must be a non-empty list of names", path, *loc.find("cell", "states"))
    for s in states:
        _check_name(s, path, loc, "cell", "state")

    scope: dict = {"x": None}
    from .symbols import Input
    scope["x"] = Input("x", DIMS["D"], 1)
    for s in states:
        scope[prev_name(s)] = PrevState(prev_name(s), DIMS["H"], 1)

    def read_params(table_name):
        out = {}
        for pname, dims in doc.get(table_name, {}).items():
            _check_name(pname, path, loc, table_name, "parameter")
            if pname in scope:
                raise SpecError(f"parameter {pname!r} is declared twice", path, *loc.find(table_name, pname))
            out[pname] = Param(pname, *_param_shape(pname, dims, path, loc))
            scope[pname] = out[pname]
        return out

    params = read_params("params")
    readout_params = read_params("readout_params")
    equations = _read_equations(doc.get("equations"), "equations", scope, params, path, loc, text)
    names = {eq.lhs.name for eq in equations}
    for s in states:
        if s not in names:
            raise SpecError(f"state {s!r} has no equation in [equations]", path, *loc.find("cell", "states"))
    readout = _read_equations(doc.get("readout", {}), "readout", scope, readout_params, path, loc,
                              text, allow_empty=True)
    for eq in equations + readout:
        if eq.lhs.name in states and eq.rhs.shape != (DIMS["H"], 1):
            raise SpecError(f"state {eq.lhs.name!r} must be an (H,) vector, got {_shape(eq.rhs)}",
                            path, eq.line, 1)
    unused = [p for p in params if not any(_uses(eq.rhs, params[p]) for eq in equations)]
    if unused:
        raise SpecError(f"parameter {unused[0]!r} is declared but not used by any equation",
                        path, *loc.find("params", unused[0]))
    latex = doc.get("latex", {})
    for k, v in latex.items():
        if k not in scope or not isinstance(v, str):
            raise SpecError(f"[latex] entry {k!r} does not name a symbol of the cell", path, *loc.find("latex", k))
    torch = _read_torch(doc.get("torch"), params, path, loc)
    return Cell(name, states=states, params=params, equations=equations, readout=readout,
                readout_params=readout_params, title=meta.get("title", ""),
                reference=meta.get("reference", ""), description=meta.get("description", ""),
                notation=latex, source=str(path), torch=torch)


def _read_torch(table, params, path, loc):
    """[torch]: how PyTorch packs this cell's parameters (data, not math).

    ``module`` names the torch.nn class; every other key is a PyTorch state-dict key
    (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``) listing the
    parameters stacked in it, in PyTorch's row order. A parameter listed under both biases
    is their sum (PyTorch's redundant pair of biases)."""
    if table is None:
        return None
    if not isinstance(table.get("module"), str):
        raise SpecError("[torch] needs module = \"LSTM\" (or RNN, GRU)", path, *loc.find("torch", "module"))
    out = {"module": table["module"]}
    for key, names in table.items():
        if key == "module":
            continue
        if key == "nonlinearity":
            out[key] = str(names)
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) and n in params for n in names):
            raise SpecError(f"[torch] {key} must list parameters of the cell", path, *loc.find("torch", key))
        out[key] = list(names)
    return out


def _uses(expr, sym):
    return expr == sym or any(_uses(a, sym) for a in getattr(expr, "args", ()) if hasattr(a, "shape"))


def _read_equations(table, section, scope, params, path, loc, text, allow_empty=False):
    if table is None or (not table and not allow_empty):
        raise SpecError(f"spec needs an [{section}] table with at least one equation", path)
    if not isinstance(table, dict):
        raise SpecError(f"[{section}] must be a table", path)
    names = list(table)
    for n in names:
        _check_name(n, path, loc, section, "equation")
        if n in scope and not isinstance(scope[n], Var):
            raise SpecError(f"equation {n!r} reuses the name of a parameter or input", path, *loc.find(section, n))
        if not isinstance(table[n], str):
            raise SpecError(f"equation {n!r} must be a string", path, *loc.find(section, n))
    # every equation name is visible (so a forward reference is reported as a cycle,
    # not as an undeclared symbol); shapes come from parsing in dependency order
    pending = {n: table[n] for n in names}
    parsed: dict = {}
    visiting: list = []

    def parse(n):
        if n in parsed:
            return parsed[n]
        if n in visiting:
            cyc = visiting[visiting.index(n):] + [n]
            raise SpecError("cycle between equations: " + " -> ".join(cyc), path, *loc.find(section, n))
        visiting.append(n)
        locate = loc.for_value(section, n)
        # resolve names referenced by this equation first
        for kind, val, off in tokenize(pending[n], locate):
            if kind == "name" and val in pending and val not in parsed:
                if val == n:
                    raise SpecError(f"equation {n!r} refers to itself; use {prev_name(n)} for the "
                                    f"previous step", path, *locate(off))
                parse(val)
        p = _Parser(pending[n], scope, locate)
        rhs = p.parse()
        if isinstance(rhs, Fraction):
            raise SpecError(f"equation {n!r} is a bare number", path, *locate(0))
        lhs = Var(n, *rhs.shape)
        scope[n] = lhs
        parsed[n] = Equation(lhs, rhs, locate(0)[0])
        visiting.pop()
        return parsed[n]

    # placeholder scope entries so undeclared-symbol errors don't hide equation names
    for n in names:
        if n in scope and isinstance(scope[n], Var):
            raise SpecError(f"equation {n!r} is defined twice", path, *loc.find(section, n))
    for n in names:
        parse(n)
    # keep the file's order when it is already a valid order, else dependency order
    order: list = []
    done: set = set()

    def visit(n):
        if n in done:
            return
        for s in _var_names(parsed[n].rhs):
            if s in parsed:
                visit(s)
        done.add(n)
        order.append(parsed[n])
    for n in names:
        visit(n)
    return order


def _var_names(expr):
    if isinstance(expr, Var):
        return [expr.name]
    return [s for a in getattr(expr, "args", ()) if hasattr(a, "shape") for s in _var_names(a)]
