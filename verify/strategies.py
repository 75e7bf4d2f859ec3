"""Hypothesis strategies for recurrent cells, in the style of ``hypothesis.extra.numpy``.

Every strategy takes plain values or strategies for its size arguments (like
``hypothesis.extra.numpy.arrays``), so they compose::

    from hypothesis import given, strategies as st
    from verify import strategies as vst

    @given(vst.step_cases("lstm", hidden=st.integers(1, 3), recurrent_norm=st.floats(0.1, 0.9)))
    def test_something(case):
        case.params, case.x, case.state      # dict, (B, D) array, tuple of (B, H) arrays

Shapes come from the cell definition (``derive.cell(name).params``, the same table the
kernels' ``PARAMS`` expose), so every cell, built-in or new, is covered without a list here.
Arrays use the row-vector batch convention of the kernels: ``x`` is (B, D), states (B, H).

``scale`` bounds the entries (uniform-ish in ``[-scale, scale]``, shrinking towards 0);
``recurrent_norm`` rescales the recurrent matrices (every (H, H) parameter, or the names in
``recurrent``) to a drawn spectral norm ``||W||_2``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from derive.core.symbols import DIMS

from .cellarg import resolve_cell

__all__ = ["Dims", "StepCase", "SequenceCase", "param_shapes", "recurrent_params", "resolve",
           "dims", "arrays", "matrices_with_spectral_norm", "params", "states", "inputs",
           "sequences", "step_cases", "sequence_cases", "reals"]


@dataclass(frozen=True)
class Dims:
    """Sizes of one case: batch B, input features D, hidden units H, sequence length T."""
    batch: int
    input_size: int
    hidden_size: int
    steps: int = 1


@dataclass
class StepCase:
    """One step of a cell: ``state_new = step(params, x, state)``."""
    cell: str
    params: dict
    x: numpy.ndarray
    state: tuple

    @property
    def dims(self) -> Dims:
        B, D = self.x.shape
        return Dims(B, D, self.state[0].shape[1], 1)


@dataclass
class SequenceCase:
    """A sequence: ``xs`` (T, B, D) and an initial state, tuple of (B, H) arrays."""
    cell: str
    params: dict
    xs: numpy.ndarray
    state0: tuple

    @property
    def dims(self) -> Dims:
        T, B, D = self.xs.shape
        return Dims(B, D, self.state0[0].shape[1], T)


def _strategy(v):
    """A value or a strategy, as a strategy."""
    return v if isinstance(v, st.SearchStrategy) else st.just(v)


def _cell(cell):
    """A cell name, a ``derive.Cell`` or a ``.toml`` spec path, as a Cell."""
    return resolve_cell(cell)


def param_shapes(cell) -> dict:
    """Parameter name -> shape in dimension names, e.g. ``{"W_xh": ("H", "D"), "b_h": ("H",)}``
    (the kernels' ``PARAMS`` table), read from the cell definition."""
    c = _cell(cell)
    names = {v: k for k, v in DIMS.items()}
    names[1] = "1"                                        # a scalar parameter
    out = {}
    for name, sym in c.params.items():
        rows, cols = sym.shape
        out[name] = (names[rows],) if cols == 1 else (names[rows], names[cols])
    return out


def recurrent_params(cell) -> list:
    """Names of the (H, H) parameters: the ones whose spectral norm ``recurrent_norm`` sets."""
    return [n for n, s in param_shapes(cell).items() if s == ("H", "H")]


def resolve(shape, hidden_size, input_size) -> tuple:
    """A shape in dimension names as integers: ``("H", "D")`` -> ``(H, D)``."""
    sizes = {"H": hidden_size, "D": input_size, "1": 1}
    return tuple(sizes[d] if isinstance(d, str) else int(d) for d in shape)


def reals(dtype=numpy.float64, scale=1.0):
    """Finite floats in ``[-scale, scale]`` representable in ``dtype`` (no NaN, no infinity,
    no subnormals: they add nothing here and slow generation down)."""
    width = 32 if numpy.dtype(dtype) == numpy.float32 else 64
    return st.floats(-scale, scale, allow_nan=False, allow_infinity=False, width=width,
                     allow_subnormal=False)


def _split(flat, shapes):
    """Cut one flat array into consecutive arrays of the given shapes (fresh copies)."""
    out, at = [], 0
    for shape in shapes:
        n = int(numpy.prod(shape, dtype=numpy.int64))
        out.append(numpy.array(flat[at:at + n].reshape(shape), copy=True))
        at += n
    return out


def _draw_arrays(draw, shapes, dtype, scale):
    """Several arrays drawn as one flat Hypothesis array (much faster than one draw each;
    every entry still shrinks on its own)."""
    total = sum(int(numpy.prod(s, dtype=numpy.int64)) for s in shapes)
    flat = draw(arrays((total,), dtype=dtype, scale=scale))
    return _split(flat, shapes)


def dims(*, batch=st.integers(1, 3), input_size=st.integers(1, 3),
         hidden_size=st.integers(1, 4), steps=st.integers(1, 4)):
    """Sizes B, D, H, T; each argument an int or a strategy of ints."""
    return st.builds(Dims, _strategy(batch), _strategy(input_size), _strategy(hidden_size),
                     _strategy(steps))


def arrays(shape, *, dtype=numpy.float64, scale=1.0):
    """Arrays of ``shape`` (tuple or strategy) with entries in ``[-scale, scale]``."""
    return hnp.arrays(numpy.dtype(dtype), _strategy(shape), elements=reals(dtype, scale))


@st.composite
def matrices_with_spectral_norm(draw, n, *, norm=st.floats(0.1, 2.0), dtype=numpy.float64,
                                scale=1.0):
    """(n, n) matrices with spectral norm ``||W||_2`` equal to a drawn ``norm`` (up to
    rounding): a random matrix rescaled by ``norm / ||M||_2``; the zero matrix becomes
    ``norm * I``."""
    n = draw(_strategy(n))
    target = draw(_strategy(norm))
    m = draw(arrays((n, n), dtype=numpy.float64, scale=scale))
    s = numpy.linalg.norm(m, 2) if n else 0.0
    m = numpy.eye(n) if s == 0 else m / s
    return (m * target).astype(dtype)


@st.composite
def params(draw, cell, hidden_size, input_size, *, dtype=numpy.float64, scale=1.0,
           recurrent_norm=None, recurrent=None):
    """A parameter dict for ``cell`` (name or Cell), keyed and shaped like its ``PARAMS``.

    ``recurrent_norm`` (float or strategy, optional) fixes the spectral norm of the recurrent
    matrices ``recurrent`` (default: every (H, H) parameter), each drawn independently."""
    H, D = draw(_strategy(hidden_size)), draw(_strategy(input_size))
    rec = set(recurrent_params(cell) if recurrent is None else recurrent)
    shapes = param_shapes(cell)
    plain = [n for n in shapes if recurrent_norm is None or n not in rec]
    drawn = dict(zip(plain, _draw_arrays(draw, [resolve(shapes[n], H, D) for n in plain], dtype, scale)))
    out = {}
    for name in shapes:
        if name in drawn:
            out[name] = drawn[name]
        else:
            out[name] = draw(matrices_with_spectral_norm(H, norm=recurrent_norm, dtype=dtype,
                                                         scale=scale))
    return out


def states(cell, batch, hidden_size, *, dtype=numpy.float64, scale=1.0):
    """A state tuple in the cell's ``STATE`` order, each (B, H), or (B, 1) for a scalar and
    (B, H, H) for a matrix state."""
    c = _cell(cell)
    H = DIMS["H"]
    rows = {(H, 1): lambda h: (h,), (1, 1): lambda h: (1,), (H * H, 1): lambda h: (h, h)}
    kinds = [rows[tuple(c.state_shapes[s])] for s in c.states]
    if all(k is kinds[0] for k in kinds) and tuple(c.state_shapes[c.states[0]]) == (H, 1):
        n = len(kinds)
        shape = st.tuples(_strategy(batch), _strategy(hidden_size))
        return shape.flatmap(lambda bh: arrays((n,) + bh, dtype=dtype, scale=scale).map(
            lambda a: tuple(numpy.array(s, copy=True) for s in a)))
    shape = st.tuples(_strategy(batch), _strategy(hidden_size))
    return shape.flatmap(lambda bh: st.tuples(*(arrays((bh[0],) + k(bh[1]), dtype=dtype,
                                                       scale=scale) for k in kinds)))


def inputs(batch, input_size, *, dtype=numpy.float64, scale=1.0):
    """An input x_t of shape (B, D)."""
    return arrays(st.tuples(_strategy(batch), _strategy(input_size)), dtype=dtype, scale=scale)


def sequences(steps, batch, input_size, *, dtype=numpy.float64, scale=1.0):
    """An input sequence xs of shape (T, B, D)."""
    return arrays(st.tuples(_strategy(steps), _strategy(batch), _strategy(input_size)),
                  dtype=dtype, scale=scale)


@st.composite
def step_cases(draw, cell, *, batch=st.integers(1, 3), input_size=st.integers(1, 3),
               hidden=st.integers(1, 4), dtype=numpy.float64, scale=1.0, state_scale=None,
               recurrent_norm=None, recurrent=None):
    """A :class:`StepCase` for ``cell``: parameters, an input and a state of matching sizes."""
    name = _cell(cell).name
    d = draw(dims(batch=batch, input_size=input_size, hidden_size=hidden, steps=1))
    p = draw(params(cell, d.hidden_size, d.input_size, dtype=dtype, scale=scale,
                    recurrent_norm=recurrent_norm, recurrent=recurrent))
    x = draw(inputs(d.batch, d.input_size, dtype=dtype, scale=scale))
    s = draw(states(cell, d.batch, d.hidden_size, dtype=dtype,
                    scale=scale if state_scale is None else state_scale))
    return StepCase(name, p, x, s)


@st.composite
def sequence_cases(draw, cell, *, steps=st.integers(1, 4), batch=st.integers(1, 3),
                   input_size=st.integers(1, 3), hidden=st.integers(1, 4),
                   dtype=numpy.float64, scale=1.0, state_scale=None, recurrent_norm=None,
                   recurrent=None):
    """A :class:`SequenceCase` for ``cell``: parameters, xs (T, B, D) and an initial state."""
    name = _cell(cell).name
    d = draw(dims(batch=batch, input_size=input_size, hidden_size=hidden, steps=steps))
    p = draw(params(cell, d.hidden_size, d.input_size, dtype=dtype, scale=scale,
                    recurrent_norm=recurrent_norm, recurrent=recurrent))
    xs = draw(sequences(d.steps, d.batch, d.input_size, dtype=dtype, scale=scale))
    s = draw(states(cell, d.batch, d.hidden_size, dtype=dtype,
                    scale=scale if state_scale is None else state_scale))
    return SequenceCase(name, p, xs, s)
