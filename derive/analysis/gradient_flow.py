"""Gradient flow through time: ``||d s_T / d s_{T-k}||_2`` for k = 1..T, from a cell's kernels.

For inputs ``x_1..x_T`` and an initial state ``s_0`` the state Jacobian over ``k`` steps is the
ordered product (numerator layout, equations.md section 0)::

    d s_T / d s_{T-k} = J_T J_{T-1} ... J_{T-k+1},      J_j = d s_j / d s_{j-1}

with ``J_j`` the cell's step Jacobian ``step_jacobian(params, x_j, s_{j-1})`` (blocks in
``STATE`` order). It is accumulated once, right to left: ``P_k = P_{k-1} J_{T-k+1}``, one
``S x S`` product per step, so the cost is linear in T (the product is never rebuilt per k).

Reported per k:

* ``log10[s]``: ``||d s_T / d s_{T-k}||_2`` for every state ``s``, the ``(s, s)`` block of
  the product: every path from ``s_{T-k}`` to ``s_T``, through all states;
* ``log10["state"]`` (cells with more than one state): the norm of the whole product;
* ``log10_direct[s]`` (``direct=True``): the product of the ``(s, s)`` blocks alone, the path
  that never leaves ``s``. For the LSTM without peepholes the ``(c, c)`` block is
  ``diag(f_j)`` and this is ``prod_j diag(f_j)``, the "constant error carousel".

The step Jacobians are independent once the states are known: :func:`jacobians_along`
takes several steps per kernel call, stacked along the batch.

Products shrink or grow geometrically, so ``P_k`` is held as ``10**L_k * Q_k`` with ``Q_k``
rescaled to norm (or largest entry) 1 after every step, and norms are reported as base-10
logarithms: nothing underflows at T = 1000, where ``(1/4)^k`` is far below the float range.

The bound of Pascanu, Mikolov and Bengio (2013, section 2.1): when the step Jacobian is
``diag(phi'(a)) W`` (the Elman RNN), submultiplicativity gives
``||d h_T / d h_{T-k}||_2 <= (gamma ||W||_2)^k`` with ``gamma = sup |phi'|``;
:func:`pascanu_bound` finds ``phi`` and ``W`` in the derived step Jacobian and takes
``gamma`` from :meth:`derive.core.primitives.Elementwise.gamma` (computed by SymPy).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy
from sympy import ZeroMatrix

from derive.core.primitives import Elementwise
from derive.core.symbols import DIMS, Param


class GradientFlowError(ValueError):
    """Input the analysis cannot use; the message names the offending cell, array or parameter."""


# ---------------------------------------------------------------------------------------
# what the cell's equations say: recurrence, recurrent matrices, activation, bound
# ---------------------------------------------------------------------------------------

def as_cell(cell):
    """A :class:`derive.Cell` from a name or a Cell."""
    from derive.core.cell import Cell
    from derive.spec.registry import cell as builtin
    return cell if isinstance(cell, Cell) else builtin(cell)


_BLOCKS: dict = {}


def _step_blocks(cell) -> dict:
    """``cell.step_jacobian()``, derived once per Cell object."""
    hit = _BLOCKS.get(id(cell))
    if hit is None or hit[0] is not cell:
        hit = _BLOCKS[id(cell)] = (cell, cell.step_jacobian())
    return hit[1]


def require_recurrence(cell) -> None:
    """Raise :class:`GradientFlowError` when no state depends on the previous states (every
    block of the derived step Jacobian is zero): such a cell has no gradient flow in time."""
    blocks = _step_blocks(cell)
    if all(isinstance(b, ZeroMatrix) or b == 0 for b in blocks.values()):
        raise GradientFlowError(
            f"cell {cell.name!r} has no recurrent state: every block of d s_t / d s_(t-1) "
            f"({', '.join(f'd{s}/d{r}_prev' for s, r in blocks)}) is zero, so there is no "
            f"gradient flow through time to measure")


def recurrent_matrices(cell) -> tuple[str, ...]:
    """Names of the H x H matrix parameters in the derived step Jacobian (``W_hh``; for the
    LSTM ``W_hi, W_hf, W_hc, W_ho``; full peephole matrices too), in declaration order;
    found once per Cell object."""
    hit = _RECURRENT.get(id(cell))
    if hit is None or hit[0] is not cell:
        hit = _RECURRENT[id(cell)] = (cell, _recurrent_matrices(cell))
    return hit[1]


_RECURRENT: dict = {}


def _recurrent_matrices(cell) -> tuple[str, ...]:
    H = DIMS["H"]
    used = set()
    for block in _step_blocks(cell).values():
        used |= {a.name for a in getattr(block, "free_symbols", ()) if isinstance(a, Param)}
    return tuple(n for n, p in cell.params.items() if n in used and tuple(p.shape) == (H, H))


def hidden_activation(cell):
    """The elementwise primitive applied directly in the first state's equation
    (``h = sigmoid(a)`` -> Sigmoid; LSTM ``h = o * tanh(c)`` -> Tanh), or None when there is
    none or more than one kind (GRU ``h = (1 - z) * n + z * h_prev``; LSTM without output
    activation)."""
    rhs = cell.definition(cell.states[0])
    kinds = {type(e) for e in _preorder(rhs) if isinstance(e, Elementwise) and not e.is_derivative}
    return kinds.pop() if len(kinds) == 1 else None


def _preorder(expr):
    yield expr
    for a in getattr(expr, "args", ()):
        yield from _preorder(a)


@dataclass(frozen=True)
class PascanuBound:
    """``||d s_T / d s_{T-k}||_2 <= (gamma ||W||_2)^k`` for a step Jacobian ``diag(phi'(.)) W``."""
    state: str
    matrix: str                 # the parameter W
    activation: type            # the primitive phi
    gamma: object               # sup |phi'|, exact SymPy number

    def log10(self, params, ks) -> numpy.ndarray:
        """``k log10(gamma ||W||_2)`` for the given k (float64)."""
        w = numpy.asarray(params[self.matrix], dtype=numpy.float64)
        rate = float(self.gamma) * float(numpy.linalg.norm(w, 2))
        with numpy.errstate(divide="ignore"):
            return numpy.asarray(ks, dtype=numpy.float64) * math.log10(rate) if rate > 0 \
                else numpy.full(numpy.shape(ks), -numpy.inf)


def pascanu_bound(cell) -> PascanuBound | None:
    """The bound when the cell has one state and its derived step Jacobian is
    ``diag(phi'(u)) W`` with ``W`` an H x H parameter; None otherwise (LSTM, GRU)."""
    form = as_cell(cell).elman_form()
    if form is None:
        return None
    return PascanuBound(form.state, form.matrix.name, form.primitive, form.primitive.gamma())


# ---------------------------------------------------------------------------------------
# the analysis
# ---------------------------------------------------------------------------------------

@dataclass
class GradientFlow:
    """Norms of ``d s_T / d s_{T-k}``, one row per distance in ``k`` (1..T unless chosen),
    one column per sequence of the batch; base-10 logarithms (``-inf`` for an exactly zero
    Jacobian)."""
    cell: str
    states: tuple
    log10: dict                                   # block -> (len(k), B) array
    log10_direct: dict = field(default_factory=dict)
    k: numpy.ndarray = None                       # the distances of the rows, default 1..T

    def __post_init__(self):
        if self.k is None:
            self.k = numpy.arange(1, next(iter(self.log10.values())).shape[0] + 1)

    def norm(self, block: str = "h", direct: bool = False) -> numpy.ndarray:
        """The norms themselves; may underflow to 0 or overflow to inf where log10 does not."""
        return 10.0 ** (self.log10_direct if direct else self.log10)[block]


def _kernels_of(cell):
    """(kernels object, display name) for a name, a Cell or a kernels object; a Cell must
    have a recurrent state (checked before its kernels are built)."""
    if hasattr(cell, "step_jacobian") and hasattr(cell, "STATE") and not hasattr(cell, "equations"):
        return cell, str(getattr(cell, "CELL", getattr(cell, "__name__", type(cell).__name__)))
    c = as_cell(cell)
    require_recurrence(c)
    from derive.codegen.runtime import kernels
    return kernels(c), c.name


def _check_finite(what: str, arr, cell_name: str) -> None:
    bad = ~numpy.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in numpy.argwhere(bad)[0])
        raise GradientFlowError(f"cell {cell_name!r}: {what} has a non-finite entry "
                                f"({arr[idx]!r} at index {idx}); the gradient flow needs finite values")


