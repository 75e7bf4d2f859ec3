"""The one measured explanation of a wrong array: ``got`` equal to ``c * want`` for one constant
``c`` (``c = -1``: the sign is flipped; a factor 2, a missing 1/N) or to ``want`` clipped at
``max |got|``. Used by :func:`verify.check_loss` (``want`` the central differences),
:func:`verify.check_cell` and :func:`verify.check_sequence` (``want`` the derived reference;
each gate block of a packed gradient is its own array, so one gate's flipped block is named).

``c`` is the least-squares fit ``<got, want> / <want, want>``; the fit holds when
``|got - c want| <= atol + rtol max |got|`` everywhere. With fewer than two non-zero entries
in ``want`` every ``c`` fits, so only ``c = -1`` (exactly minus) is claimed there; clipping
is claimed only when at least two entries are clipped (one differing entry always "fits").
"""
from __future__ import annotations

import numpy

__all__ = ["explain", "sentences", "SIGN_FLIP"]

SIGN_FLIP = "the sign is flipped"


def explain(got, want, atol, rtol) -> str:
    """What ``got != want`` is, measured: ``"all zeros"``, :data:`SIGN_FLIP`, ``"off by a
    constant factor c"``, ``"clipped to [-m, m] ..."``, or ``""`` (no simple explanation)."""
    g = numpy.asarray(got, dtype=numpy.float64)
    w = numpy.asarray(want, dtype=numpy.float64)
    if g.shape != w.shape or not numpy.all(numpy.isfinite(g)):
        return ""
    if not numpy.any(g):
        return "all zeros"
    denom = float(w.ravel() @ w.ravel())
    if denom > 0:
        c = float(g.ravel() @ w.ravel()) / denom
        if numpy.all(numpy.abs(g - c * w) <= atol + rtol * numpy.max(numpy.abs(g))):
            if abs(c + 1) < 1e-3:
                return SIGN_FLIP
            if numpy.count_nonzero(w) >= 2:
                return f"off by a constant factor {c:.6g}"
    m = float(numpy.max(numpy.abs(g)))
    if (numpy.count_nonzero(numpy.abs(w) > m * (1 + 1e-6)) >= 2
            and numpy.all(numpy.abs(g - numpy.clip(w, -m, m)) <= atol + rtol * m)):
        return f"clipped to [-{m:.6g}, {m:.6g}] (the true gradient is larger)"
    return ""


def sentences(mismatches) -> list:
    """Diagnosis lines from the ``fit`` of :class:`verify.conformance.Mismatch` records: one
    line per explanation, naming every array it holds for (``"dWx.T[0:3, 0:3] (W_xz),
    db[0:3] (b_z): the sign is flipped"``; ``"dWxh is all zeros"``)."""
    by = {}
    for m in mismatches:
        fit = getattr(m, "fit", None)
        if fit:
            by.setdefault(fit, []).append(m.what)
    return [f"{w} is all zeros" for w in by.pop("all zeros", ())] + [
        f"{', '.join(whats)}: {fit}" for fit, whats in by.items()]
