"""Shapes in a spec: a parameter's ``[rows]``, ``[rows, cols]`` or ``["1"]``, and a state's
``[state_shapes]`` entry: ``["H"]`` (the default, a vector), ``["1"]`` (a scalar: a per-head
stabiliser) or ``["H", "H"]`` (a matrix memory, C or S, held by the engine as its row-major
vectorisation, an H^2-vector)."""
from __future__ import annotations

import re

from derive.core.symbols import DIMS, H

#: a state's declared shape -> the engine's column shape
STATE_SHAPES = {("H",): (H, 1), ("1",): (1, 1), ("H", "H"): (H * H, 1)}


def param_shape(name, dims, sp, where):
    """(rows, cols) of a parameter declared with ``dims``; a located error otherwise."""
    if dims == ["1"]:                                   # a scalar (per-head gate weights, ...)
        return 1, 1
    if not isinstance(dims, list) or not 1 <= len(dims) <= 2 or \
            any(not isinstance(d, str) or d not in DIMS for d in dims):
        raise sp.error(f"parameter {name!r}: shape must be [rows] or [rows, cols] with dims "
                       f"\"H\" and \"D\" (e.g. [\"H\", \"D\"]), or [\"1\"] for a scalar, "
                       f"got {dims!r}", where)
    rows = DIMS[dims[0]]
    cols = DIMS[dims[1]] if len(dims) == 2 else 1
    return rows, cols


def state_shapes(table, states, sp, pos):
    """{state: (rows, 1)} from the optional [state_shapes] table (every state defaults to an
    H-vector); an unknown state or shape is a located error."""
    out = {s: (H, 1) for s in states}
    for name, dims in table.items():
        if name not in states:
            raise sp.error(f"[state_shapes] names {name!r}, which is not a state; the states are "
                           + ", ".join(states), pos.key("state_shapes", name))
        shape = STATE_SHAPES.get(tuple(dims) if isinstance(dims, list) else None)
        if shape is None:
            raise sp.error(f"state {name!r}: shape must be [\"H\"], [\"1\"] (a scalar) or "
                           f"[\"H\", \"H\"] (a matrix), got {dims!r}", pos.value("state_shapes", name))
        out[name] = shape
    return out


def matrix_side(e):
    """n when the column ``e`` holds an n x n matrix as its n^2-vector (a matrix state,
    outer(u, w)); None otherwise."""
    if e.shape[1] == 1:
        for d in DIMS.values():
            if e.shape[0] == d ** 2:
                return d
    return None


def _an(n):
    return "an" if str(n)[:1] in "AEFHILMNORSX" else "a"


def matrix_str(n, state=False, shape=True):
    """'an H x H matrix state (H, H)': an n x n matrix as the user wrote it, never its vec."""
    text = f"{_an(n)} {n} x {n} matrix{' state' if state else ''}"
    return f"{text} ({n}, {n})" if shape else text


def group(src):
    """An operand's text, in parentheses unless it is a name or one call (or group) f(...)."""
    m = re.match(r"[A-Za-z_]\w*\Z|[A-Za-z_]*\(", src)
    if m and m.end() < len(src):                     # a call or group: one that spans the text
        depth = 0
        for k, ch in enumerate(src[m.end() - 1:], m.end() - 1):
            depth += (ch == "(") - (ch == ")")
            if depth == 0:
                return src if k == len(src) - 1 else f"({src})"
    return src if m and m.end() == len(src) else f"({src})"


def mismatch_message(op, a, b):
    """'shape mismatch in op: ...' for two column operands, each (text, value, matrix_str or
    None); an n x n matrix is named as one (never its n^2-vector), with what it combines with."""
    (sa, va, ma), (sb, vb, mb) = a, b
    if not (ma or mb):
        return f"shape mismatch in {op}: {sa!r} has {va.shape[0]} rows but {sb!r} has {vb.shape[0]}"
    (sm, vm, _), (so, vo, mo) = (a, b) if ma else (b, a)
    n = matrix_side(vm)
    if op == "'*'" and not mo and vo.shape[0] == n:
        hint = f"the matrix times the vector is {group(sm)} @ {group(so)}"
    elif op == "dot()":
        hint = f"dot() takes two vectors, or two {n} x {n} matrices"
    else:
        hint = (f"{op} combines {matrix_str(n, shape=False)} with a scalar or another "
                f"{n} x {n} matrix")
    desc = [f"is {m}" if m else f"has {v.shape[0]} rows" for v, m in ((va, ma), (vb, mb))]
    return f"shape mismatch in {op}: {sa!r} {desc[0]} but {sb!r} {desc[1]}; {hint}"


def matrix_times_message(a, b):
    """(message, at the right operand?) for ``a @ b``, ``a`` an n x n matrix and ``b`` not an
    n-vector; a and b are (text, value, matrix_str or None)."""
    (sa, va, ma), (sb, vb, mb) = a, b
    n, (rows, cols) = matrix_side(va), vb.shape
    if cols == 1 and not mb and rows != 1:
        return (f"shape mismatch in '@': {sa!r} is {ma} but {sb!r} is ({rows},) ({rows} rows, "
                f"{n} needed)", False)
    what = mb or ("a scalar" if cols == 1 else f"a ({rows}, {cols}) matrix")
    return (f"the right operand of '@' after {matrix_str(n, shape=False)} must be {_an(n)} "
            f"{n}-vector ({group(sa)} @ v); {sb!r} is {what}", True)


def state_shape_message(state, want, rhs):
    """The message for a state whose equation's value does not have its declared shape."""
    wanted = {(1, 1): "a scalar", (H, 1): "an (H,) vector"}.get(want, matrix_str(H))
    side = matrix_side(rhs)
    r, c = rhs.shape
    got = matrix_str(side) if side is not None else f"({r},)" if c == 1 else f"({r}, {c})"
    hint = "; outer(u, v) of two H-vectors builds one" if want == (H * H, 1) else ""
    return f"state {state!r} must be {wanted}, got {got}{hint}"
