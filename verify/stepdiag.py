"""check_cell's failure report beyond the shrunk case: a fixed non-degenerate case and the
measured gate-order / sign-flip diagnoses (:mod:`verify.gatediag`).

The shrunk case is often degenerate (zero parameters, one unit): it shows *that* something is
wrong, rarely *what*. :func:`explain` re-runs the user's functions on one case drawn from the
seed (B = 2, or 1 for one-sample code, D = 3, H = 3, entries uniform in [-1, 1]), returns
its mismatches, and tries every gate permutation and single sign flip on it; arrays that are
a sign flip (or another measured fit, :mod:`verify.gradfit`) of the reference are named.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy

from . import gatediag, gradfit
from .strategies import param_shapes, resolve

__all__ = ["example_case", "explain"]


def example_case(cell, seed, dtype, B=2, D=3, H=3):
    """``(case, dstate)``: the fixed non-degenerate step case of ``seed``."""
    rng = numpy.random.default_rng(seed)
    u = lambda *shape: rng.uniform(-1, 1, shape).astype(dtype)  # noqa: E731
    params = {n: u(*resolve(s, H, D)) for n, s in param_shapes(cell).items()}
    case = SimpleNamespace(params=params, x=u(B, D), state=tuple(u(B, H) for _ in cell.states))
    return case, tuple(u(B, H) for _ in cell.states)


class _GivenUpstream:
    """``layout`` whose backward always receives ``dstate`` (the reference gets another)."""

    def __init__(self, layout, dstate):
        self._base, self._dstate = layout, dstate

    def __getattr__(self, name):
        return getattr(self._base, name)

    def call_backward(self, fn, ctx, user_params, x, state, dstate):
        return self._base.call_backward(fn, ctx, user_params, x, state,
                                        tuple(d.copy() for d in self._dstate))


def explain(run, cell, layout, seed, dtype, backward=True):
    """``(mismatches on the example case, diagnosis sentences)``; ``run(layout, case, dstate)``
    returns the mismatches of one case (empty when it matches). Besides the gate remappings:
    an upstream gradient the code ignores (its gradients equal the reference's for that
    upstream gradient set to 0) and outputs that are all zeros."""
    case, dstate = example_case(cell, seed, dtype, B=2 if getattr(layout, "batch_axis", True) else 1)
    mism = run(layout, case, dstate)
    if not any(m.kind == "value" for m in mism):
        return mism, []
    diag = gatediag.find(layout, lambda L: not run(L, case, dstate))
    if backward and any(m.phase == "backward" for m in mism):
        for j, s in enumerate(cell.states):
            zeroed = tuple(d * 0 if i == j else d for i, d in enumerate(dstate))
            if not run(_GivenUpstream(layout, dstate), case, zeroed):
                diag.append(f"your backward ignores the upstream gradient d{s}_next (its results "
                            f"equal the reference's for d{s}_next = 0)")
    diag += [f"{m.phase} {m.what} is all zeros" for m in mism if "(all zero)" in m.message]
    diag += gradfit.sentences(mism)             # a sign flip, a constant factor (measured)
    return mism, diag