def _norm2(m: numpy.ndarray) -> numpy.ndarray:
    """Spectral norms of a (B, n, n) stack; nan where not finite.

    ``||M||_2 = s sqrt(lambda_max(N N^T))`` with ``N = M / s``, ``s`` the largest |entry|
    (so the Gram matrix neither overflows nor underflows). The symmetric eigensolver gives
    lambda_max to a relative error of a few eps, so the norm is as accurate as an SVD's
    and about twice as fast at n = 256. Below n = 64 the SVD (LAPACK gesdd) is faster and
    is used instead."""
    out = numpy.full(m.shape[0], numpy.nan)
    ok = numpy.isfinite(m).all(axis=(1, 2))
    if ok.any() and m.shape[-1] < 64:
        out[ok] = numpy.linalg.svd(m[ok], compute_uv=False)[:, 0]
    elif ok.any():
        mk = m[ok]
        s = numpy.abs(mk).max(axis=(1, 2))
        safe = numpy.where(s > 0, s, 1.0)
        n = mk / safe[:, None, None]
        lam = numpy.linalg.eigvalsh(n @ n.swapaxes(1, 2))[:, -1]
        out[ok] = s * numpy.sqrt(numpy.maximum(lam, 0.0))
    return out


def _log10(v: numpy.ndarray) -> numpy.ndarray:
    with numpy.errstate(divide="ignore"):
        return numpy.log10(v)


