"""Shapes in a spec: a parameter's ``[rows]``, ``[rows, cols]`` or ``["1"]``, and a state's
``[state_shapes]`` entry: ``["H"]`` (the default, a vector), ``["1"]`` (a scalar: a per-head
stabiliser) or ``["H", "H"]`` (a matrix memory, C or S, held by the engine as its row-major
vectorisation, an H^2-vector)."""
from __future__ import annotations

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
