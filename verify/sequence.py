"""Conformance of a user's whole-sequence forward and BPTT against the derived kernels.

    from verify import check_sequence, CS231nLayout
    print(check_sequence("lstm", lstm_forward, lstm_backward, layout=CS231nLayout("lstm")))

Hypothesis draws T (1..8 by default; it shrinks towards T = 2, not 1, where no gradient
crosses a step), B, D, H, a scale from the ladder ``scales`` (1, 10, 100: overflow and NaN
bugs show at 100), the parameters, ``xs``, the initial states the code takes (the others are
0), an upstream gradient on every h_t and, with ``final_upstream=True``, on the final states.
The reference is ``derive.kernels(cell)``: ``forward`` and the full ``backward``
(``return_dxs=True``). How the functions are called: :mod:`verify.seqconv`.

An array matches when ``max |got - want| <= atol + rtol max |want|`` (array-wise: rounding in
a long loop is relative to the array's scale). A sequence array (``hs``, ``dxs``) that differs
says at which steps; a failure is re-measured on a fixed non-degenerate case (T = 4, B = 2,
D = 3, H = 3, entries drawn from the seed) and compared with the reference computed *with*
each classic loop bug (:mod:`verify.loopbugs`): a diagnosis is a bug whose reference the
user's arrays equal. Missing outputs (``None``) are named unless listed in ``skip``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky

import derive

from . import casedraw, gatediag, gradfit, loopbugs
from . import strategies as vst
from .cellarg import resolve_cell
from .conformance import DEFAULT_EXAMPLES, Mismatch, call_watched
from .layouts import Layout, SeedLayout
from .reproducible import local_constants_off
from .seqconv import convention_for

__all__ = ["check_sequence", "SequenceResult", "steps_strategy"]


def steps_strategy(lo=1, hi=8):
    """T in [lo, hi], shrinking towards 2 (then 3, ...), with T = 1 the last resort: T = 1
    has no gradient crossing a step, so a minimal case there hides every loop bug."""
    order = [t for t in range(lo, hi + 1) if t != 1] + ([1] if lo <= 1 <= hi else [])
    return st.integers(0, len(order) - 1).map(lambda j: order[j])


@dataclass
class SequenceResult:
    """Outcome of :func:`check_sequence` (and :func:`verify.check_loss`): ``ok``; on failure
    the ``mismatches`` on the shrunk ``case``, the ``diagnosis`` (sentences naming measured
    bugs) and the mismatches on a non-degenerate ``example`` case."""
    check: str
    cell: str
    layout: str
    ok: bool
    examples: int
    seed: int
    max_examples: int
    mismatches: list = field(default_factory=list)
    case: dict | None = None
    diagnosis: list = field(default_factory=list)
    example: dict | None = None
    example_mismatches: list = field(default_factory=list)

    def __bool__(self):
        return self.ok

    def __str__(self):
        verdict = "OK" if self.ok else "FAILED"
        if self.check == "check_loss":
            head = (f"check_loss({self.cell!r}, params from {self.layout}): {verdict} after "
                    f"{self.examples} of {self.max_examples} case(s) (seed {self.seed})")
        else:
            head = (f"{self.check}({self.cell!r}, layout={self.layout!r}): {verdict} after "
                    f"{self.examples} case(s) run, shrinking included (seed {self.seed}, "
                    f"max_examples {self.max_examples})")
        if self.ok:
            return head
        lines = [head]
        for d in self.diagnosis:
            lines.append(f"diagnosis: {d}")
        if self.case:
            label = f"case {self.case['case']}" if "case" in self.case else "minimal case"
            lines.append(f"{label}: {_sizes(self.case)}")
        lines.extend(f"  {m}" for m in self.mismatches)
        if self.case and "xs" in self.case:
            lines.extend(_show(self.case))
        if self.example_mismatches:
            lines.append(f"non-degenerate case: {_sizes(self.example)}")
            lines.extend(f"  {m}" for m in self.example_mismatches)
        return "\n".join(lines)


def _sizes(case):
    if "xs" not in case:
        return ", ".join(f"{k}={v}" for k, v in case.get("sizes", {}).items())
    T, B, D = case["xs"].shape
    return f"T={T}, B={B}, D={D}, H={case['state0'][0].shape[1]}, scale={case.get('scale', 1)}"


def _show(case):
    out = []
    with numpy.printoptions(precision=6, suppress=True, threshold=30, linewidth=100):
        for k in ("xs", "dhs"):
            if k in case:
                out.append(f"  {k} = {numpy.asarray(case[k])!r}".replace("\n", " "))
        for n, v in zip(case.get("state_names", ()), case.get("state0", ())):
            out.append(f"  {n}0 = {numpy.asarray(v)!r}".replace("\n", " "))
        zero = [n for n, v in case.get("params", {}).items() if not numpy.any(v)]
        for n, v in case.get("params", {}).items():
            if n not in zero:
                out.append(f"  {n} = {numpy.asarray(v)!r}".replace("\n", " "))
        if zero:
            out.append(f"  zero parameters: {', '.join(zero)}")
    return out


class _Failed(AssertionError):
    def __init__(self, mismatches, case, raw):
        super().__init__("\n".join(str(m) for m in mismatches))
        self.mismatches, self.case, self.raw = mismatches, case, raw


# ---------------------------------------------------------------------------------------
# comparing
# ---------------------------------------------------------------------------------------

def _close(got, want, atol, rtol):
    err = numpy.abs(numpy.asarray(got, numpy.float64) - numpy.asarray(want, numpy.float64))
    bound = atol + rtol * (float(numpy.max(numpy.abs(want))) if numpy.size(want) else 0.0)
    return err, bound


def compare(phase, what, got, want, opts, out, timed=False):
    """Append a :class:`Mismatch` to ``out`` when ``got`` is not ``want`` (type, dtype, shape,
    NaN, value); ``timed``: axis 0 is time and the message says at which steps."""
    if got is None:
        out.append(Mismatch(phase, what, "missing", "was not returned (None); pass "
                            f"skip=({what.split('[')[0].split(' ')[0]!r},) if your code does not compute it"))
        return
    try:
        arr = numpy.asarray(got)
    except Exception as exc:  # noqa: BLE001 - any user object
        out.append(Mismatch(phase, what, "type", f"is not an array ({type(exc).__name__})"))
        return
    want = numpy.asarray(want)
    if arr.dtype != want.dtype and not (opts["allow_upcast"] and arr.dtype.kind == "f"
                                        and arr.dtype.itemsize > want.dtype.itemsize):
        out.append(Mismatch(phase, what, "dtype", f"has dtype {arr.dtype}, expected {want.dtype} "
                            "(the dtype of the inputs; allow_upcast=True accepts a wider float)"))
        return
    if arr.shape != want.shape:
        out.append(Mismatch(phase, what, "shape", f"has shape {arr.shape}, expected {want.shape}"))
        return
    if not numpy.all(numpy.isfinite(arr)):
        i = tuple(int(j) for j in numpy.argwhere(~numpy.isfinite(arr))[0])
        out.append(Mismatch(phase, what, "nonfinite", f"contains {arr[i]} at {i} (expected "
                            f"{float(want[i]):.6g})", index=i))
        return
    err, bound = _close(arr, want, opts["atol"], opts["rtol"])
    if arr.size == 0 or numpy.all(err <= bound):
        return
    i = tuple(int(j) for j in numpy.unravel_index(int(numpy.argmax(err)), err.shape))
    scale = float(numpy.max(numpy.abs(want)))
    note = " (all zero)" if not numpy.any(arr) else ""
    fit = gradfit.explain(arr, want, opts["atol"], opts["rtol"]) if scale and not note else ""
    msg = (f"max abs error {float(err[i]):.3e}{f' (relative {err[i] / scale:.3e})' if scale else ''}"
           f" at {i}: got {float(arr[i]):.8g}, expected {float(want[i]):.8g}{note}"
           + (f" ({fit})" if fit else ""))
    if timed and arr.ndim >= 1 and arr.shape[0] > 1:
        bad = [t for t in range(arr.shape[0]) if numpy.any(err[t] > bound)]
        msg += f"; wrong at step(s) {_ranges(bad)} of T={arr.shape[0]}"
    out.append(Mismatch(phase, what, "value", msg, max_abs=float(err[i]),
                        max_rel=float(err[i]) / scale if scale else float("inf"), index=i, fit=fit or None))


def _ranges(ts):
    parts, start = [], None
    for j, t in enumerate(ts):
        if start is None:
            start = t
        if j + 1 == len(ts) or ts[j + 1] != t + 1:
            parts.append(f"{start}" if start == t else f"{start}..{t}")
            start = None
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------
# one case
# ---------------------------------------------------------------------------------------

def _reference(k, case):
    hs, cache = k.forward(case["params"], case["xs"], case["state0"])
    final = tuple(numpy.array(s[-1], copy=True) for s in cache["S"])    # s_T, as step gives it
    grads, d0, dxs = k.backward(case["params"], cache, case["dhs"], case["dfinal"],
                                return_dxs=True)
    return {"hs": hs, "final": final, "grads": dict(grads), "dxs": dxs, "dstate0": tuple(d0)}


def run_case(k, layout, conv, forward, backward, case, opts):
    """``(mismatches, raw user arrays)`` of one case (raw: for the bug variants)."""
    names, out, raw = list(k.STATE), [], {}
    ref = _reference(k, case)
    user_params = layout.to_user(case["params"])
    xs = conv.user_x(numpy.array(case["xs"], copy=True))
    s0 = tuple(numpy.array(s, copy=True) for s in case["state0"])
    ctx = None
    if forward is not None:
        res, problems = call_watched("forward", lambda: conv.call_forward(forward, user_params, xs, s0),
                              conv.forward_args(user_params, xs, s0))
        out.extend(problems)
        if res is not None:
            hs, final, ctx = res
            raw["hs"] = hs
            compare("forward", "hs", hs, ref["hs"], opts, out, timed=True)
            for n, g, w in zip(names, final or (), ref["final"]):
                compare("forward", f"{n}_T (final state)", g, w, opts, out)
    if backward is not None and not out:
        dhs = conv.user_x(numpy.array(case["dhs"], copy=True))
        dfinal = (None if case["dfinal"] is None
                  else tuple(numpy.array(d, copy=True) for d in case["dfinal"]))
        res, problems = call_watched("backward", lambda: conv.call_backward(
            backward, ctx, user_params, xs, s0, dhs, dfinal),
            conv.backward_args(user_params, dhs, dfinal))
        out.extend(problems)
        if res is not None:
            grads, dxs, d0 = res
            raw.update(dxs=dxs, dstate0=d0, grads={})
            if "dx" not in opts["skip"]:
                compare("backward", "dx", dxs, ref["dxs"], opts, out, timed=True)
            for n, g, w in zip(names, d0 if d0 is not None else (None,) * len(names),
                               ref["dstate0"]):
                if n in conv.takes_state and f"d{n}0" not in opts["skip"]:
                    compare("backward", f"d{n}0", g, w, opts, out)
            try:
                views = layout.grad_views(grads)
            except Exception as exc:  # noqa: BLE001
                out.append(Mismatch("backward", "grads", "type", "could not read the parameter "
                                    f"gradients: {type(exc).__name__}: {exc}"))
                views = []
            for v in views:
                if {v.param, v.label.split("[")[0]} & set(opts["skip"]) or v.param in opts["no_grad"]:
                    continue
                raw["grads"][v.label] = (v.param, v.array)
                compare("backward", v.what, v.array, ref["grads"][v.param],
                        opts, out)
    return out, raw


# ---------------------------------------------------------------------------------------
# diagnosis: which bug variant do the user's arrays equal?
# ---------------------------------------------------------------------------------------

def _equal(got, want, opts):
    try:
        got = numpy.asarray(got, dtype=numpy.float64)
    except Exception:  # noqa: BLE001
        return False
    if got.shape != numpy.shape(want) or not numpy.all(numpy.isfinite(got)):
        return False
    err, bound = _close(got, want, opts["atol"], opts["rtol"])
    return bool(numpy.all(err <= bound))


def diagnose(k, conv, case, raw, mismatches, opts):
    """Sentences naming every bug variant the user's arrays match (and all-zero outputs)."""
    out = []
    wrong = {m.what.split(" ")[0] for m in mismatches if m.kind == "value"}
    zero = [m.what for m in mismatches if m.kind == "value" and "(all zero)" in m.message]
    if "hs" in wrong and raw.get("hs") is not None:
        for bug in loopbugs.FORWARD_BUGS:
            hv = loopbugs.forward_variant(k, case["params"], case["xs"], case["state0"], bug)
            if _equal(raw["hs"], hv, opts):
                out.append(f"hs equals the reference computed with this bug: {loopbugs.BUG_TEXT[bug]}")
    if "grads" in raw and wrong:
        states = loopbugs.forward_states(k, case["params"], case["xs"], case["state0"])
        variants = [(b, b) for b in loopbugs.BACKWARD_BUGS]
        if case["dfinal"] is not None:
            variants.append(("ignores_dfinal", None))
        for bug, v in variants:
            if bug == "no_carry_c" and len(k.STATE) < 2:
                continue
            g, dxs, d0 = loopbugs.bptt(k, case["params"], case["xs"], states, case["dhs"],
                                       None if bug == "ignores_dfinal" else case["dfinal"], v)
            checks = [("dx", raw["dxs"], dxs)] if "dx" not in opts["skip"] else []
            checks += [(f"d{n}0", u, w) for n, u, w in zip(
                k.STATE, raw["dstate0"] or (None,) * len(k.STATE), d0) if n in conv.takes_state]
            checks += [(lbl.split(" ")[0], arr, g[p]) for lbl, (p, arr) in raw["grads"].items()]
            hit = all(_equal(u, w, opts) for _, u, w in checks if u is not None)
            # a variant explains the failure when it matches everything and differs from the
            # reference on at least one wrong array
            if hit and any(name in wrong for name, _, _ in checks):
                text = ("the upstream gradient on the final states is ignored"
                        if bug == "ignores_dfinal" else loopbugs.BUG_TEXT[bug])
                out.append(f"your gradients equal the reference computed with this bug: {text}")
    out += gradfit.sentences(mismatches)        # a sign flip, a constant factor (measured)
    named = any("initial-state gradient" in d for d in out)
    for w in zero:
        if not (named and w.endswith("0")):
            out.append(f"{w} is all zeros")
    return out


