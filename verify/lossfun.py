"""Functions that return their own loss and gradients, checked against central differences of
the loss they return (Karpathy's ``lossFun(inputs, targets, hprev) -> (loss, dWxh, dWhh,
dWhy, dbh, dby, hs)`` and the like), with no wrapper to write.

    from verify import check_loss
    print(check_loss(lossFun, params=("Wxh", "Whh", "Why", "bh", "by"),
                     args=(inputs, targets, hprev)))

Where the parameters live:

* ``params`` a tuple of names: module globals of ``fn`` (``fn.__globals__``), as in
  min-char-rnn; for each evaluation the global is rebound to a perturbed copy and restored;
* ``params`` a dict: passed to ``fn`` as its first argument (``fn(params, *args)``), or as its
  last with ``pass_params="last"``.

What ``fn`` returns: the loss first, then either the gradients in the order of ``params``
(extra items after them, such as ``hs``, are ignored) or one dict of gradients keyed by
``grad_names[name]`` (default: ``"d" + name`` or ``name``).

The cases: case 0 is the parameter values as given; each further case adds Gaussian noise of
each array's own standard deviation (0.01 where it is all zero), drawn from ``seed``. Each
gradient is compared entry by entry with :func:`verify.oracles.central_difference` when the
array has at most ``max_entries`` entries, otherwise along ``directions`` random unit
directions ``v`` (``<g, v>`` against the central difference of ``t -> L(p + t v)``). A
mismatch is ``|g - fd| > atol + rtol max |fd|``; a gradient equal to ``c * fd`` for one
constant ``c`` (a sign flip, a factor 2, a missing 1/N) or to ``fd`` clipped at ``max |g|``
is named as such (:mod:`verify.gradfit`, shared with check_cell and check_sequence). The result is a :class:`verify.SequenceResult` (``check="check_loss"``).
"""
from __future__ import annotations

import random

import numpy

from . import gradfit, snapshots
from .conformance import Mismatch
from .oracles import central_difference
from .sequence import SequenceResult

__all__ = ["check_loss"]


class _Binding:
    """Reads and rebinds the parameters of ``fn`` (globals, or a dict argument)."""

    def __init__(self, fn, params, pass_params):
        self.fn, self.pass_params = fn, pass_params
        if isinstance(params, dict):
            self.mode, self.values = "an argument", {k: numpy.asarray(v) for k, v in params.items()}
        elif isinstance(params, (tuple, list)) and all(isinstance(p, str) for p in params):
            g = getattr(fn, "__globals__", None)
            if g is None:
                raise TypeError("params given by name need a Python function (its globals hold them)")
            missing = [p for p in params if p not in g]
            if missing:
                raise ValueError(f"params {missing} are not globals of {fn.__name__}")
            self.mode, self.values = "globals", {p: numpy.asarray(g[p]) for p in params}
        else:
            raise TypeError("params must be a dict of arrays or a tuple of global names")
        if pass_params not in ("first", "last"):
            raise ValueError(f"pass_params must be 'first' or 'last', got {pass_params!r}")

    def call(self, values, args):
        if self.mode == "an argument":
            v = dict(values)
            return self.fn(v, *args) if self.pass_params == "first" else self.fn(*args, v)
        g, saved = self.fn.__globals__, {k: self.fn.__globals__[k] for k in values}
        try:
            g.update(values)
            return self.fn(*args)
        finally:
            g.update(saved)


def _loss(out):
    v = out[0] if isinstance(out, (tuple, list)) else out
    return float(numpy.asarray(v, dtype=numpy.float64).sum())


def _grads(out, names, grad_names):
    if not isinstance(out, (tuple, list)) or len(out) < 2:
        raise TypeError("fn must return (loss, gradients...) or (loss, {name: gradient})")
    if isinstance(out[1], dict):
        d = out[1]
        return {n: d.get(grad_names.get(n, "d" + n), d.get(n)) for n in names}
    if len(out) < 1 + len(names):
        raise TypeError(f"fn returned {len(out) - 1} gradient(s) after the loss, expected "
                        f"{len(names)} ({', '.join(names)})")
    return dict(zip(names, out[1:1 + len(names)]))


