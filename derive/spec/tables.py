"""Cell specs: a TOML file with the step equations in a small expression language.

Every cell, built-in or user-defined, is written this way (``derive/cells/*.toml``)::

    [cell]
    name = "rnn_tanh"
    title = "Elman RNN, tanh"
    states = ["h"]

    [params]                 # name = [rows, cols], [rows] or ["1"]; dims are "H" and "D"
    W_xh = ["H", "D"]
    W_hh = ["H", "H"]
    b_h = ["H"]

    [equations]              # x is the input, <state>_prev the previous state
    a = "W_xh @ x + W_hh @ h_prev + b_h"
    h = "tanh(a)"

Expression language (``docs/cells.md`` has the full description)::

    expr  := term (('+' | '-') term)*
    term  := unary (('*' | '@') unary)*          '*' and '@' bind equally, left to right
    unary := '-' unary | atom
    atom  := number | name | function '(' expr ')' | '(' expr ')'

``@`` is the matrix product (its left operand a parameter matrix, or a product of them),
``*`` the Hadamard product of two vectors or a number times anything, numbers are decimal
(``2``, ``0.5``; a number in a sum means that number times the all-ones vector, so ``1 - z``
is ``1 - z`` entry by entry), functions are ``sigmoid``, ``tanh``, ``relu``.

The text is read by the project's own tokenizer and recursive-descent parser
(:mod:`derive.spec.lang`) into SymPy matrix expressions; nothing goes to ``eval``, ``exec`` or
``sympify``. Input size, tokens, nesting depth, number and name length, counts of states,
parameters and equations, and the derivation's size (:func:`derivation_size`) are bounded: a
hostile spec fails fast with a :class:`SpecError` naming file, line and column (1-based).
"""
from __future__ import annotations

import difflib
import re
import stat
import sys
import unicodedata
from fractions import Fraction
from pathlib import Path

import sympy

from derive.core.cell import Cell, Equation
from derive.spec.lang import (MAX_DEPTH, MAX_EXPR_CHARS, MAX_NAME_CHARS, MAX_TOKENS, SpecError,
                        describe_char, is_vector, parse_expression, shape_str,
                        tokenize)
from derive.spec.limits import (MAX_SPEC_BYTES, MAX_TEXT_CHARS, MAX_LATEX_CHARS, MAX_STATES, MAX_PARAMS,
                          MAX_EQUATIONS, MAX_DERIVATION_SIZE, NAME_RE, TABLES, CELL_KEYS,
                          RESERVED, RESERVED_PREFIXES)
from derive.spec.cost import derivation_size
from derive.spec.positions import TomlPositions
from derive.core.centring import sums_to_zero
from derive.core.symbols import DIMS, Centred, Input, Param, PrevState, Var, prev_name
from derive.spec.shapes import param_shape, state_shape_message, state_shapes
from derive.core.reduction import DimSize

__all__ = ["SpecError", "load_spec", "parse_spec", "derivation_size", "MAX_SPEC_BYTES",
           "MAX_EXPR_CHARS", "MAX_TOKENS", "MAX_DEPTH", "MAX_DERIVATION_SIZE"]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib



# ---------------------------------------------------------------------------------------
# spec files
# ---------------------------------------------------------------------------------------

class _Spec:
    """One spec being read: the text, its path and positions, and error helpers."""

    def __init__(self, text, path):
        self.text, self.path = text, path
        self.pos = TomlPositions(text)

    def error(self, msg, where=(0, 0)):
        return SpecError(msg, self.path, *where)

    def table(self, doc, name, required):
        val = doc.get(name)
        if val is None:
            if required:
                raise self.error(f"spec needs a [{name}] table")
            return {}
        if not isinstance(val, dict):
            raise self.error(f"[{name}] must be a table, got {_toml_kind(val)}", self.pos.key(name))
        return val


def _toml_kind(v):
    return {str: "a string", int: "an integer", float: "a float", bool: "a boolean",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)


