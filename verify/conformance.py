"""Conformance checking of anyone's RNN/LSTM step implementation against the derived reference.

    from verify import check_cell
    from verify.layouts import CS231nLayout

    result = check_cell("lstm", forward=lstm_step_forward, backward=lstm_step_backward,
                        layout=CS231nLayout("lstm"))
    print(result)            # which output or gradient differs, by how much, on the shrunk case
    assert result.ok

Hypothesis draws sizes, parameters, an input, a state and an upstream gradient ``dstate``
for the new state; the reference is the derived kernel (``derive.kernels(cell)``: ``step``
for the new state, ``forward``/``backward(..., return_dxs=True)`` with T = 1 for the
parameter, input and previous-state gradients). The user's functions are called through a
layout adapter (:mod:`verify.layouts`). ``cell`` is a built-in cell's name, a ``derive.Cell``
or a ``.toml`` spec path (:func:`verify.cellarg.resolve_cell`). On a mismatch Hypothesis shrinks the case, and the result lists every output and gradient
that differs on the minimal case, with the max absolute / relative error and where.

A user function that raises, returns the wrong number of arrays, the wrong shape, NaN or
infinity, or modifies any argument in place (a parameter, ``x``, a state, an upstream
gradient; named, e.g. ``params['W_xh']`` or ``dc_next``) gives a failed result, not an
exception.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky
from hypothesis import strategies as st

import derive

from . import casedraw, gradfit, loopbugs, snapshots, stepdiag
from . import strategies as vst
from .cellarg import resolve_cell
from .layouts import CS231nLayout, Layout, SeedLayout
from .reproducible import local_constants_off

__all__ = ["Mismatch", "ConformanceResult", "check_cell", "reference_step_backward",
           "DEFAULT_EXAMPLES"]

#: Cases drawn when ``max_examples`` is not given: fixed, not the Hypothesis profile's, so a
#: seed alone reproduces a run (verdict, minimal case and number of cases).
DEFAULT_EXAMPLES = 100


@dataclass
class Mismatch:
    """One output or gradient that differs (or a call that failed)."""
    phase: str              # "forward" or "backward"
    what: str               # e.g. "next_c", "dx", "dWx[:, 6:9].T (W_xo)", "call"
    kind: str               # "value", "error", "shape", "nonfinite", "mutated", "type"
    message: str
    max_abs: float | None = None
    max_rel: float | None = None
    index: tuple | None = None
    fit: str | None = None  # measured explanation (verify.gradfit): "the sign is flipped", ...

    def __str__(self):
        return f"{self.phase} {self.what}: {self.message}"


@dataclass
class ConformanceResult:
    """Outcome of :func:`check_cell`. ``ok`` is True when no case failed; otherwise
    ``mismatches`` describe the minimal failing ``case`` (a dict of the arrays)."""
    cell: str
    layout: str
    ok: bool
    examples: int
    seed: int
    max_examples: int = DEFAULT_EXAMPLES
    mismatches: list = field(default_factory=list)
    case: dict | None = None
    diagnosis: list = field(default_factory=list)            # measured explanations
    example_mismatches: list = field(default_factory=list)   # on the non-degenerate case
    example_batch: int = 2                                   # its B (1 for one-sample code)

    def __bool__(self):
        return self.ok

    def __str__(self):
        head = (f"check_cell({self.cell!r}, layout={self.layout!r}): "
                f"{'OK' if self.ok else 'FAILED'} after {self.examples} case(s) run, shrinking included "
                f"(seed {self.seed}, max_examples {self.max_examples})")
        if self.ok:
            return head
        lines = [head] + [f"diagnosis: {d}" for d in self.diagnosis]
        if self.case:
            d = self.case
            lines.append(f"minimal case: B={d['x'].shape[0]}, D={d['x'].shape[1]}, "
                         f"H={d['state'][0].shape[1]}")
        for m in self.mismatches:
            lines.append(f"  {m}")
        if self.case:
            d = self.case
            with numpy.printoptions(precision=6, suppress=True, threshold=40, linewidth=100):
                lines.append(f"  x = {numpy.asarray(d['x'])!r}".replace("\n", " "))
                for s, v, g in zip(d["state_names"], d["state"], d["dstate"]):
                    lines.append(f"  {s}_prev = {numpy.asarray(v)!r}".replace("\n", " "))
                    lines.append(f"  d{s}_next (upstream gradient) = {numpy.asarray(g)!r}".replace("\n", " "))
                zero = [n for n, v in d["params"].items() if not numpy.any(v)]
                for n, v in d["params"].items():
                    if n not in zero:
                        lines.append(f"  {n} = {numpy.asarray(v)!r}".replace("\n", " "))
                if zero:
                    lines.append(f"  zero parameters: {', '.join(zero)}")
        if self.example_mismatches:
            lines.append(f"non-degenerate case: B={self.example_batch}, D=3, H=3, entries "
                         "uniform in [-1, 1]")
            lines.extend(f"  {m}" for m in self.example_mismatches)
        return "\n".join(lines)


class _Failed(AssertionError):
    def __init__(self, mismatches, case):
        super().__init__("\n".join(str(m) for m in mismatches))
        self.mismatches, self.case = mismatches, case


# ---------------------------------------------------------------------------------------
# the reference
# ---------------------------------------------------------------------------------------

def reference_step_backward(cell, params, x, state, dstate):
    """The derived gradients of one step for upstream gradient ``dstate`` of the new state:
    ``(grads, dx, dstate_prev)``, from the derived kernel's BPTT with T = 1. ``cell``: a
    name, a ``derive.Cell`` or a ``.toml`` spec path."""
    return loopbugs.step_gradients(derive.kernels(resolve_cell(cell)), params, x, state, dstate)


# ---------------------------------------------------------------------------------------
# comparing a user's arrays
# ---------------------------------------------------------------------------------------

def _compare(phase, what, got, want, atol, rtol, out, upcast=False):
    if got is None:
        out.append(Mismatch(phase, what, "missing", "was not returned; pass "
                            f"skip=({what.split(' ')[0]!r},) if your code does not compute it"))
        return
    try:
        arr = numpy.asarray(got)
    except Exception as exc:  # noqa: BLE001 - any user object
        out.append(Mismatch(phase, what, "type", f"is not an array ({type(exc).__name__}: {exc})"))
        return
    if arr.dtype != want.dtype and not (upcast and arr.dtype.kind == "f"
                                        and arr.dtype.itemsize > want.dtype.itemsize):
        out.append(Mismatch(phase, what, "dtype", f"has dtype {arr.dtype}, expected {want.dtype} "
                            f"(the dtype of the inputs; allow_upcast=True accepts a wider float)"))
        return
    if arr.shape != want.shape:
        out.append(Mismatch(phase, what, "shape", f"has shape {arr.shape}, expected {want.shape}"))
        return
    arr = arr.astype(numpy.float64)
    want = numpy.asarray(want, dtype=numpy.float64)
    if not numpy.all(numpy.isfinite(arr)):
        i = tuple(int(j) for j in numpy.argwhere(~numpy.isfinite(arr))[0])
        out.append(Mismatch(phase, what, "nonfinite", f"contains {arr[i]} at {i} (expected "
                            f"{want[i]:.6g})", index=i))
        return
    err = numpy.abs(arr - want)
    if arr.size == 0 or numpy.all(err <= atol + rtol * numpy.max(numpy.abs(want))):
        return
    i = tuple(int(j) for j in numpy.unravel_index(int(numpy.argmax(err)), err.shape))
    scale = float(numpy.max(numpy.abs(want)))
    rel = float(err[i]) / scale if scale else float("inf")
    rel_text = f" (relative {rel:.3e})" if scale else " (expected all zero)"
    rel_text += " (all zero)" if scale and not numpy.any(arr) else ""
    fit = gradfit.explain(arr, want, atol, rtol) if scale and numpy.any(arr) else ""
    out.append(Mismatch(phase, what, "value",
                        f"max abs error {float(err[i]):.3e}{rel_text} at {i}: got "
                        f"{arr[i]:.8g}, expected {want[i]:.8g}" + (f" ({fit})" if fit else ""),
                        max_abs=float(err[i]), max_rel=rel, index=i, fit=fit or None))


def _arguments(layout, user_params, x, state, dstate=None):
    """Everything handed to a user's function, by the name a message gives it: the
    parameters as the layout passes them, ``x``, ``h_prev``/``c_prev`` and (backward) the
    upstream gradients ``dh_next``/``dc_next``."""
    args = dict(layout.user_args(user_params))
    args["x"] = x
    args.update((f"{n}_prev", v) for n, v in zip(layout.states, state))
    if dstate is not None:
        args.update((f"d{n}_next", v) for n, v in zip(layout.states, dstate))
    return args


def call_watched(phase, call, args):
    """Run ``call()``: ``(its result or None, [Mismatch])``; a raise is a Mismatch, and so is
    any argument in ``args`` changed in place (one snapshot / compare, :mod:`verify.snapshots`)."""
    before = snapshots.take(args)
    problems, result = [], None
    try:
        with numpy.errstate(all="ignore"):      # the user's warnings; NaN/inf are compared
            result = call()
    except Exception as exc:  # noqa: BLE001 - a user bug is a result, not a crash
        problems.append(Mismatch(phase, "call", "error", f"raised {type(exc).__name__}: {exc}"))
    changed = snapshots.changes(before, args)
    if changed:
        problems.append(Mismatch(phase, "inputs", "mutated",
                                 f"modified its inputs in place: {', '.join(changed)}"))
    return result, problems


def _run_case(c, k, layout, forward, backward, case, dstate, atol, rtol, opts=None):
    names = list(k.STATE)
    opts = opts or {}
    skip, up = set(opts.get("skip", ())), opts.get("upcast", False)

    def _compare(phase, what, got, want, atol, rtol, out):
        if what.split(" ")[0] not in skip and what.split("(")[-1].rstrip(")") not in skip:
            _cmp(phase, what, got, want, atol, rtol, out, up)
    ref_params = layout.from_user(layout.to_user(case.params))
    ref_params = {n: numpy.asarray(v, dtype=case.x.dtype) for n, v in ref_params.items()}
    out = []
    ctx = None
    user_params = layout.to_user(ref_params)
    x, state = numpy.array(case.x, copy=True), tuple(numpy.array(s, copy=True) for s in case.state)
    if backward is None:                    # forward only: no gradients to compute
        want = k.step(ref_params, case.x, case.state)
    else:                                   # one forward and one backward for both phases
        want, gref, dxref, dprevref = loopbugs.step_reference(k, ref_params, case.x, case.state, dstate)
    if forward is not None:
        res, problems = call_watched("forward", lambda: layout.call_forward(forward, user_params, x, state),
                              _arguments(layout, user_params, x, state))
        if res is not None:
            got, ctx = res
            for s, g, w in zip(names, got, want):
                _compare("forward", f"next_{s}", g, numpy.asarray(w), atol, rtol, out)
        out.extend(problems)
    if backward is not None and not out:
        user_dstate = tuple(numpy.array(d, copy=True) for d in dstate)
        res, problems = call_watched("backward", lambda: layout.call_backward(
            backward, ctx, user_params, x, state, user_dstate),
            _arguments(layout, user_params, x, state, user_dstate))
        if res is not None:
            grads, dx, dprev = res
            _compare("backward", "dx", dx, dxref, atol, rtol, out)
            for s, g, w in zip(names, dprev, dprevref):
                _compare("backward", f"dprev_{s}", g, numpy.asarray(w), atol, rtol, out)
            try:
                views = layout.grad_views(grads)
            except Exception as exc:  # noqa: BLE001
                out.append(Mismatch("backward", "grads", "type",
                                    f"could not read the parameter gradients: {type(exc).__name__}: {exc}"))
                views = []
            for v in views:
                _compare("backward", v.what, v.array, numpy.asarray(gref[v.param]),
                         atol, rtol, out)
        out.extend(problems)
    if out:
        raise _Failed(out, {"params": ref_params, "x": case.x, "state": case.state,
                            "dstate": dstate, "state_names": names})


_cmp = _compare


def _float_dtype(dtype):
    try:
        dt = numpy.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64)):
        raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}")
    return dt


def _check_size(label, size):
    """A size argument: a positive int or a Hypothesis strategy of them."""
    if isinstance(size, st.SearchStrategy):
        return
    if isinstance(size, bool) or not isinstance(size, (int, numpy.integer)) or size < 1:
        raise ValueError(f"{label} must be a positive integer or a strategy of them, got {size!r}")


def check_cell(cell, *, forward=None, backward=None, layout=None, dtype=numpy.float64,
               max_examples=None, seed=None, atol=None, rtol=None, hidden=st.integers(1, 4),
               batch=st.integers(1, 3), input_size=st.integers(1, 3), scale=(1.0, 10.0, 100.0),
               skip=(), upstream=None, biases=True, allow_upcast=False):
    """Check a user's step ``forward`` and/or ``backward`` for ``cell`` against the derived
    reference on Hypothesis-generated cases; returns a :class:`ConformanceResult`.

    ``cell``: a built-in cell's name, a :class:`derive.Cell` or a ``.toml`` spec path.
    ``layout``: a :class:`verify.layouts.Layout` (default: the seed's names,
    :class:`SeedLayout`), which also fixes how the functions are called. ``max_examples``
    defaults to :data:`DEFAULT_EXAMPLES` (not the Hypothesis profile's). A ``seed`` makes the
    run reproducible: the same seed, ``max_examples``, sizes and deterministic functions give
    the same verdict, minimal case and number of cases (a random seed is drawn and reported
    otherwise). Tolerances default to ``atol=1e-9, rtol=1e-7`` in
    float64 and ``1e-4`` in float32 (``|got - want| <= atol + rtol max |want|``, array by
    array). ``scale``: a number or a ladder each case draws its entry bound from (default 1,
    10, 100: overflow and NaN bugs show). Partial contracts: ``skip`` names outputs not
    compared (``"dx"``, ``"dprev_c"``, ``"next_c"``, a parameter); ``upstream={"c": 0}`` fixes
    upstream gradients to zero; ``biases=False`` zeroes every bias (names ``b...``) and does not
    compare their gradients; ``allow_upcast`` accepts float64 results for float32 inputs.
    When both functions are given, backward is compared only on cases where forward matched
    (a wrong forward makes every gradient wrong; fix it first)."""
    c = resolve_cell(cell)                     # unknown cell, bad spec: an error naming it
    name = c.name
    if forward is None and backward is None:
        raise ValueError("check_cell needs forward= and/or backward=")
    layout = layout if layout is not None else SeedLayout(c)
    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be a verify.layouts.Layout, got {type(layout).__name__}")
    if layout.cell.name != name:
        raise ValueError(f"layout is for cell {layout.cell.name!r}, not {name!r}")
    if backward is not None and forward is None and getattr(layout, "convention", None) == "cs231n":
        raise ValueError("the CS231n convention passes forward's cache to backward: give forward= too")
    for label, fn in (("forward", forward), ("backward", backward)):
        if fn is not None and not layout.accepts(fn):
            raise TypeError(f"{label} must be a function, got {type(fn).__name__}")
    dtype = _float_dtype(dtype)
    if not getattr(layout, "batch_axis", True):      # one-sample code: 1-D vectors, B = 1
        batch = 1
    for label, size in (("hidden", hidden), ("batch", batch), ("input_size", input_size)):
        _check_size(label, size)
    ladder = tuple(scale) if isinstance(scale, (tuple, list)) else (scale,)
    if not ladder or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                             and numpy.isfinite(v) and v > 0 for v in ladder):
        raise ValueError(f"scale must be a positive number or a tuple of them, got {scale!r}")
    if isinstance(skip, str):
        raise TypeError(f"skip must be a tuple of names, got the string {skip!r}")
    upstream = dict(upstream or {})
    bad = [s for s in upstream if s not in c.states]
    if bad or any(v != 0 for v in upstream.values()):
        raise ValueError(f"upstream must map states of {name!r} ({', '.join(c.states)}) to 0, "
                         f"got {upstream!r}")
    bias_names = [n for n, sh in vst.param_shapes(c).items() if n.startswith("b") and len(sh) == 1]
    opts = {"skip": tuple(skip) + (() if biases else tuple(bias_names)), "upcast": allow_upcast}
    for label, tol in (("atol", atol), ("rtol", rtol)):
        if tol is not None and not (isinstance(tol, (int, float)) and tol >= 0):
            raise ValueError(f"{label} must be a non-negative number, got {tol!r}")
    if max_examples is not None and (isinstance(max_examples, bool)
                                     or not isinstance(max_examples, int) or max_examples < 1):
        raise ValueError(f"max_examples must be a positive integer, got {max_examples!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, numpy.integer))):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    f32 = dtype == numpy.float32
    atol = atol if atol is not None else (1e-4 if f32 else 1e-9)
    rtol = rtol if rtol is not None else (1e-4 if f32 else 1e-7)
    seed = random.getrandbits(32) if seed is None else int(seed)
    examples = [0]
    failure: list = []
    n = max_examples if max_examples is not None else DEFAULT_EXAMPLES
    k = derive.kernels(c)
    shapes, scales = vst.param_shapes(c), st.sampled_from(ladder)
    sizes = tuple(vst._strategy(v) for v in (batch, input_size, hidden))

    # Everything that steers the search is fixed here: the seed, n, no example database, fixed
    # phases, no deadline, and no constants taken from local modules' source
    # (verify.reproducible); nothing comes from the active profile.
    @hypothesis_seed(seed)
    @settings(max_examples=n, deadline=None, database=None, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), print_blob=False,
              phases=[Phase.explicit, Phase.generate, Phase.shrink])
    @given(data=st.data())
    def run(data):
        examples[0] += 1
        sc = data.draw(scales, label="scale")
        case, dstate = casedraw.step_case(data.draw, c, shapes, sizes, dtype, sc)
        if not biases:
            case.params = {n: v * 0 if n in bias_names else v for n, v in case.params.items()}
        dstate = tuple(d * 0 if s in upstream else d for s, d in zip(c.states, dstate))
        _run_case(c, k, layout, forward, backward, case, dstate, atol, rtol, opts)

    flaky = []
    try:
        with local_constants_off():
            run()
    except _Failed as exc:
        failure.append(exc)
    except Flaky as exc:
        # the user's function gave different results for the same case
        found = [e for e in getattr(exc, "exceptions", ()) if isinstance(e, _Failed)]
        flaky.append(found[0].case if found else None)

    def one(lay, case, ds):
        ds = tuple(d * 0 if s in upstream else d for s, d in zip(c.states, ds))
        if not biases:
            case.params = {n: v * 0 if n in bias_names else v for n, v in case.params.items()}
        try:
            _run_case(c, k, lay, forward, backward, case, ds, atol, rtol, opts)
        except _Failed as exc:
            return exc.mismatches
        return []
    if failure and not flaky:
        f = failure[-1].case                # run the minimal case once more: does it still fail?
        if not one(layout, SimpleNamespace(params=dict(f["params"]), x=f["x"], state=f["state"]),
                   f["dstate"]):
            flaky.append(f)
    if flaky:
        return ConformanceResult(name, layout.name, False, examples[0], seed, n, [Mismatch(
            "forward" if backward is None else "forward/backward", "determinism", "flaky",
            "gave different results when called again on the same case: the functions must "
            "be deterministic (no state kept between calls, no randomness)")], flaky[0])
    if failure:
        f = failure[-1]
        ex, diag = stepdiag.explain(one, c, layout, seed, dtype, backward is not None)
        return ConformanceResult(name, layout.name, False, examples[0], seed, n, f.mismatches,
                                 f.case, diag, ex, 2 if getattr(layout, "batch_axis", True) else 1)
    return ConformanceResult(name, layout.name, True, examples[0], seed, n)