def _renormalize(m, n):
    """m / n per batch entry, leaving all-zero (n = 0) and non-finite entries as they are."""
    safe = numpy.where((n > 0) & numpy.isfinite(n), n, 1.0)
    return m / safe[:, None, None]


def hidden_size(kern, params) -> int:
    for name, dims in kern.PARAMS.items():
        if "H" in dims and name in params:
            return int(numpy.shape(params[name])[list(dims).index("H")])
    raise GradientFlowError("cannot tell the hidden size H: no parameter with an 'H' dimension")


_CHECKS = ("_check_params", "_check_array", "_check_state", "_forward", "_jacobian")


def bound_params(kern, params):
    """``(step, step_jacobian)`` of ``kern`` with ``params`` fixed, each called as ``f(x, state)``.

    Same values and the same errors as ``kern.step(params, x, state)`` and
    ``kern.step_jacobian(params, x, state)``. For a module built by :mod:`derive.codegen` (it
    holds the copied input checks and the driver) the parameters are validated once, here,
    instead of at every call; ``x`` and the state are still checked at every call, as the
    public functions do. Any other kernels object is called through its public functions."""
    if not all(callable(getattr(kern, n, None)) for n in _CHECKS):
        return (lambda x, s: kern.step(params, x, s)), (lambda x, s: kern.step_jacobian(params, x, s))
    p, dims, dt = kern._check_params(params, kern.PARAMS)
    H, D = dims["H"], dims.get("D")

    shapes = getattr(kern, "STATE_SHAPES", None)

    def inputs(x, state):
        x = kern._check_array("x", x, (("B", None), ("D", D)), dt)
        return x, kern._check_state("state", state, kern.STATE, x.shape[0], H, dt, shapes)

    def step(x, state):
        x, s0 = inputs(x, state)
        new = tuple(s[1].copy() for s in kern._forward(p, x[None], s0)["S"])
        return kern._public_state(kern.STATE, shapes, new) if shapes else new

    def step_jacobian(x, state):
        x, s0 = inputs(x, state)
        return kern._jacobian(p, x, s0)

    def sequence(xs, state):
        """The states after each step of ``xs`` (T, B, D) from ``state``, the loop run once
        by the driver (what T calls of ``step`` compute, step by step); None when a state is
        not finite (``step`` then raises the error the next step's check raises)."""
        xs = kern._check_array("xs", xs, (("T", None), ("B", None), ("D", D)), dt)
        s0 = kern._check_state("state", state, kern.STATE, xs.shape[1], H, dt, shapes)
        S = kern._forward(p, xs, s0)["S"]
        if not all(numpy.isfinite(a).all() for a in S):
            return None
        out = []
        for t in range(1, xs.shape[0] + 1):
            new = tuple(a[t].copy() for a in S)
            out.append(kern._public_state(kern.STATE, shapes, new) if shapes else new)
        return out
    step.sequence = sequence
    return step, step_jacobian


