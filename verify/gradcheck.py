"""Central-difference gradient checking for any forward/backward pair.

``gradcheck(loss, arrays, grads)`` compares analytic gradients with central differences

    dL/dtheta[i] ~ (L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps)

entry by entry (float64; truncation error O(eps^2), rounding error O(|L| u / eps), so
``eps = 1e-6`` gives about 1e-9 absolute accuracy for O(1) losses). For every array it reports

* ``max_abs``: ``max_i |analytic[i] - numeric[i]|``;
* ``max_rel``: ``max_abs / max(max_i |numeric[i]|, max_i |analytic[i]|)``, the error relative
  to the gradient's own scale (entry-wise relative errors blow up on entries that are
  zero up to rounding, so the scale is taken per array); 0 when both are exactly zero;
* ``worst``: the index where ``max_abs`` is reached, with both values there.

``gradcheck_kernel(kernel, params, xs, state0)`` does this for a kernel of the
``derive.kernels`` API (or a cell: a name, a ``derive.Cell`` or a ``.toml`` spec path, whose
derived kernels are used): loss ``L = sum_t <G_t, h_t> + sum_s <G_s, s_T>`` with fixed random
``G``; gradients from ``backward`` for every parameter and every initial state.
Inputs are never modified.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy

from .oracles import fd_gradient

__all__ = ["ArrayError", "GradcheckReport", "numeric_gradient", "gradcheck", "gradcheck_kernel"]


@dataclass
class ArrayError:
    """Analytic-vs-numeric error of one array's gradient."""
    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    worst: tuple            # index of the largest absolute error
    analytic: float         # analytic gradient at ``worst``
    numeric: float          # central difference at ``worst``

    def ok(self, atol=1e-6, rtol=1e-5) -> bool:
        """Passes when ``max_abs <= atol`` or ``max_rel <= rtol``."""
        return self.max_abs <= atol or self.max_rel <= rtol


@dataclass
class GradcheckReport:
    """Per-array errors, in the order the arrays were given."""
    errors: dict = field(default_factory=dict)
    eps: float = 1e-6

    def ok(self, atol=1e-6, rtol=1e-5) -> bool:
        return all(e.ok(atol, rtol) for e in self.errors.values())

    def worst(self) -> ArrayError | None:
        return max(self.errors.values(), key=lambda e: e.max_rel, default=None)

    def failing(self, atol=1e-6, rtol=1e-5) -> list:
        return [e for e in self.errors.values() if not e.ok(atol, rtol)]

    def __str__(self):
        lines = [f"{'array':<16} {'shape':<12} {'max abs err':>12} {'max rel err':>12}  worst at"]
        for e in self.errors.values():
            lines.append(f"{e.name:<16} {str(e.shape):<12} {e.max_abs:12.3e} {e.max_rel:12.3e}  "
                         f"{e.worst} (analytic {e.analytic:.6g}, numeric {e.numeric:.6g})")
        return "\n".join(lines)


def numeric_gradient(loss, arrays: dict, name: str, *, eps=1e-6) -> numpy.ndarray:
    """Central differences of ``loss(arrays)`` with respect to every entry of ``arrays[name]``
    (computed in float64 on copies; the caller's arrays are not touched)."""
    work = {k: numpy.array(v, dtype=numpy.float64, copy=True) for k, v in arrays.items()}
    return fd_gradient(lambda a: loss({**work, name: a}), work[name], eps)