def check_loss(fn, *, params, args=(), pass_params="first", grad_names=None, cases=3, seed=None,
               eps=1e-5, rtol=1e-5, atol=1e-7, max_entries=400, directions=4):
    """Check the gradients ``fn`` returns against central differences of the loss it returns
    (see the module docstring); a :class:`SequenceResult`. ``args``: the other arguments,
    a tuple (or a function ``rng -> tuple`` to draw new ones per case)."""
    bind = _Binding(fn, params, pass_params)
    grad_names = dict(grad_names or {})
    if not isinstance(cases, int) or cases < 1:
        raise ValueError(f"cases must be a positive integer, got {cases!r}")
    seed = random.getrandbits(32) if seed is None else int(seed)
    rng = numpy.random.default_rng(seed)
    names = list(bind.values)
    name = getattr(fn, "__name__", type(fn).__name__)
    for n_case in range(cases):
        values = {k: numpy.array(v, dtype=numpy.float64, copy=True) for k, v in bind.values.items()}
        if n_case:
            for k, v in values.items():
                s = float(numpy.std(v)) or 0.01
                values[k] = v + rng.normal(0, s, v.shape)
        a = tuple(args(rng)) if callable(args) else tuple(args)
        out_m, diag = [], []
        watched = {**{f"params[{k!r}]" if bind.mode == "an argument" else k: v for k, v in values.items()},
                   **{f"args[{j}]": v for j, v in enumerate(a)}}
        before = snapshots.take(watched)
        try:
            with numpy.errstate(all="ignore"):
                out = bind.call(values, a)
                grads = _grads(out, names, grad_names)
        except Exception as exc:  # noqa: BLE001 - a user bug is a result
            out_m.append(Mismatch("loss", "call", "error", f"raised {type(exc).__name__}: {exc}"))
            grads = {}
        changed = snapshots.changes(before, watched)
        if changed:
            out_m.append(Mismatch("loss", "inputs", "mutated",
                                  f"modified its inputs in place: {', '.join(changed)}"))
        for k in names if not out_m else ():
            g = grads.get(k)
            if g is None:
                out_m.append(Mismatch("loss", f"d{k}", "missing", "was not returned"))
                continue
            g = numpy.asarray(g, dtype=numpy.float64)
            if g.shape != values[k].shape:
                out_m.append(Mismatch("loss", f"d{k}", "shape",
                                      f"has shape {g.shape}, expected {values[k].shape}"))
                continue

            def L(p, k=k):
                return numpy.array(_loss(bind.call({**values, k: p}, a)))
            with numpy.errstate(all="ignore"):
                if values[k].size <= max_entries:
                    fd, got = central_difference(L, values[k], eps), g
                else:
                    vs = rng.standard_normal((directions,) + values[k].shape)
                    vs /= numpy.sqrt((vs.reshape(directions, -1) ** 2).sum(1)).reshape((-1,) + (1,) * g.ndim)
                    fd = numpy.array([float(central_difference(
                        lambda t, v=v: L(values[k] + t[()] * v), numpy.array(0.0), eps)) for v in vs])
                    got = numpy.array([float((g * v).sum()) for v in vs])
            err = numpy.abs(got - fd)
            bound = atol + rtol * float(numpy.max(numpy.abs(fd))) if fd.size else atol
            if not numpy.all(numpy.isfinite(got)):
                out_m.append(Mismatch("loss", f"d{k}", "nonfinite", "contains NaN or infinity"))
            elif numpy.any(err > bound):
                i = tuple(int(j) for j in numpy.unravel_index(int(numpy.argmax(err)), err.shape))
                what = "at" if got is g else "along random direction"
                why = gradfit.explain(got, fd, atol, rtol) if got is g else ""
                out_m.append(Mismatch("loss", f"d{k}", "value",
                                      f"max abs error {float(err[i]):.3e} {what} {i}: got "
                                      f"{float(got[i]):.8g}, central difference {float(fd[i]):.8g}"
                                      + (f" ({why})" if why else ""), max_abs=float(err[i]),
                                      fit=why or None))
        if out_m:
            diag = gradfit.sentences(out_m)
            case = {"sizes": {k: "x".join(map(str, v.shape)) for k, v in values.items()},
                    "params": values, "case": n_case}
            return SequenceResult("check_loss", name, bind.mode, False, n_case + 1, seed, cases,
                                  out_m, case, diag)
    return SequenceResult("check_loss", name, bind.mode, True, cases, seed, cases)
