"""The gradient-flow experiment: ``||d s_T / d s_{T-k}||_2`` over random parameter draws with
the recurrent matrices scaled below, at and above Pascanu's threshold ``||W||_2 = 1 / gamma``
(and, for cells with a forget gate, at the threshold with the forget-gate bias raised), measured
by :func:`derive.analysis.gradient_flow.accumulate` on many parameter sets at once.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy
import sympy
from sympy import MatAdd

from derive.analysis.gradient_flow import (GradientFlow, accumulate, as_cell, bound_params, check_ks,
                                  gradient_flow,
                                  hidden_activation,
                                  hidden_size, pascanu_bound, recurrent_matrices,
                                  require_recurrence, states_along)
from derive.codegen.runtime import kernels
from derive.core.primitives import Sigmoid
from derive.core.reduction import SumOf
from derive.core.symbols import Param, Var

# ---------------------------------------------------------------------------------------
# the experiment: random parameters with controlled recurrent norm
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Regime:
    """Recurrent matrices scaled to ``||W||_2 = multiplier / gamma``; ``forget_bias`` (cells
    with a forget gate only) is added to the forget gate's bias, pushing f towards 1."""
    label: str
    multiplier: object
    forget_bias: float = 0.0


#: ||W||_2 below, at and above Pascanu's threshold 1 / gamma (the forget-gate bias as drawn,
#: near 0: f near 1/2); and, for cells with a forget gate, at the threshold with the
#: forget-gate bias raised by 1 (f near 0.73, Jozefowicz et al. 2015) and by 3 (f near 0.95,
#: Gers et al. 2000), the settings in which the LSTM's cell path carries the gradient.
REGIMES = (Regime("below", sympy.Rational(1, 2)), Regime("at", sympy.Integer(1)),
           Regime("above", sympy.Integer(2)), Regime("at_forget_bias_1", sympy.Integer(1), 1.0),
           Regime("at_forget_bias_3", sympy.Integer(1), 3.0))


def forget_bias(cell) -> str | None:
    """The bias vector of the forget gate: the cell has an equation ``f = sigmoid(u)`` and
    ``u`` (or the equation it names) is a sum with exactly one H-vector parameter; else None."""
    try:
        rhs = cell.definition("f")
    except KeyError:
        return None
    if not isinstance(rhs, Sigmoid):
        return None
    u = rhs.args[0]
    if isinstance(u, Var):
        u = cell.definition(u.name)
    if not isinstance(u, MatAdd):
        return None
    biases = [a.name for a in u.args if isinstance(a, Param) and a.shape[1] == 1]
    return biases[0] if len(biases) == 1 else None


def regime_gamma(cell):
    """(gamma, activation) setting the threshold ``1 / gamma`` the recurrent norms are scaled
    against: from the Pascanu structure when the cell has it, else from the hidden
    activation of the first state's equation, else (1, None)."""
    bound = pascanu_bound(cell)
    if bound is not None:
        return bound.gamma, bound.activation
    act = hidden_activation(cell)
    return (act.gamma(), act) if act is not None else (sympy.Integer(1), None)


def controlled_params(kern, cell, input_size, hidden_size, norm, rng, forget_shift=0.0):
    """``init_params`` draw with every recurrent matrix rescaled to spectral norm ``norm``
    (and ``forget_shift`` added to the forget-gate bias, when given)."""
    params = kern.init_params(input_size, hidden_size, rng=rng, dtype=numpy.float64)
    if forget_shift:
        params[forget_bias(cell)] = params[forget_bias(cell)] + forget_shift
    for name in recurrent_matrices(cell):
        w = params[name]
        s = numpy.linalg.norm(w, 2)
        if s > 0:
            params[name] = w * (float(norm) / s)
    return params