# ---------------------------------------------------------------------------------------
# the check
# ---------------------------------------------------------------------------------------

@st.composite
def _cases(draw, c, conv, steps, batch, input_size, hidden, scales, dtype, final_upstream,
           biases):
    scale = draw(st.sampled_from(scales))
    T, B = draw(steps), draw(vst._strategy(batch))
    D, H = draw(vst._strategy(input_size)), draw(vst._strategy(hidden))
    shapes, k = vst.param_shapes(c), len(c.states)
    arrays = casedraw.draw_arrays(draw, [[vst.resolve(s, H, D) for s in shapes.values()], [
        (T, B, D)], [(k, B, H)], [(T, B, H)], [(k, B, H)]], dtype, scale)
    return _build(c, conv, dict(zip(shapes, arrays)), *arrays[len(shapes):], final_upstream,
                  biases, scale)


def _build(c, conv, params, xs, s0, dhs, dfinal, final_upstream, biases, scale):
    lay = conv.layout                       # what the user's packing can represent
    params = {n: numpy.asarray(v, dtype=xs.dtype)
              for n, v in lay.from_user(lay.to_user(params)).items()}
    if not biases:
        params = {n: (numpy.zeros_like(v) if n in _bias_names(c) else v) for n, v in params.items()}
    s0 = tuple(s if n in conv.takes_state else numpy.zeros_like(s) for n, s in zip(c.states, s0))
    dfinal = (tuple(d * 0 if n in conv.zero_upstream else d for n, d in zip(c.states, dfinal))
              if final_upstream and conv.final_upstream else None)
    return {"params": params, "xs": xs, "state0": s0, "dhs": dhs, "dfinal": dfinal,
            "state_names": list(c.states), "scale": scale}


