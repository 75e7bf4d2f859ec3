"""The cases of :func:`verify.check_cell` and :func:`verify.check_sequence`, drawn cheaply.

A case is a few sizes and then its arrays in four flat Hypothesis draws (the parameters, the
inputs, the states, the upstream gradients), each cut into pieces (:func:`draw_arrays`) and
drawn from a strategy built once per (dtype, scale, length). Drawing each array through its own
freshly built strategy (as :func:`verify.strategies.step_cases` composes them) spent most of
a check's time building and validating strategies: 200 LSTM step cases took 2.4 s of CPU
to draw that way and about 0.5 s this way. The entries are as before: finite floats in
``[-scale, scale]`` (:func:`verify.strategies.reals`) drawn by ``hypothesis.extra.numpy``'s
arrays, so a group shrinks to one fill value whatever its length (which lets B, D, H shrink
to 1); the groups are separate so that, e.g., ``dhs`` has its own values and is not the
inputs' fill value repeated (a reversed time loop would not show).
"""
from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

import numpy
from hypothesis.extra import numpy as hnp

from .strategies import reals, resolve

__all__ = ["draw_arrays", "step_case"]


@lru_cache(maxsize=256)
def _flat(dtype: str, scale: float, n: int):
    return hnp.arrays(numpy.dtype(dtype), n, elements=reals(numpy.dtype(dtype), scale))


def draw_arrays(draw, groups, dtype, scale):
    """Arrays of the shapes (tuples of ints) in ``groups``, one flat draw per group (a group
    whose size does not depend on B, e.g. the parameters, keeps its entries when the batch
    shrinks); a flat list of fresh copies."""
    out = []
    for shapes in groups:
        sizes = [int(numpy.prod(s, dtype=numpy.int64)) for s in shapes]
        flat = draw(_flat(numpy.dtype(dtype).str, float(scale), sum(sizes)))
        at = 0
        for shape, n in zip(shapes, sizes):
            out.append(numpy.array(flat[at:at + n].reshape(shape), copy=True))
            at += n
    return out


def step_case(draw, cell, shapes, sizes, dtype, scale):
    """``(case, dstate)`` of one step: ``case.params``, ``case.x`` (B, D), ``case.state`` and
    the upstream gradient ``dstate`` (tuples of (B, H)); ``sizes`` the strategies of B, D, H."""
    B, D, H = (draw(s) for s in sizes)
    k = len(cell.states)
    arrays = draw_arrays(draw, [[resolve(s, H, D) for s in shapes.values()], [(B, D)],
                                [(B, H)] * k, [(B, H)] * k], dtype, scale)
    params = dict(zip(shapes, arrays))
    rest = arrays[len(shapes):]
    case = SimpleNamespace(params=params, x=rest[0], state=tuple(rest[1:1 + k]))
    return case, tuple(rest[1 + k:])