def _distance_grid(T: int, points: int) -> numpy.ndarray:
    """About ``points`` distances in 1..T: every k up to ``points // 2``, then log-spaced."""
    dense = numpy.arange(1, min(T, points // 2) + 1)
    sparse = numpy.geomspace(max(dense[-1], 1), T, points - len(dense) + 1).round().astype(int)
    return numpy.unique(numpy.concatenate([dense, sparse, [T]]))


def _mixes_units(cell) -> bool:
    """Whether an equation reduces over the units (``sum``, ``mean``, ``dot``, ``norm``: a
    layer norm): stacking copies of such a cell couples them (the stacked Jacobian would
    fail :func:`replica_flows`' check, after all the work of computing it)."""
    return any(eq.rhs.has(SumOf) for eq in cell.equations)


def stack_replicas(kern, param_sets):
    """One parameter dict for N independent copies of the cell (hidden size N H): recurrent
    (H, H) matrices block-diagonal, (H, D) matrices stacked, (H,) vectors concatenated.

    When every (H, H) parameter multiplies a hidden-size vector and every other operation is
    elementwise, the copies do not interact and one kernel call steps all of them. None when
    a parameter has another shape; a cell with a reduction over the units (a layer norm)
    couples the copies, and :func:`experiment` does not stack it (:func:`_mixes_units`)."""
    if any(tuple(d) not in (("H", "H"), ("H", "D"), ("H",)) for d in kern.PARAMS.values()):
        return None
    out = {}
    for name, dims in kern.PARAMS.items():
        arrs = [numpy.asarray(p[name]) for p in param_sets]
        if tuple(dims) == ("H", "H"):
            H = arrs[0].shape[0]
            big = numpy.zeros((H * len(arrs), H * len(arrs)), dtype=arrs[0].dtype)
            for n, a in enumerate(arrs):
                big[n * H:(n + 1) * H, n * H:(n + 1) * H] = a
            out[name] = big
        else:
            out[name] = numpy.concatenate(arrs, axis=0)
    return out


#: Largest stacked state size per kernel call: the stacked step Jacobian is dense, so its
#: cost grows with the square of the number of copies.
MAX_STACKED_STATE = 96


def replica_flows(kern, param_sets, xs, *, ks=None, name="cell") -> list:
    """:func:`gradient_flow` for each parameter set on the same inputs ``xs``; several sets
    per kernel call when :func:`stack_replicas` applies (checked: the step Jacobian of the
    stacked cell must vanish outside the copies' diagonal blocks), else one by one."""
    H = hidden_size(kern, param_sets[0])
    per_call = max(1, MAX_STACKED_STATE // (H * len(kern.STATE)))
    out = []
    for i in range(0, len(param_sets), per_call):
        out += _stacked_flows(kern, param_sets[i:i + per_call], xs, ks=ks, name=name)
    return out


def _stacked_flows(kern, param_sets, xs, *, ks=None, name="cell") -> list:
    big = stack_replicas(kern, param_sets) if len(param_sets) > 1 else None
    if big is None:
        return [gradient_flow(kern, p, xs, ks=ks) for p in param_sets]
    N = len(param_sets)
    T, B = xs.shape[:2]
    H = hidden_size(kern, param_sets[0])
    states = tuple(kern.STATE)
    S = H * len(states)
    # row/column indices of copy n inside the stacked state (state-major, then copy, unit)
    idx = numpy.array([[i * N * H + n * H + u for i in range(len(states)) for u in range(H)]
                       for n in range(N)])
    step, step_jacobian = bound_params(kern, big)
    prev = states_along(kern, big, xs, step=step)
    decoupled = True

    def jacobian(j):
        nonlocal decoupled
        J = numpy.asarray(step_jacobian(xs[j - 1], prev[j - 1]), dtype=numpy.float64)
        blocks = J[:, idx[:, :, None], idx[:, None, :]]           # (B, N, S, S)
        if not math.isclose(numpy.abs(blocks).sum(), numpy.abs(J).sum(), rel_tol=1e-12,
                            abs_tol=1e-300):
            decoupled = False
        return blocks.reshape(B * N, S, S)

    flow = accumulate(name, states, H, jacobian, T, B * N, ks=check_ks(ks, T, name))
    if not decoupled:
        return [gradient_flow(kern, p, xs, ks=ks) for p in param_sets]
    return [GradientFlow(name, states, {b: v.reshape(len(flow.k), B, N)[:, :, n]
                                        for b, v in flow.log10.items()}, {}, flow.k)
            for n in range(N)]


@dataclass
class RegimeStats:
    """Quantiles over draws x sequences of ``log10 ||d s_T / d s_{T-k}||_2``, one column
    per distance of the experiment's ``k``."""
    regime: str
    multiplier: object                   # ||W||_2 = multiplier / gamma
    recurrent_norm: object               # multiplier / gamma, exact
    forget_bias: float                   # added to the forget-gate bias
    samples: int
    quantiles: dict                      # block -> (3, len(k)): 10th percentile, median, 90th
    bound_log10: numpy.ndarray | None    # k log10(gamma ||W||_2), Elman RNN cells only


@dataclass
class Experiment:
    cell: str
    gamma: object
    activation: str
    blocks: tuple
    k: numpy.ndarray
    regimes: list


QUANTILES = (0.1, 0.5, 0.9)


def _quantiles(samples: numpy.ndarray) -> numpy.ndarray:
    """(3, K) quantiles of a (K, N) array of log10 norms; -inf (exact zeros) kept."""
    with numpy.errstate(invalid="ignore"):
        q = numpy.quantile(samples, QUANTILES, axis=1)
    return numpy.where(numpy.isnan(q) & ~numpy.isnan(samples).any(axis=1), -numpy.inf, q)


def prepare_experiment(cell) -> None:
    """Derive and cache what :func:`experiment` needs from the cell's equations (its kernels,
    gamma, the bound, the recurrent matrices and the forget-gate bias), without running it."""
    cell = as_cell(cell)
    kernels(cell)
    regime_gamma(cell)
    recurrent_matrices(cell)
    forget_bias(cell)


def experiment(cell, *, T=40, points=14, hidden_size=6, input_size=3, draws=4, batch=4,
               seed=2013, regimes=REGIMES) -> Experiment:
    """Gradient flow over random parameter draws in each regime ``||W||_2 = m / gamma``.

    Per regime: ``draws`` parameter sets from ``init_params`` with every recurrent matrix
    rescaled to spectral norm ``m / gamma``; the same ``batch`` standard-normal input
    sequences of length ``T`` for every draw, zero initial state; norms at about ``points``
    distances in 1..T. The RNG is seeded from ``seed`` and the cell's name, so a cell's
    numbers do not depend on which other cells run.
    """
    cell = as_cell(cell)
    require_recurrence(cell)
    kern = kernels(cell)
    gamma, act = regime_gamma(cell)
    bound = pascanu_bound(cell)
    rng = numpy.random.default_rng([seed, zlib.crc32(cell.name.encode())])
    ks = _distance_grid(T, points)
    fbias = forget_bias(cell)
    regimes = [r for r in regimes if not r.forget_bias or fbias is not None]
    sets = [controlled_params(kern, cell, input_size, hidden_size, r.multiplier / gamma, rng,
                              r.forget_bias)
            for r in regimes for _ in range(draws)]
    xs = rng.standard_normal((T, batch, input_size))
    if _mixes_units(cell):        # a reduction sees every unit: N copies are not N cells
        flows = [gradient_flow(kern, p, xs, ks=ks) for p in sets]
    else:
        flows = replica_flows(kern, sets, xs, ks=ks, name=cell.name)
    stats = []
    for i, r in enumerate(regimes):
        mine = flows[i * draws:(i + 1) * draws]
        quantiles = {b: _quantiles(numpy.concatenate([f.log10[b] for f in mine], axis=1))
                     for b in mine[0].log10}
        # every draw has ||W||_2 = m / gamma, so gamma ||W||_2 = m exactly
        bound_log10 = ks * math.log10(float(r.multiplier)) if bound is not None else None
        stats.append(RegimeStats(r.label, r.multiplier, r.multiplier / gamma, r.forget_bias,
                                 draws * batch, quantiles, bound_log10))
    return Experiment(cell.name, gamma, act.name if act is not None else "none",
                      tuple(flows[0].log10), ks, stats)