def states_along(kern, params, xs, state0=None, step=None) -> list:
    """``[s_0, s_1, ..., s_{T-1}]`` by repeated ``step`` (zero ``s_0`` by default), each in the
    kernels' own state format; ``step(x, state)`` defaults to :func:`bound_params`'s, whose
    ``sequence`` runs the T - 1 steps in one call of the driver."""
    if state0 is None:
        H = hidden_size(kern, params)
        state0 = tuple(numpy.zeros((xs.shape[1],) + _state_shape(kern, s, H), dtype=xs.dtype)
                       for s in kern.STATE)
    step = step or bound_params(kern, params)[0]
    sequence = getattr(step, "sequence", None)
    # the input products of the whole sequence at once: rows as alone while the input is
    # narrow (the recurrent products stay one step at a time)
    if sequence is not None and xs.shape[0] > 1 and _stackable(xs.shape[1], xs.shape[2:]):
        states = sequence(xs[:-1], state0)
        if states is not None:
            return [state0] + states
    out = [state0]
    for t in range(xs.shape[0] - 1):
        out.append(step(xs[t], out[-1]))
    return out


def gradient_flow(cell, params: dict, xs, state0=None, *, direct: bool = False,
                  ks=None) -> GradientFlow:
    """``||d s_T / d s_{T-k}||_2`` for k = 1..T (see the module docstring).

    ``cell``: a built-in cell name, a :class:`derive.Cell`, or any kernels object with
    ``STATE``, ``PARAMS``, ``step`` and ``step_jacobian`` (the API of ``derive.kernels``);
    ``params``: the kernels' parameter dict; ``xs``: inputs (T, B, D); ``state0``: initial
    state in the kernels' format (zeros by default). ``direct=True`` also gives the
    direct-path norms (products of diagonal blocks only). ``ks``: the distances whose norms
    are wanted (default 1..T); the product is still accumulated over every step, only the
    SVDs are skipped elsewhere, and rows of the result follow ``ks``.
    """
    kern, name = _kernels_of(cell)
    if not tuple(kern.STATE):
        raise GradientFlowError(f"cell {name!r} has no recurrent state (STATE is empty)")
    xs = numpy.asarray(xs)
    if xs.ndim != 3:
        raise GradientFlowError(f"cell {name!r}: xs must have shape (T, B, D); got shape {xs.shape}")
    if xs.shape[0] == 0:
        raise GradientFlowError(f"cell {name!r}: xs has T = 0 time steps (shape {xs.shape}); "
                                f"the gradient flow needs T >= 1")
    for pname in params:
        _check_finite(f"parameter {pname!r}", numpy.asarray(params[pname]), name)
    _check_finite("xs", xs, name)
    if state0 is not None:
        parts = state0.items() if isinstance(state0, dict) else zip(kern.STATE, state0)
        for sname, arr in parts:
            _check_finite(f"initial state {sname!r}", numpy.asarray(arr), name)
    T = xs.shape[0]
    ks = check_ks(ks, T, name)
    step, step_jacobian = bound_params(kern, params)
    prev = states_along(kern, params, xs, state0, step)
    H = hidden_size(kern, params)
    jacobian = jacobians_along(step_jacobian, xs, prev, T - int(ks[-1]) + 1)
    widths = [int(numpy.prod(_state_shape(kern, s, H))) for s in kern.STATE]
    return accumulate(name, tuple(kern.STATE), H, jacobian, T, xs.shape[1], direct=direct, ks=ks,
                      widths=widths)


