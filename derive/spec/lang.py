"""The expression language of cell specs: tokenizer, recursive-descent parser, typing.

Grammar (``*`` and ``@`` bind equally and group left to right, as in Python)::

    expr  := term (('+' | '-') term)*
    term  := unary (('*' | '@' | '/') unary)*
    unary := '-' unary | atom
    atom  := number | name | function '(' expr ')' | binary '(' expr ',' expr ')' | '(' expr ')'

Typing, applied while parsing: ``@`` is the matrix product, its left operand a parameter
matrix or a product of them and its right operand a vector or another parameter matrix, or
``C @ v``: an H x H matrix state (held as its H^2-vector, never shown so) times an H-vector;
``*`` is the Hadamard product of two vectors of one shape, or a number times anything;
``/`` is entrywise division: ``a / b`` is ``a * reciprocal(b)`` for vectors (a number
``k / b`` is ``k * reciprocal(b)``, ``a / k`` is ``(1/k) * a``; nothing checks b != 0);
``max(a, b)`` and ``min(a, b)`` (:data:`derive.core.binary.BINARY_FUNCTIONS`) take two vectors of
one shape, or a vector and a number;
``+`` and ``-`` take vectors of one shape (a number there is that number times the
all-ones vector); functions (:data:`derive.core.primitives.FUNCTIONS`: sigmoid, tanh, relu,
exp, log, softplus, logsigmoid, silu, abs, sqrt, cos, sin) apply entrywise to vectors, never
to a bare number (log and sqrt are defined for positive entries; nothing checks that);
reductions (:data:`derive.spec.reductions.REDUCTIONS`: ``sum(v)``, ``mean(v)``, ``dot(u, v)``,
``norm(v)``) take vectors and give a scalar (1 x 1), and a scalar meeting a vector in ``+``,
``-``, ``*``, ``/``, ``max`` or ``min`` is broadcast to the vector's rows.
Names resolve through a scope dict supplied by the caller. The result is a SymPy matrix
expression built with the engine's constructors (:mod:`derive.core.algebra`); nothing is passed
to ``eval``, ``exec`` or ``sympify``, and every input size is bounded.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from fractions import Fraction

import sympy
from sympy import MatMul

from derive.core.algebra import add, hadamard, matmul, ones, scale
from derive.core.binary import BINARY_FUNCTIONS
from derive.core.primitives import FUNCTIONS, Reciprocal
from derive.spec.reductions import REDUCTIONS, matrix_times, reduce, unify
from derive.core.symbols import Param, PrevState, Var, prev_name
from derive.spec.shapes import (group, matrix_side, matrix_str, matrix_times_message,
                                mismatch_message)

MAX_EXPR_CHARS = 4000            # one equation
MAX_TOKENS = 1000                # one equation
MAX_DEPTH = 40                   # parentheses, calls and unary minus, nested
MAX_CALL_DEPTH = 8               # function calls nested inside each other: each level doubles
                                 # the derivative's size (the product of the f'(u) factors)
MAX_NUMBER_CHARS = 24            # one number literal
MAX_CONSTANT_BITS = 128          # numerator and denominator of a folded constant
MAX_NAME_CHARS = 40


class SpecError(ValueError):
    """A problem in a cell spec, located by file, line and column (0 when unknown)."""

    def __init__(self, message, path="<spec>", line=0, col=0):
        self.path, self.line, self.col, self.message = str(path), line, col, message
        where = f"{self.path}:{line}:{col}" if line else self.path
        super().__init__(f"{where}: {message}")


_TOKEN_RE = re.compile(r"[ \t\r\n]*(?:(?P<num>[0-9]+(?:\.[0-9]+)?)"
                       r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[-+*@(),/]))", re.ASCII)
_AFTER_NUMBER_RE = re.compile(r"[A-Za-z_.0-9]", re.ASCII)


def describe_char(ch):
    """'\\u0430' -> "'а' (U+0430 CYRILLIC SMALL LETTER A)"."""
    name = unicodedata.name(ch, "")
    code = f"U+{ord(ch):04X}"
    shown = repr(ch) if ch.isprintable() else code
    return f"{shown} ({code}{' ' + name if name else ''})" if ord(ch) > 127 else shown


_CHAR_HINTS = {
    ".": "attribute access and decimal points without digits are not part of the language",
    "[": "indexing is not part of the language",
    "'": "strings are not part of the language",
    '"': "strings are not part of the language",
    "^": "powers are not part of the language",
    ":": "lambdas and slices are not part of the language",
    "=": "an equation is a single expression; its name is the TOML key",
}


def tokenize(text, locate, path="<spec>"):
    """[(kind, value, offset)]; ``locate(offset)`` turns an offset into (line, col)."""
    if len(text) > MAX_EXPR_CHARS:
        raise SpecError(f"expression is {len(text)} characters long; the limit is "
                        f"{MAX_EXPR_CHARS}", path, *locate(0))
    tokens, pos = [], 0
    while True:
        m = _TOKEN_RE.match(text, pos)
        if not m:
            off = pos + len(text[pos:]) - len(text[pos:].lstrip(" \t\r\n"))
            if off >= len(text):
                break
            ch = text[off]
            hint = _CHAR_HINTS.get(ch, "")
            raise SpecError(f"unexpected character {describe_char(ch)}" + (f": {hint}" if hint else ""),
                            path, *locate(off))
        kind = m.lastgroup
        value, start = m.group(kind), m.start(kind)
        if kind == "num":
            if len(value) > MAX_NUMBER_CHARS:
                raise SpecError(f"number {value[:12]}... has {len(value)} characters; the limit "
                                f"is {MAX_NUMBER_CHARS}", path, *locate(start))
            if m.end() < len(text) and _AFTER_NUMBER_RE.match(text, m.end()):
                raise SpecError("a number is digits with an optional decimal part (2, 0.5); "
                                "no exponent, suffix or trailing '.'", path, *locate(start))
        if kind == "name" and len(value) > MAX_NAME_CHARS:
            raise SpecError(f"name {value[:12]}... has {len(value)} characters; the limit is "
                            f"{MAX_NAME_CHARS}", path, *locate(start))
        tokens.append((kind, value, start))
        if len(tokens) > MAX_TOKENS:
            raise SpecError(f"expression has more than {MAX_TOKENS} tokens", path, *locate(start))
        pos = m.end()
    tokens.append(("end", "", len(text)))
    return tokens


class _Node:
    """A parsed operand: its value (a Fraction or a SymPy matrix expression) and its span."""
    __slots__ = ("value", "start", "end")

    def __init__(self, value, start, end):
        self.value, self.start, self.end = value, start, end

    @property
    def is_number(self):
        return isinstance(self.value, Fraction)


class _Parser:
    """Recursive descent over the grammar in the module docstring, typing as it goes."""

    def __init__(self, text, scope, locate, path="<spec>"):
        self.text, self.path = text, path
        self.tokens = tokenize(text, locate, path)
        self.i = 0
        self.scope = scope          # name -> SymPy symbol
        self.locate = locate
        self.depth = 0
        self.calls = 0              # function calls enclosing the current position

    # -- token stream --------------------------------------------------------------------
    def error(self, msg, offset=None):
        if offset is None:
            offset = self.tokens[self.i][2]
        return SpecError(msg, self.path, *self.locate(offset))

    def peek(self):
        return self.tokens[self.i]

    def take(self):
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at_op(self, *ops):
        kind, val, _ = self.peek()
        return kind == "op" and val in ops

    def src(self, node):
        s = " ".join(self.text[node.start:node.end].split())
        return s if len(s) <= 40 else s[:37] + "..."

    def matrix(self, node):
        """'an H x H matrix state (H, H)' when the operand holds an n x n matrix (internally its
        n^2-vector), else None; 'state' for a matrix state or its _prev."""
        v = node.value
        if node.is_number or matrix_side(v) is None:
            return None
        return matrix_str(matrix_side(v), isinstance(v, PrevState) or (
            isinstance(v, Var) and isinstance(self.scope.get(prev_name(v.name)), PrevState)))

    def operand(self, node):
        return self.src(node), node.value, self.matrix(node)

    def mismatch(self, op, a, b, off):
        return self.error(mismatch_message(op, self.operand(a), self.operand(b)), off)

    # -- grammar -------------------------------------------------------------------------
    def parse(self):
        node = self.expr()
        kind, val, off = self.peek()
        if kind != "end":
            raise self.error(f"unexpected {val!r} after a complete expression"
                             + ("; functions are called as f(...)" if val == "(" else ""), off)
        return node

    def _nest(self, off):
        """Enter one level: a parenthesis, a function call or a unary minus (MAX_DEPTH of
        them may enclose each other; the whole expression is level 0)."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels (parentheses, "
                             f"function calls and unary minus)", off)

    def expr(self):
        left = self.term()
        while self.at_op("+", "-"):
            _, op, off = self.take()
            right = self.term()
            left = self.combine_add(left, right, op, off)
        return left

    def term(self):
        left = self.unary()
        while self.at_op("*", "@", "/"):
            _, op, off = self.take()
            right = self.unary()
            left = self.combine_mul(left, right, op, off)
        return left

    def unary(self):
        kind, val, off = self.peek()
        if kind == "op" and val == "-":
            self.take()
            self._nest(off)
            inner = self.unary()
            self.depth -= 1
            value = -inner.value if inner.is_number else scale(-1, inner.value)
            return _Node(value, off, inner.end)
        return self.atom()

    def atom(self):
        kind, val, off = self.take()
        if kind == "num":
            return _Node(Fraction(val), off, off + len(val))
        if kind == "op" and val == "(":
            self._nest(off)
            inner = self.expr()
            self.depth -= 1
            end = self.expect(")", off)
            return _Node(inner.value, off, end)
        if kind == "name":
            if self.at_op("("):
                return self.call(val, off)
            if val in FUNCTIONS or val in BINARY_FUNCTIONS or val in REDUCTIONS:
                raise self.error(f"function {val!r} needs an argument in parentheses", off)
            sym = self.scope.get(val)
            if sym is None and val in self.scope:
                raise self.error(f"{val!r} is a readout parameter; the step equations use "
                                 f"[params] only", off)
            if sym is None:
                raise self.error(self.undeclared(val), off)
            return _Node(sym, off, off + len(val))
        if kind == "end":
            raise self.error("expression ends too early: an operand is missing", off)
        raise self.error(f"unexpected {val!r}: an operand is missing", off)

    def call(self, fname, off):
        fn = FUNCTIONS.get(fname) or BINARY_FUNCTIONS.get(fname) or REDUCTIONS.get(fname)
        if fn is None:
            raise self.error(f"unknown function {fname!r}; the functions are "
                             + ", ".join(sorted([*FUNCTIONS, *BINARY_FUNCTIONS, *REDUCTIONS])), off)
        _, _, paren = self.take()
        self._nest(paren)
        self.calls += 1
        if self.calls > MAX_CALL_DEPTH:
            raise self.error(f"function calls nested deeper than {MAX_CALL_DEPTH} levels; name the "
                             f"inner values as equations of their own", off)
        args = [self.expr()]
        if fname in BINARY_FUNCTIONS or REDUCTIONS.get(fname) == 2:
            self.expect(",", paren, f"{fname}() takes two arguments: ")
            args.append(self.expr())
        elif self.at_op(","):
            raise self.error(f"{fname}() takes one argument", self.peek()[2])
        self.calls -= 1
        self.depth -= 1
        end = self.expect(")", paren)
        if fname in BINARY_FUNCTIONS:
            return _Node(self.binary(fn, fname, args, off), off, end)
        if fname in REDUCTIONS:
            return _Node(self.reduction(fname, args, off), off, end)
        arg, = args
        if arg.is_number:
            raise self.error(f"{fname}() of a number is not a cell quantity", off)
        if not is_vector(arg.value):
            raise self.error(f"{fname}() applies to vectors; {self.src(arg)!r} is a "
                             f"{shape_str(arg.value)} matrix", arg.start)
        return _Node(fn(arg.value), off, end)

    def expect(self, ch, opened_at, why=""):
        kind, val, off = self.take()
        if kind == "op" and val == ch:
            return off + 1
        found = "the end of the expression" if kind == "end" else repr(val)
        if why:
            raise self.error(f"{why}expected {ch!r}, found {found}", off)
        line, col = self.locate(opened_at)
        here = self.locate(off)[0]
        where = f"column {col}" if line == here else f"line {line}, column {col}"
        raise self.error(f"expected {ch!r} to close the '(' at {where}, found {found}", off)

    def binary(self, fn, fname, args, off):
        """max(a, b) / min(a, b): two vectors of one shape, or a vector and a number."""
        if all(a.is_number for a in args):
            raise self.error(f"{fname}() of two numbers is not a cell quantity", off)
        for a in args:
            if not a.is_number and not is_vector(a.value):
                raise self.error(f"{fname}() applies to vectors; {self.src(a)!r} is a "
                                 f"{shape_str(a.value)} matrix", a.start)
        shape = next(a.value.shape for a in args if not a.is_number)
        left, right = unify(*(_const(a.value, shape) for a in args))
        if left.shape != right.shape:
            raise self.mismatch(f"{fname}()", *args, off)
        return fn(left, right)

    def reduction(self, fname, args, off):
        """sum / mean / norm of a vector, dot of two vectors of one shape: a scalar."""
        for a in args:
            if a.is_number:
                raise self.error(f"{fname}() of a number is not a cell quantity", a.start)
            held = self.matrix(a) if fname == "outer" else None
            if not is_vector(a.value) or a.value.shape[0] == 1 or held:
                what = held or ("a scalar" if a.value.shape[0] == 1 and is_vector(a.value) else
                                f"a {shape_str(a.value)} matrix")
                does = "takes vectors" if fname == "outer" else "reduces a vector to a scalar"
                raise self.error(f"{fname}() {does}; {self.src(a)!r} is {what}", a.start)
        if len(args) == 2 and args[0].value.shape != args[1].value.shape:
            raise self.mismatch(f"{fname}()", *args, off)
        return reduce(fname, [a.value for a in args])

    def undeclared(self, name):
        msg = f"undeclared symbol {name!r}"
        close = difflib.get_close_matches(name, [n for n in self.scope if self.scope[n] is not None]
                                          + list(FUNCTIONS), n=1)
        if close:
            msg += f"; did you mean {close[0]!r}?"
        return msg

    # -- typing and building -------------------------------------------------------------
    def number(self, value, off):
        if value.numerator.bit_length() > MAX_CONSTANT_BITS or \
                value.denominator.bit_length() > MAX_CONSTANT_BITS:
            raise self.error(f"constant is larger than {MAX_CONSTANT_BITS} bits", off)
        return value

    def combine_add(self, a, b, op, off):
        span = (a.start, b.end)
        if a.is_number and b.is_number:
            return _Node(self.number(a.value + b.value if op == "+" else a.value - b.value, off), *span)
        for n in (a, b):
            if not n.is_number and not is_vector(n.value):
                raise self.error(f"'{op}' needs two vectors of one shape; {self.src(n)!r} is a "
                                 f"{shape_str(n.value)} matrix", n.start)
        shape = (b if a.is_number else a).value.shape
        left, right = unify(_const(a.value, shape), _const(b.value, shape))
        if left.shape != right.shape:
            raise self.mismatch(f"'{op}'", a, b, off)
        return _Node(add([left, right if op == "+" else scale(-1, right)], shape), *span)

    def combine_mul(self, a, b, op, off):
        span = (a.start, b.end)
        if op == "@":
            return _Node(self.matmul(a, b, off), *span)
        if op == "/":
            return _Node(self.divide(a, b, off), *span)
        if a.is_number and b.is_number:
            return _Node(self.number(a.value * b.value, off), *span)
        if a.is_number or b.is_number:
            k, m = (a.value, b.value) if a.is_number else (b.value, a.value)
            return _Node(scale(sympy.Rational(k.numerator, k.denominator), m), *span)
        for n, other in ((a, b), (b, a)):
            if not is_vector(n.value):
                hint = (f"; '*' and '@' bind equally, left to right: write "
                        f"{self.src(b if n is a else a)!r} * (...) with parentheses"
                        if n is b and is_vector(other.value) else
                        "; use '@' for a matrix product")
                raise self.error(f"'*' is the elementwise product of vectors; "
                                 f"{self.src(n)!r} is a {shape_str(n.value)} matrix{hint}", off)
        left, right = unify(a.value, b.value)
        if left.shape != right.shape:
            raise self.mismatch("'*'", a, b, off)
        return _Node(hadamard([left, right]), *span)

    def divide(self, a, b, off):
        """a / b entrywise: a * reciprocal(b); by a number: a scalar multiple."""
        if b.is_number:
            if b.value == 0:
                raise self.error("division by zero", b.start)
            if a.is_number:
                return self.number(a.value / b.value, off)
            if not is_vector(a.value):
                raise self.error(f"'/' divides vectors; {self.src(a)!r} is a "
                                 f"{shape_str(a.value)} matrix", a.start)
            q = 1 / b.value
            return scale(sympy.Rational(q.numerator, q.denominator), a.value)
        if not is_vector(b.value):
            raise self.error(f"'/' divides by vectors; {self.src(b)!r} is a "
                             f"{shape_str(b.value)} matrix", b.start)
        if a.is_number:
            recip = Reciprocal(b.value)
            return scale(sympy.Rational(a.value.numerator, a.value.denominator), recip)
        if not is_vector(a.value):
            raise self.error(f"'/' divides vectors; {self.src(a)!r} is a "
                             f"{shape_str(a.value)} matrix", a.start)
        num, recip = unify(a.value, Reciprocal(b.value))      # v / s: v * (1/s) broadcast
        if num.shape != recip.shape:
            raise self.mismatch("'/'", a, b, off)
        return hadamard([num, recip])

    def matmul(self, a, b, off):
        if a.is_number or b.is_number:
            raise self.error("'@' needs two matrix operands; use '*' to scale by a number", off)
        product = matrix_times(a.value, b.value)         # a matrix state times a vector
        if product is not None:
            return product
        held, right = self.matrix(a), self.matrix(b)
        if held:                                         # C @ b, b not an H-vector
            msg, at_b = matrix_times_message(self.operand(a), self.operand(b))
            raise self.error(msg, b.start if at_b else off)
        if right and not is_vector(a.value):
            raise self.error(f"the right operand of '@' must be a vector or a parameter matrix; "
                             f"{self.src(b)!r} is {right}, which multiplies a vector on its "
                             f"right: {group(self.src(b))} @ v", b.start)
        if not _is_param_matrix(a.value):
            what = "a vector" if is_vector(a.value) else "not a parameter matrix"
            raise self.error(f"the left operand of '@' must be a parameter matrix (or a product "
                             f"of them) or an H x H matrix state; {self.src(a)!r} is {what}"
                             + ("; use '*' for the elementwise product"
                                if is_vector(a.value) and not right else ""), a.start)
        if not (is_vector(b.value) or _is_param_matrix(b.value)):
            raise self.error(f"the right operand of '@' must be a vector or a parameter matrix; "
                             f"{self.src(b)!r} is neither", b.start)
        if a.value.shape[1] != b.value.shape[0]:
            raise self.error(f"shape mismatch in '@': {self.src(a)!r} is {shape_str(a.value)} but "
                             f"{self.src(b)!r} is {shape_str(b.value)} ({_rows(b.value)} rows, "
                             f"{_cols(a.value)} needed)", off)
        return matmul(a.value, b.value)


def is_vector(e):
    return e.shape[1] == 1


def _is_param_matrix(e):
    """A parameter matrix, or a (scaled) product of parameter matrices."""
    if isinstance(e, Param):
        return e.shape[1] != 1
    if isinstance(e, MatMul) and e.shape[1] != 1:
        _, mats = e.as_coeff_matrices()
        return all(isinstance(m, Param) and m.shape[1] != 1 for m in mats)
    return False


def _const(v, shape):
    if isinstance(v, Fraction):
        return scale(sympy.Rational(v.numerator, v.denominator), ones(shape))
    return v


def _dim(d):
    return str(d)


def _rows(e):
    return _dim(e.shape[0])


def _cols(e):
    return _dim(e.shape[1])


def shape_str(e):
    """(H, D) for a matrix, (H,) for a column vector."""
    r, c = e.shape
    return f"({r}, {c})" if c != 1 else f"({r},)"


def parse_expression(text, scope, locate, path="<spec>"):
    """Parse one equation's text; returns ``(value, start, end)`` where value is a Fraction
    (a bare number) or a SymPy matrix expression. ``locate(offset) -> (line, col)``."""
    node = _Parser(text, scope, locate, path).parse()
    return node.value