def load_spec(path) -> Cell:
    """Read a cell spec file (see the module docstring)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise SpecError(f"cannot read spec: {exc.strerror}", path) from None
    if not stat.S_ISREG(st.st_mode):
        raise SpecError("cannot read spec: not a regular file", path)
    if st.st_size > MAX_SPEC_BYTES:
        raise SpecError(f"spec file is {st.st_size} bytes; the limit is {MAX_SPEC_BYTES}", path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read spec: {exc.strerror}", path) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"spec file is larger than {MAX_SPEC_BYTES} bytes", path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SpecError(f"spec is not UTF-8 text (byte 0x{data[exc.start]:02x})", path, line,
                        exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1) from None
    return parse_spec(text, path)


def parse_spec(text: str, path="<spec>") -> Cell:
    """Build a :class:`Cell` from spec text."""
    if not isinstance(text, str):
        raise SpecError(f"spec text must be a string, got {type(text).__name__}", path)
    if len(text) > MAX_SPEC_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        raise SpecError(f"spec is larger than {MAX_SPEC_BYTES} bytes", path)
    text = text.removeprefix("\ufeff")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line, col = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        if not m and "end of document" in str(exc):
            line, col = text.count("\n") + 1, len(text) - text.rfind("\n")
        raise SpecError(f"TOML syntax error: {str(exc).split(' (at')[0]}", path, line, col) from None
    except RecursionError:
        raise SpecError("TOML syntax error: arrays or tables nested too deeply", path) from None
    except ValueError as exc:           # e.g. an integer with more than 4300 digits
        raise SpecError(f"TOML value error: {str(exc).split(';')[0]}", path) from None
    return _build(doc, _Spec(text, path))


def _build(doc, sp: _Spec) -> Cell:
    pos = sp.pos
    for section, val in doc.items():
        if section not in TABLES:
            close = difflib.get_close_matches(section, TABLES, n=1)
            hint = f"; did you mean [{close[0]}]?" if close else f"; the tables are {', '.join(TABLES)}"
            raise sp.error(f"unknown table [{section}]{hint}", pos.key(section))
    meta = sp.table(doc, "cell", required=True)
    for key in meta:
        if key not in CELL_KEYS:
            raise sp.error(f"unknown key {key!r} in [cell]; the keys are {', '.join(CELL_KEYS)}",
                           pos.key("cell", key))
    name = _require(meta, "name", str, sp)
    if not NAME_RE.match(name) or len(name) > MAX_NAME_CHARS:
        raise sp.error(f"cell name {name!r} must be letters, digits and _, starting with a letter "
                       f"(at most {MAX_NAME_CHARS} characters)", pos.value("cell", "name"))
    if name in RESERVED:
        raise sp.error(f"cell name {name!r} is reserved: a Python keyword, or a name the generated "
                       f"kernels define or import", pos.value("cell", "name"))
    texts = {k: _text(meta, k, sp) for k in ("title", "reference", "description")}
    states = _require(meta, "states", list, sp)
    if not states or not all(isinstance(s, str) for s in states):
        raise sp.error("[cell] states must be a non-empty array of names", pos.value("cell", "states"))
    if len(states) > MAX_STATES:
        raise sp.error(f"{len(states)} states; the limit is {MAX_STATES}", pos.value("cell", "states"))
    for k, s in enumerate(states):
        _check_name(s, "state", sp, pos.item(k, "cell", "states"))
        if s in states[:k]:
            raise sp.error(f"state {s!r} is listed twice", pos.item(k, "cell", "states"))

    holdable = meta.get("holdable", [])
    if not isinstance(holdable, list) or not all(isinstance(s, str) for s in holdable):
        raise sp.error("[cell] holdable must be an array of state names", pos.value("cell", "holdable"))
    for k, s in enumerate(holdable):
        if s not in states:
            raise sp.error(f"[cell] holdable names {s!r}, which is not a state; the states are "
                           f"{', '.join(states)}", pos.item(k, "cell", "holdable"))
    shapes = state_shapes(sp.table(doc, "state_shapes", required=False), states, sp, pos)
    scope: dict = {"x": Input("x", DIMS["D"], 1)}
    named = set(sp.table(doc, "params", False)) | set(sp.table(doc, "equations", False))
    if "H" not in named:                # H, the hidden size, unless the spec names its own H
        scope["H"] = DimSize(DIMS["H"])
    for s in states:
        scope[prev_name(s)] = PrevState(prev_name(s), *shapes[s])

    def read_params(table_name):
        out = {}
        for pname, dims in sp.table(doc, table_name, required=False).items():
            where = pos.key(table_name, pname)
            _check_name(pname, "parameter", sp, where)
            if pname in scope:
                other = scope[pname]
                what = ("a parameter" if isinstance(other, Param) else
                        "an equation" if isinstance(other, Var) else "a previous state")
                raise sp.error(f"parameter {pname!r} has the name of {what}", where)
            out[pname] = Param(pname, *param_shape(pname, dims, sp, pos.value(table_name, pname)))
            scope[pname] = out[pname]
        return out

    n_params = len(sp.table(doc, "params", False)) + len(sp.table(doc, "readout_params", False))
    if n_params > MAX_PARAMS:
        raise sp.error(f"{n_params} parameters; the limit is {MAX_PARAMS}", pos.key("params"))
    step_table = sp.table(doc, "equations", required=True)
    readout_table = sp.table(doc, "readout", required=False)
    if len(step_table) + len(readout_table) > MAX_EQUATIONS:
        raise sp.error(f"{len(step_table) + len(readout_table)} equations; the limit is "
                       f"{MAX_EQUATIONS}", pos.key("equations"))
    # the step sees [params] only; the readout also sees [readout_params] and the step's values
    params = read_params("params")
    readout_names = [n for n in sp.table(doc, "readout_params", False) if n not in scope]
    for n in readout_names:             # known, but not to the step (see _Parser.atom)
        scope[n] = None
    equations = _read_equations(step_table, "equations", scope, sp, states)
    for n in readout_names:
        if scope[n] is None:
            del scope[n]
    for k, s in enumerate(states):
        if s not in step_table:
            raise sp.error(f"state {s!r} has no equation in [equations]", pos.item(k, "cell", "states"))
    readout_params = read_params("readout_params")
    readout = _read_equations(readout_table, "readout", scope, sp, states, allow_empty=True)
    for eq in equations:
        if eq.lhs.name in states and tuple(eq.rhs.shape) != shapes[eq.lhs.name]:
            raise sp.error(state_shape_message(eq.lhs.name, shapes[eq.lhs.name], eq.rhs),
                           pos.value("equations", eq.lhs.name))
    for table_name, declared, eqs in (("params", params, equations),
                                      ("readout_params", readout_params, readout)):
        unused = [p for p in declared if not any(_uses(eq.rhs, declared[p]) for eq in eqs)]
        if unused:
            where = "[equations]" if table_name == "params" else "[readout]"
            raise sp.error(f"parameter {unused[0]!r} is declared but not used by any equation "
                           f"in {where}", pos.key(table_name, unused[0]))
    size = derivation_size(equations + readout)
    if size > MAX_DERIVATION_SIZE:
        raise sp.error(f"the derivation would be too large: the chain rule through these "
                       f"equations has {size if size < 10**12 else 'more than 10^12'} terms "
                       f"(limit {MAX_DERIVATION_SIZE}); name shared subexpressions or "
                       f"simplify the cell", pos.key("equations"))
    latex = _read_latex(sp.table(doc, "latex", required=False), scope, sp)
    torch = _read_torch(doc.get("torch"), params, sp)
    return Cell(name, states=states, params=params, equations=equations, readout=readout,
                state_shapes=shapes,
                readout_params=readout_params, notation=latex, source=str(sp.path), torch=torch,
                holdable=tuple(dict.fromkeys(holdable)), **texts)


def _require(table, key, kind, sp):
    if key not in table:
        raise sp.error(f"[cell] needs {key!r}", sp.pos.key("cell"))
    val = table[key]
    if not isinstance(val, kind):
        raise sp.error(f"[cell] {key!r} must be {_toml_kind(kind())}, got {_toml_kind(val)}",
                       sp.pos.value("cell", key))
    return val


def _text(meta, key, sp):
    """A free-text field: a string of printable characters (newlines allowed), bounded."""
    val = meta.get(key, "")
    where = sp.pos.value("cell", key)
    if not isinstance(val, str):
        raise sp.error(f"[cell] {key!r} must be a string, got {_toml_kind(val)}", where)
    if len(val) > MAX_TEXT_CHARS:
        raise sp.error(f"[cell] {key!r} has {len(val)} characters; the limit is {MAX_TEXT_CHARS}",
                       where)
    for ch in val:
        if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise sp.error(f"[cell] {key!r} contains the control or format character "
                           f"{describe_char(ch)}", where)
    return val


def _check_name(name, what, sp, where):
    if not NAME_RE.match(name):
        bad = next((c for c in name if not (c.isascii() and (c.isalnum() or c == "_"))), None)
        detail = f"; {describe_char(bad)} is not allowed" if bad else ""
        raise sp.error(f"{what} name {name!r} must be ASCII letters, digits and _, starting "
                       f"with a letter{detail}", where)
    if len(name) > MAX_NAME_CHARS:
        raise sp.error(f"{what} name {name[:12]}... has {len(name)} characters; the limit is "
                       f"{MAX_NAME_CHARS}", where)
    if name in RESERVED or name.startswith(RESERVED_PREFIXES) or name.endswith("_prev"):
        raise sp.error(f"{what} name {name!r} is reserved (x, *_prev, delta_*, Delta_*, "
                       f"function names and Python keywords are)", where)


def _uses(expr, sym):
    return expr == sym or any(_uses(a, sym) for a in getattr(expr, "args", ()) if hasattr(a, "shape"))


def _read_equations(table, section, scope, sp, states, allow_empty=False):
    pos = sp.pos
    if not table and not allow_empty:
        raise sp.error(f"spec needs an [{section}] table with at least one equation", pos.key(section))
    names = list(table)
    for n in names:
        where = pos.key(section, n)
        _check_name(n, "equation", sp, where)
        if n in scope:
            what = ("an equation" if isinstance(scope[n], Var) else
                    "a readout parameter" if scope[n] is None else "a parameter")
            raise sp.error(f"equation {n!r} reuses the name of {what}", where)
        if section == "readout" and n in states:
            raise sp.error(f"readout equation {n!r} has the name of a state", where)
        if not isinstance(table[n], str):
            raise sp.error(f"equation {n!r} must be a string, got {_toml_kind(table[n])}",
                           pos.value(section, n))
    pending = {n: table[n] for n in names}
    locators = {n: pos.value_locator((section, n), pending[n]) for n in names}
    parsed: dict = {}
    visiting: list = []                   # [(name, offset of the reference that led here)]

    def parse(n):
        if n in parsed:
            return
        visiting.append(n)
        locate = locators[n]
        # parse the equations this one refers to first (their shapes are needed)
        for kind, val, off in tokenize(pending[n], locate, sp.path):
            if kind != "name" or val not in pending or val in parsed:
                continue
            if val == n:
                hint = f"; use {prev_name(n)} for the previous step" if n in states else ""
                raise sp.error(f"equation {n!r} refers to itself{hint}", locate(off))
            if val in visiting:
                cyc = visiting[visiting.index(val):] + [val]
                prev_states = [s for s in cyc if s in states]
                hint = (f"; for the previous step's value write {prev_name(prev_states[0])}"
                        if prev_states else "")
                raise sp.error("cycle between equations: " + " -> ".join(cyc) + hint, locate(off))
            parse(val)
        rhs = parse_expression(pending[n], scope, locate, sp.path)
        if isinstance(rhs, Fraction):
            raise sp.error(f"equation {n!r} is a bare number", locate(0))
        if not is_vector(rhs):
            raise sp.error(f"equation {n!r} is a {shape_str(rhs)} matrix; equations define "
                           f"vectors", locate(0))
        scope[n] = lhs = (Centred if sums_to_zero(rhs) else Var)(n, *rhs.shape)
        parsed[n] = Equation(lhs, rhs, locate(0)[0])
        visiting.pop()

    for n in names:
        parse(n)
    # keep the file's order when it is already a valid order, else dependency order
    order, done = [], set()

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


# -- [latex] --------------------------------------------------------------------------------

#: LaTeX commands a [latex] entry may use: accents, fonts and letters, nothing that reads
#: or writes files, defines macros or changes catcodes.
LATEX_COMMANDS = frozenset("""
    bar tilde hat check breve vec dot ddot widetilde widehat overline underline
    mathrm mathbf mathit mathsf mathtt mathcal mathfrak mathbb boldsymbol bm operatorname
    imath jmath ell prime star ast circ dagger
    alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu
    xi pi varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega
    Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega
""".split())
_LATEX_TOKEN_RE = re.compile(r"\\([A-Za-z]+)|\\(.)|([A-Za-z0-9 _^{}'(),.+\-*|/])|(.)", re.ASCII | re.S)


def _read_latex(table, scope, sp):
    out = {}
    for k, v in table.items():
        where = sp.pos.value("latex", k)
        if k not in scope:
            raise sp.error(f"[latex] entry {k!r} does not name a symbol of the cell", sp.pos.key("latex", k))
        if not isinstance(v, str):
            raise sp.error(f"[latex] entry {k!r} must be a string, got {_toml_kind(v)}", where)
        if len(v) > MAX_LATEX_CHARS:
            raise sp.error(f"[latex] entry {k!r} has {len(v)} characters; the limit is "
                           f"{MAX_LATEX_CHARS}", where)
        locate = sp.pos.value_locator(("latex", k), v)
        if "^^" in v:
            raise sp.error(f"[latex] entry {k!r}: '^^' (TeX's character-code notation) is not "
                           f"allowed", locate(v.index("^^")))
        depth = 0
        for m in _LATEX_TOKEN_RE.finditer(v):
            cmd, sym, plain, bad = m.groups()
            if cmd is not None and cmd not in LATEX_COMMANDS:
                raise sp.error(f"[latex] entry {k!r}: command \\{cmd} is not allowed (allowed: "
                               f"accents, font commands and Greek letters)", locate(m.start()))
            if sym is not None and sym not in ", ;!":
                raise sp.error(f"[latex] entry {k!r}: \\{sym} is not allowed", locate(m.start()))
            if bad is not None:
                raise sp.error(f"[latex] entry {k!r}: character {describe_char(bad)} is not "
                               f"allowed", locate(m.start()))
            if plain == "{":
                depth += 1
            elif plain == "}":
                depth -= 1
                if depth < 0:
                    raise sp.error(f"[latex] entry {k!r}: unbalanced '}}'", locate(m.start()))
        if depth:
            raise sp.error(f"[latex] entry {k!r}: unbalanced '{{'", where)
        out[k] = v
    return out


# -- [torch] --------------------------------------------------------------------------------

TORCH_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
TORCH_KEYS = {"weight_ih_l0": ("H", "D"), "weight_hh_l0": ("H", "H"),
              "bias_ih_l0": ("H",), "bias_hh_l0": ("H",)}


def _read_torch(table, params, sp):
    """[torch]: how PyTorch packs this cell's parameters (data, not math).

    ``module`` names the torch.nn class (RNN, GRU, LSTM); ``nonlinearity`` (RNN only) is
    ``tanh`` or ``relu``. Each of ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
    ``bias_hh_l0`` lists the parameters stacked in that PyTorch tensor, in PyTorch's row
    order, one per gate. A parameter listed under both biases (at the same gate) is their
    sum, PyTorch's redundant pair of biases; a bias listed under one only is that tensor's
    block alone (the GRU's b_hn). Every parameter of the cell must appear."""
    if table is None:
        return None
    pos = sp.pos
    if not isinstance(table, dict):
        raise sp.error(f"[torch] must be a table, got {_toml_kind(table)}", pos.key("torch"))
    module = table.get("module")
    if module not in TORCH_GATES:
        raise sp.error(f"[torch] module must be one of {', '.join(TORCH_GATES)}, got {module!r}",
                       pos.value("torch", "module") if "module" in table else pos.key("torch"))
    out = {"module": module}
    if "nonlinearity" in table:
        if module != "RNN" or table["nonlinearity"] not in ("tanh", "relu"):
            raise sp.error("[torch] nonlinearity must be \"tanh\" or \"relu\", and only for "
                           "module = \"RNN\"", pos.value("torch", "nonlinearity"))
        out["nonlinearity"] = table["nonlinearity"]
    gates = TORCH_GATES[module]
    for key in table:
        if key not in TORCH_KEYS and key not in ("module", "nonlinearity"):
            raise sp.error(f"unknown key {key!r} in [torch]; the keys are module, nonlinearity, "
                           + ", ".join(TORCH_KEYS), pos.key("torch", key))
    listed = set()
    for key, dims in TORCH_KEYS.items():
        names = table.get(key)
        if not isinstance(names, list) or len(names) != gates:
            raise sp.error(f"[torch] {key} must list {gates} parameter(s), one per gate of "
                           f"torch.nn.{module}", pos.value("torch", key) if key in table else pos.key("torch"))
        want = tuple(DIMS[d] for d in dims) + ((1,) if len(dims) == 1 else ())
        for k, n in enumerate(names):
            if not isinstance(n, str) or n not in params:
                raise sp.error(f"[torch] {key}: {n!r} is not a parameter of the cell",
                               pos.item(k, "torch", key))
            if params[n].shape != want:
                raise sp.error(f"[torch] {key}: {n!r} is {shape_str(params[n])}, but {key} stacks "
                               f"{shape_str(sympy.ZeroMatrix(*want))} blocks", pos.item(k, "torch", key))
        out[key] = list(names)
        listed.update(names)
    ih, hh = out["bias_ih_l0"], out["bias_hh_l0"]
    for k, n in enumerate(ih):
        if n in hh and hh.index(n) != k:
            raise sp.error(f"[torch] bias {n!r} is listed under both biases at different gates",
                           pos.item(k, "torch", "bias_ih_l0"))
    missing = [p for p in params if p not in listed]
    if missing:
        raise sp.error(f"[torch] does not place parameter {missing[0]!r} in any PyTorch tensor",
                       pos.key("torch"))
    return out