#: Entries of the step Jacobians taken in one call of :func:`jacobians_along` (B S^2 per
#: step): large enough that the call overhead vanishes, small enough that the temporaries of
#: a matrix-free Jacobian (S tangents per row) stay in the cache.
JACOBIAN_BATCH = 1 << 16
#: Stacking steps along the batch gives every row the bits it has alone only while the
#: matrix products' inner dimensions are small: OpenBLAS's result for a row of ``X @ W``
#: then does not depend on how many rows X has (it does from about 32 columns, and one row
#: takes another code path, gemv). Larger inputs or states, or one sequence, go step by step.
STACKED_MAX_WIDTH = 16


def _stackable(B, widths) -> bool:
    """Whether the rows of B >= 2 sequences may be stacked over steps (see
    :data:`STACKED_MAX_WIDTH`): every width (the input's, each state's row) small enough."""
    return B >= 2 and all(w <= STACKED_MAX_WIDTH for w in widths)


def jacobians_along(step_jacobian, xs, prev, first=1):
    """``jacobian(j)``: J_j at x_j, s_{j-1} (1-based step index, j = first..T), each
    (B, S, S). The steps are independent once the states are known, so the J_j are taken
    several steps per ``step_jacobian`` call, stacked along the batch (each batch row
    computes what it computes alone, with far less call overhead, while the input and the
    states are narrow: :data:`STACKED_MAX_WIDTH`); one call per step otherwise, or when the
    states are not tuples of arrays or a stacked call fails (the per-step call then raises
    the error a step would raise)."""
    T, B = xs.shape[:2]

    def one(j):
        return step_jacobian(xs[j - 1], prev[j - 1])
    if T - first < 1 or not all(isinstance(s, tuple) and all(isinstance(a, numpy.ndarray)
                                                              for a in s)
                                for s in prev[first - 1:T]):
        return one
    widths = [int(a[0].size) for a in prev[first - 1]] if B else []
    S = sum(widths)
    per_call = max(1, JACOBIAN_BATCH // max(1, B * S * S))
    if per_call < 2 or not _stackable(B, widths + [int(numpy.prod(xs.shape[2:]))]):
        return one
    done: dict = {}

    def batched(j):
        i = (j - first) // per_call
        if i not in done:
            lo = first + i * per_call                       # steps lo .. hi - 1
            hi = min(T + 1, lo + per_call)
            try:
                state = tuple(numpy.concatenate(parts, axis=0) for parts in zip(*prev[lo - 1:hi - 1]))
                J = numpy.asarray(step_jacobian(
                    xs[lo - 1:hi - 1].reshape(((hi - lo) * B,) + xs.shape[2:]), state))
                J = J.reshape((hi - lo, B) + J.shape[1:]) if J.ndim == 3 \
                    and J.shape[0] == (hi - lo) * B else None
            except (ValueError, FloatingPointError, ArithmeticError):
                J = None
            done.clear()                                     # accumulate goes from T down
            done[i] = (lo, J)
        lo, J = done[i]
        return one(j) if J is None else J[j - lo]
    return batched


def _state_shape(kern, state, H) -> tuple:
    """One batch row of a state: (H,), (1,) for a scalar, (H, H) for a matrix state."""
    shape = getattr(kern, "STATE_SHAPES", {}).get(state, ("H",))
    return tuple(H if d == "H" else 1 for d in shape)


def check_ks(ks, T, name):
    if ks is None:
        return numpy.arange(1, T + 1)
    ks = numpy.asarray(ks)
    if ks.ndim != 1 or ks.size == 0 or not numpy.issubdtype(ks.dtype, numpy.integer) \
            or ks.min() < 1 or ks.max() > T or numpy.any(numpy.diff(ks) <= 0):
        raise GradientFlowError(f"cell {name!r}: ks must be increasing integers in 1..T = "
                                f"1..{T}; got {ks.tolist()}")
    return ks


def accumulate(name, states, H, jacobian, T, B, *, direct=False, ks=None,
               widths=None) -> GradientFlow:
    """The core: ``P_k = P_{k-1} J_{T-k+1}`` for k = 1..T, norms at the distances ``ks``.

    ``jacobian(j)`` returns ``J_j`` as (B, S, S), S = the sum of the states' ``widths``
    (H each by default; 1 for a scalar, H^2 for a matrix state), blocks in ``states``
    order. Each step costs one batched S x S product; each k in ``ks`` one SVD per block.
    """
    ks = numpy.arange(1, T + 1) if ks is None else numpy.asarray(ks)
    row = {int(k): i for i, k in enumerate(ks)}
    widths = [H] * len(states) if widths is None else list(widths)
    ends = numpy.cumsum([0] + widths)
    S = int(ends[-1])
    slices = {s: slice(int(ends[i]), int(ends[i + 1])) for i, s in enumerate(states)}
    multi = len(states) > 1
    log10 = {s: numpy.empty((len(ks), B)) for s in states}
    if multi:
        log10["state"] = numpy.empty((len(ks), B))
    direct_out = {s: numpy.empty((len(ks), B)) for s in states} if direct else {}

    Q = None                                 # P_k = 10**L * Q with Q of order 1
    L = numpy.zeros(B)
    Qd = dict.fromkeys(direct_out)           # direct paths, same representation
    pending = []                             # (row, L, diagonal blocks): their norms, batched below
    Ld = {s: numpy.zeros(B) for s in direct_out}
    for k in range(1, int(ks[-1]) + 1):
        J = numpy.asarray(jacobian(T - k + 1), dtype=numpy.float64)
        if J.shape != (B, S, S):
            raise GradientFlowError(f"cell {name!r}: step_jacobian returned shape {J.shape}; "
                                    f"expected (B, S, S) = {(B, S, S)}")
        M = J if Q is None else Q @ J
        i = row.get(k)
        if i is not None:
            full = _norm2(M)
            if multi:
                log10["state"][i] = L + _log10(full)
                pending.append((i, L, [M[:, sl, sl] for sl in slices.values()]))
            else:
                log10[states[0]][i] = L + _log10(full)
        else:
            full = _scale(M)
        L = L + _log10(full)
        Q = _renormalize(M, full)
        for s in direct_out:
            sl = slices[s]
            Md = J[:, sl, sl] if Qd[s] is None else Qd[s] @ J[:, sl, sl]
            nd = _norm2(Md) if i is not None else _scale(Md)
            if i is not None:
                direct_out[s][i] = Ld[s] + _log10(nd)
            Ld[s] = Ld[s] + _log10(nd)
            Qd[s] = _renormalize(Md, nd)
    if pending and len(set(widths)) == 1:    # one SVD call for every block norm of every row
        norms = _norm2(numpy.concatenate([b for _, _, blocks in pending for b in blocks]))
        for (i, Li, _), n in zip(pending, norms.reshape(len(pending), len(states), B)):
            for s, ns in zip(states, n):
                log10[s][i] = Li + _log10(ns)
    elif pending:                            # blocks of different sizes: one call per state
        for j, s in enumerate(states):
            norms = _norm2(numpy.concatenate([blocks[j] for _, _, blocks in pending]))
            for (i, Li, _), ns in zip(pending, norms.reshape(len(pending), B)):
                log10[s][i] = Li + _log10(ns)
    return GradientFlow(name, states, log10, direct_out, ks)


def _scale(m):
    """A cheap positive scale of each matrix (largest |entry|) for renormalising between
    the distances whose norms are wanted; nan where not finite."""
    out = numpy.abs(m).max(axis=(1, 2))
    return numpy.where(numpy.isfinite(out), out, numpy.nan)