def compare(name, analytic, numeric) -> ArrayError:
    """The :class:`ArrayError` of one array (shapes must match)."""
    analytic = numpy.asarray(analytic, dtype=numpy.float64)
    numeric = numpy.asarray(numeric, dtype=numpy.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"gradient of {name!r} has shape {analytic.shape}, expected {numeric.shape}")
    if analytic.size == 0:
        return ArrayError(name, analytic.shape, 0.0, 0.0, (), 0.0, 0.0)
    diff = numpy.abs(analytic - numeric)
    diff = numpy.where(numpy.isnan(diff), numpy.inf, diff)
    worst = numpy.unravel_index(int(numpy.argmax(diff)), diff.shape)
    max_abs = float(diff[worst])
    scale = max(float(numpy.max(numpy.abs(numeric))), float(numpy.nanmax(numpy.abs(analytic))))
    max_rel = 0.0 if max_abs == 0 else (max_abs / scale if scale > 0 else numpy.inf)
    return ArrayError(name, analytic.shape, max_abs, float(max_rel), tuple(int(i) for i in worst),
                      float(analytic[worst]), float(numeric[worst]))


def gradcheck(loss, arrays: dict, grads: dict, *, eps=1e-6, names=None) -> GradcheckReport:
    """Check ``grads[name]`` (analytic dL/d arrays[name]) against central differences of
    ``loss(arrays) -> float`` for every name in ``names`` (default: every key of ``grads``)."""
    report = GradcheckReport(eps=eps)
    for name in (list(grads) if names is None else names):
        if name not in arrays:
            raise KeyError(f"no array called {name!r} to check; arrays: {', '.join(arrays)}")
        num = numeric_gradient(loss, arrays, name, eps=eps)
        report.errors[name] = compare(name, grads[name], num)
    return report


def gradcheck_kernel(kernel, params: dict, xs, state0=None, *, seed=0, eps=1e-6) -> GradcheckReport:
    """Check ``kernel.backward`` against central differences of ``kernel.forward`` for every
    parameter and every initial state (named ``<state>0``, e.g. ``h0``, ``c0``).

    Loss: ``L = sum_t <G_t, h_t> + sum_s <G_s, s_T>`` with ``G`` drawn from ``seed``, evaluated
    by T calls of ``kernel.step`` (which also give the final states, so ``dstate`` is
    exercised); the analytic side is ``kernel.forward`` + ``kernel.backward``. ``kernel`` may
    also be a cell (name, ``derive.Cell`` or ``.toml`` path): its ``derive.kernels``."""
    if not hasattr(kernel, "PARAMS"):
        import derive
        from .cellarg import resolve_cell
        kernel = derive.kernels(resolve_cell(kernel))
    xs = numpy.asarray(xs, dtype=numpy.float64)
    T, B, _ = xs.shape
    H = next(numpy.shape(params[n])[spec.index("H")] for n, spec in kernel.PARAMS.items()
             if "H" in spec)
    names = list(kernel.STATE)
    shapes = getattr(kernel, "STATE_SHAPES", {})
    rows = [(B,) + tuple(H if d == "H" else 1 for d in shapes.get(n, ("H",))) for n in names]
    if state0 is None:
        state0 = tuple(numpy.zeros(r) for r in rows)
    rng = numpy.random.default_rng(seed)
    g_hs = rng.standard_normal((T, B, H))
    g_final = [rng.standard_normal(r) for r in rows]          # (B, H), (B, 1) or (B, H, H)

    ih = names.index(kernel.OUTPUT)          # the state forward returns (h, else the first)

    def loss(arrs):
        # the forward pass as T calls of kernel.step (which also gives the final states)
        p = {k: arrs[k] for k in params}
        s = tuple(arrs[f"{n}0"] for n in names)
        total = 0.0
        for t in range(T):
            s = tuple(kernel.step(p, xs[t], s))
            total += float(numpy.sum(g_hs[t] * s[ih]))
        return total + sum(float(numpy.sum(g * v)) for g, v in zip(g_final, s))

    arrays = dict(params)
    arrays.update({f"{s}0": numpy.asarray(v, dtype=numpy.float64) for s, v in zip(names, state0)})
    hs, cache = kernel.forward(params, xs, tuple(state0))
    grads, dstate0 = kernel.backward(params, cache, g_hs, tuple(g_final))
    analytic = dict(grads)
    analytic.update({f"{s}0": d for s, d in zip(names, dstate0)})
    return gradcheck(loss, arrays, analytic, eps=eps)