def _bias_names(c):
    return [n for n, shape in vst.param_shapes(c).items() if n.startswith("b") and len(shape) == 1]


def _example(c, conv, seed, dtype, final_upstream, biases):
    """The fixed non-degenerate case: T=4, B=2, D=3, H=3, entries in [-1, 1] from the seed."""
    rng = numpy.random.default_rng(seed)
    T, B, D, H = 4, (2 if getattr(conv.layout, "batch_axis", True) else 1), 3, 3
    u = lambda *shape: rng.uniform(-1, 1, shape).astype(dtype)  # noqa: E731
    params = {n: u(*vst.resolve(s, H, D)) for n, s in vst.param_shapes(c).items()}
    return _build(c, conv, params, u(T, B, D), u(len(c.states), B, H), u(T, B, H),
                  u(len(c.states), B, H), final_upstream, biases, 1)


def check_sequence(cell, forward=None, backward=None, *, layout=None, batch_first=None,
                   dtype=numpy.float64, max_examples=None, seed=None, atol=None, rtol=None,
                   steps=None, batch=st.integers(1, 3), input_size=st.integers(1, 3),
                   hidden=st.integers(1, 3), scales=(1, 10, 100), final_upstream=False,
                   skip=(), upstream=None, biases=True, allow_upcast=False):
    """Check a whole-sequence ``forward`` and/or ``backward`` (BPTT) for ``cell`` (a name, a
    ``derive.Cell`` or a spec path) against the derived kernels; a :class:`SequenceResult`.

    ``layout`` (default :class:`SeedLayout`) fixes the parameter packing and the calling
    convention (:mod:`verify.seqconv`); ``batch_first`` overrides the convention's axis order.
    ``steps`` a strategy of T (default :func:`steps_strategy`: 1..8, shrinking towards 2);
    ``scales`` the ladder each case draws its entry bound from; ``final_upstream=True`` adds
    upstream gradients on the final states (``upstream={"c": 0}`` keeps the one on c at 0,
    for code that takes none); ``skip`` names outputs not compared (``"dx"``,
    ``"dh0"``, ``"dc0"`` or a parameter); ``biases=False`` runs the reference with zero biases
    and does not compare their gradients; ``allow_upcast`` accepts float64 results for float32
    inputs. Tolerances: ``atol`` 1e-9 / 1e-4, ``rtol`` 1e-7 / 1e-4 (float64 / float32),
    array-wise. The same seed gives the same verdict, minimal case and number of cases."""
    c = resolve_cell(cell)
    if forward is None and backward is None:
        raise ValueError("check_sequence needs forward= and/or backward=")
    layout = layout if layout is not None else SeedLayout(c)
    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be a verify.layouts.Layout, got {type(layout).__name__}")
    if layout.cell.name != c.name:
        raise ValueError(f"layout is for cell {layout.cell.name!r}, not {c.name!r}")
    for label, fn in (("forward", forward), ("backward", backward)):
        if fn is not None and not layout.accepts(fn):
            raise TypeError(f"{label} must be a function, got {type(fn).__name__}")
    dt = numpy.dtype(dtype)
    if dt not in (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64)):
        raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}")
    if isinstance(skip, str):
        raise TypeError(f"skip must be a tuple of names, got the string {skip!r}")
    if not scales or any(not isinstance(s, (int, float)) or s <= 0 for s in scales):
        raise ValueError(f"scales must be positive numbers, got {scales!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, numpy.integer))):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    f32 = dt == numpy.dtype(numpy.float32)
    opts = {"atol": atol if atol is not None else (1e-4 if f32 else 1e-9),
            "rtol": rtol if rtol is not None else (1e-4 if f32 else 1e-7),
            "skip": tuple(skip), "allow_upcast": allow_upcast,
            "no_grad": () if biases else tuple(_bias_names(c))}
    conv = convention_for(layout, batch_first)
    if not getattr(layout, "batch_axis", True):      # one-sample code: 1-D vectors, B = 1
        batch = 1
    upstream = dict(upstream or {})
    if any(n not in c.states or v != 0 for n, v in upstream.items()):
        raise ValueError(f"upstream must map states of {c.name!r} ({', '.join(c.states)}) to 0, "
                         f"got {upstream!r}")
    conv.zero_upstream = set(upstream)
    seed = random.getrandbits(32) if seed is None else int(seed)
    n = max_examples if max_examples is not None else DEFAULT_EXAMPLES
    k = derive.kernels(c)
    examples, failures = [0], []
    name = f"{layout.name}, {'batch' if conv.batch_first else 'time'}-major"

    @hypothesis_seed(seed)
    @settings(max_examples=n, deadline=None, database=None, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), print_blob=False,
              phases=[Phase.explicit, Phase.generate, Phase.shrink])
    @given(case=_cases(c, conv, steps if steps is not None else steps_strategy(), batch,
                       input_size, hidden, tuple(scales), dt, final_upstream, biases))
    def run(case):
        examples[0] += 1
        mism, raw = run_case(k, layout, conv, forward, backward, case, opts)
        if mism:
            raise _Failed(mism, case, raw)

    try:
        with local_constants_off():
            run()
    except _Failed as exc:
        failures.append(exc)
    except Flaky:
        return SequenceResult("check_sequence", c.name, name, False, examples[0], seed, n, [
            Mismatch("forward/backward", "determinism", "flaky", "gave different results when "
                     "called again on the same case: the functions must be deterministic")])
    if not failures:
        return SequenceResult("check_sequence", c.name, name, True, examples[0], seed, n)
    f = failures[-1]
    ex = _example(c, conv, seed, dt, final_upstream, biases)
    ex_mism, ex_raw = run_case(k, layout, conv, forward, backward, ex, opts)
    diag = diagnose(k, conv, ex, ex_raw, ex_mism, opts) if ex_mism else []
    if not diag:
        diag = diagnose(k, conv, f.case, f.raw, f.mismatches, opts)
    if ex_mism and any(m.kind == "value" for m in ex_mism):
        diag += gatediag.find(layout, lambda L: not run_case(
            k, L, convention_for(L, conv.batch_first), forward, backward, ex, opts)[0])
    return SequenceResult("check_sequence", c.name, name, False, examples[0], seed, n,
                          f.mismatches, f.case, diag, ex if ex_mism else None, ex_mism)
