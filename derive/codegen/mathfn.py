"""Math functions of a kernel: the straight-line elementwise code of one stage of a step,
built by ``sympy.lambdify`` from the plan's derived expressions with
:class:`~derive.printing.numpy_code.BatchNumPyPrinter` and a hash-consing CSE."""
from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass
from functools import cached_property

import sympy
from sympy import MatrixSymbol, OneMatrix, Transpose, ZeroMatrix

from derive.codegen import np_primitives as numpy_primitives
from derive.codegen.exprs import rebuild, safe_name
from derive.core.symbols import Var
from derive.printing.numpy_code import BatchNumPyPrinter

PRIMITIVE_NAMES = [n for n, v in vars(numpy_primitives).items()
                   if callable(v) and getattr(v, "__module__", "") == numpy_primitives.__name__]


def hashcons(assigns):
    """Common-subexpression elimination by hash-consing: a subtree that occurs twice among
    the assignments is computed once into a temporary ``_t<k>`` (an assignment's own symbol
    when the subtree is a whole right-hand side)."""
    counts: Counter = Counter()

    def leaf(e):
        return (isinstance(e, (MatrixSymbol, OneMatrix, ZeroMatrix)) or not hasattr(e, "shape")
                or (isinstance(e, Transpose) and isinstance(e.arg, MatrixSymbol)))

    def visit(e):
        if leaf(e):
            return
        counts[e] += 1
        if counts[e] == 1:
            for a in e.args:
                visit(a)

    for _, e in assigns:
        visit(e)
    held = {e: sym for sym, e in assigns if not leaf(e) and counts[e] >= 2}
    out, temps = [], {}

    def emit(e):
        if leaf(e):
            return e
        if e in temps:
            return temps[e]
        new = rebuild(e, emit)
        if counts[e] >= 2 and e not in held:
            t = Var(f"_t{len(temps)}", *e.shape)
            temps[e] = t
            out.append((t, new))
            return t
        return new

    for sym, e in assigns:
        if not leaf(e) and e in temps:
            out.append((sym, temps[e]))
            continue
        new = e if leaf(e) else rebuild(e, emit)
        out.append((sym, new))
        if not leaf(e) and counts[e] >= 2:
            temps[e] = sym
    return out


def _rename(e, table):
    """Give symbols whose names are not usable Python identifiers a safe name."""
    if isinstance(e, MatrixSymbol):
        new = safe_name(e.name)
        if new == e.name:
            return e
        if e not in table:
            table[e] = type(e)(new, *e.shape)
        return table[e]
    return rebuild(e, lambda a: _rename(a, table))


def math_namespace():
    """What lambdified math functions may call: numpy and the primitives."""
    import numpy
    ns = {"numpy": numpy}
    ns.update({n: getattr(numpy_primitives, n) for n in PRIMITIVE_NAMES})
    return ns


@dataclass
class MathFunction:
    name: str
    inputs: list
    assigns: list
    outputs: list

    @cached_property
    def function(self):
        """The lambdified function (printed by BatchNumPyPrinter, CSE by hash-consing)."""
        table: dict = {}
        args = [_rename(s, table) for s in self.inputs]
        cses = [(_rename(s, table), _rename(e, table)) for s, e in hashcons(self.assigns)]
        outs = [_rename(s, table) for s in self.outputs]
        fn = sympy.lambdify(args, outs, modules=[math_namespace()], printer=BatchNumPyPrinter(),
                            cse=lambda exprs: (cses, exprs), dummify=False, docstring_limit=0)
        fn.__name__ = self.name
        return fn

    @cached_property
    def source(self) -> str:
        src = inspect.getsource(self.function)
        head, rest = src.split("(", 1)
        assert head == "def _lambdifygenerated", head
        return f"def {self.name}(" + rest

