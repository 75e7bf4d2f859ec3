"""Scalar properties of the primitives: exact interval checks and the float kernels.

Each property takes one real number (and a dtype) and raises :class:`PropertyFailure` (an
``AssertionError``) with the offending quantities when the claim fails on it; the cell
properties of :mod:`verify.properties` use the same two exception classes.

Exact versus floating-point claims. ``sigma'(x) in (0, 1/4]`` and ``tanh'(x) in (0, 1]`` are
checked *exactly* for any real x given as int, float, ``Fraction`` or SymPy ``Rational`` of
any magnitude: with ``e = exp(-|x|)`` (rigorous interval enclosure from ``mpmath.iv``, whose
exponent range is unbounded, so ``exp(-1e300)`` is a positive enclosure, not an underflow)

    sigma'(x) = e / (1 + e)^2 > 0,     1/4 - sigma'(x) = (1 - e)^2 / (4 (1 + e)^2) >= 0,

(and the same with ``e = exp(-2|x|)`` for ``tanh' = 4e/(1+e)^2``, ``1 - tanh' = (1-e)^2/(1+e)^2``);
the two identities are verified by SymPy once (:func:`scalar_identities`). Every float-kernel
call runs under ``numpy.errstate(all="raise")``, subnormal inputs included. The float kernels of
:mod:`derive.codegen.np_primitives` are checked against the exact value with documented tolerances
(:data:`ULP_TOLERANCE`): near 0 they may return one ulp above the bound
(``sigmoid_prime`` gives 0.25000000000000006 in float64), and beyond their clipping point
(:data:`CLIP`, 700 / 80 for sigma', 350 / 40 for tanh') they return the value at the clip, which
keeps them strictly positive where the true value underflows (|x| > ~745 in float64, ~104 in
float32).
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import mpmath
import numpy
import sympy
from mpmath import iv

from derive.codegen import np_primitives as npp
from derive.core.primitives import Sigmoid, Tanh

__all__ = [
    "PropertyFailure", "NotApplicable", "ULP_TOLERANCE", "CLIP", "scalar_identities",
    "sigmoid_prime_exact", "tanh_prime_exact", "sigmoid_prime_float", "tanh_prime_float",
    "sigmoid_float",
]


class PropertyFailure(AssertionError):
    """A property does not hold on the given case; the message has the numbers."""


class NotApplicable(Exception):
    """The cell lacks the structure a property is about (e.g. no c state)."""


#: Documented float tolerances of derive.codegen.np_primitives, in units in the last place of
#: the dtype: ``bound``: how far above 1/4 (sigma') or 1 (tanh') a value may be;
#: ``value``: distance to the exact value inside the clipping range (measured: <= 2.6 ulp
#: float64, <= 3.8 ulp float32 on 12,000 points).
ULP_TOLERANCE = {"bound": 1, "value": 4}

#: |x| beyond which the float kernels return f'(+-clip): sigma' clips exp's argument at
#: 700 / 80 (float64 / float32), tanh' at half of that (it evaluates exp(-2|x|)).
CLIP = {("sigmoid_prime", "float64"): 700.0, ("sigmoid_prime", "float32"): 80.0,
        ("tanh_prime", "float64"): 350.0, ("tanh_prime", "float32"): 40.0}


# ---------------------------------------------------------------------------------------
# exact scalar claims
# ---------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def scalar_identities() -> bool:
    """SymPy check of the identities the interval proofs rest on, for x > 0, e = exp(-x):
    sigma'(x) = e/(1+e)^2, sigma'(-x) = sigma'(x), 1/4 - e/(1+e)^2 = (1-e)^2/(4(1+e)^2),
    tanh'(x) = 4 E/(1+E)^2 with E = exp(-2x), tanh'(-x) = tanh'(x), 1 - 4E/(1+E)^2 = (1-E)^2/(1+E)^2.
    ``sigma'`` and ``tanh'`` are the primitives' own scalar definitions."""
    x = sympy.Symbol("x", positive=True)
    e = sympy.Symbol("e", positive=True)
    sp, tp = Sigmoid.derivative.scalar, Tanh.derivative.scalar
    checks = [
        sp(x) - sympy.exp(-x) / (1 + sympy.exp(-x)) ** 2,
        sp(-x) - sp(x),
        sympy.Rational(1, 4) - e / (1 + e) ** 2 - (1 - e) ** 2 / (4 * (1 + e) ** 2),
        (tp(x) - 4 * sympy.exp(-2 * x) / (1 + sympy.exp(-2 * x)) ** 2).rewrite(sympy.exp),
        (tp(-x) - tp(x)).rewrite(sympy.exp),
        1 - 4 * e / (1 + e) ** 2 - (1 - e) ** 2 / (1 + e) ** 2,
    ]
    ok = all(sympy.simplify(c) == 0 for c in checks)
    if not ok:
        raise PropertyFailure("a scalar identity behind the interval proofs failed")
    return ok


def _exact(x) -> Fraction:
    """x as an exact rational (floats are exact binary fractions)."""
    if isinstance(x, sympy.Rational):
        return Fraction(int(x.p), int(x.q))
    if isinstance(x, (numpy.floating, numpy.integer)):
        x = x.item()
    if isinstance(x, float) and not numpy.isfinite(x):
        raise ValueError(f"x must be a finite real number, got {x!r}")
    return Fraction(x)


def _interval(q: Fraction):
    return iv.mpf(q.numerator) / iv.mpf(q.denominator)


def _prec_for(q: Fraction) -> int:
    """Working precision: enough bits that exp(-|x|) is distinguishable from 1 when x != 0."""
    if q == 0:
        return 64
    mag = abs(q)
    bits = mag.denominator.bit_length() - mag.numerator.bit_length()
    return 64 + max(0, bits + 2)


def _bump_check(x, scale):
    """Common part of the sigma'/tanh' exact checks with e = exp(-scale |x|):
    returns enclosures (value, bound - value)."""
    scalar_identities()
    q = _exact(x)
    saved = iv.prec
    iv.prec = _prec_for(q * scale)
    try:
        e = iv.exp(-_interval(abs(q) * scale))
        value = (1 if scale == 1 else 4) * e / (1 + e) ** 2
        gap = (1 - e) ** 2 / ((4 if scale == 1 else 1) * (1 + e) ** 2)
    finally:
        iv.prec = saved
    return q, e, value, gap


def sigmoid_prime_exact(x):
    """Checks, exactly, that 0 < sigma'(x) <= 1/4, with sigma'(x) = 1/4 only at x = 0, for the
    real number x (int, float, Fraction or SymPy Rational; any magnitude).

    Rigorous interval arithmetic (mpmath.iv): the enclosure of sigma'(x) = e/(1+e)^2 has a
    positive lower end; the enclosure of 1/4 - sigma'(x) = (1-e)^2/(4(1+e)^2) has a
    non-negative lower end, positive when x != 0 (precision grows with 1/|x|). Returns the
    enclosure of sigma'(x)."""
    q, e, value, gap = _bump_check(x, 1)
    if not value.a > 0:
        raise PropertyFailure(f"sigma'({x!r}) enclosure {value} is not positive")
    if gap.a < 0:
        raise PropertyFailure(f"1/4 - sigma'({x!r}) enclosure {gap} is negative")
    if q != 0 and not gap.a > 0:
        raise PropertyFailure(f"sigma'({x!r}) not shown < 1/4 for x != 0: gap {gap}")
    if q == 0 and not (gap.a == gap.b == 0):
        raise PropertyFailure(f"sigma'(0) is not exactly 1/4: gap {gap}")
    return value


def tanh_prime_exact(x):
    """Checks, exactly, that 0 < tanh'(x) <= 1, with tanh'(x) = 1 only at x = 0, for the real
    number x (any magnitude), by interval arithmetic on tanh'(x) = 4E/(1+E)^2 and
    1 - tanh'(x) = (1-E)^2/(1+E)^2 with E = exp(-2|x|). Returns the enclosure of tanh'(x)."""
    q, e, value, gap = _bump_check(x, 2)
    if not value.a > 0:
        raise PropertyFailure(f"tanh'({x!r}) enclosure {value} is not positive")
    if gap.a < 0:
        raise PropertyFailure(f"1 - tanh'({x!r}) enclosure {gap} is negative")
    if q != 0 and not gap.a > 0:
        raise PropertyFailure(f"tanh'({x!r}) not shown < 1 for x != 0: gap {gap}")
    return value


# ---------------------------------------------------------------------------------------
# float kernels against the exact values
# ---------------------------------------------------------------------------------------

@mpmath.workprec(120)
def _exact_value(name, x):
    X = abs(mpmath.mpf(float(x)))
    if name == "sigmoid_prime":
        e = mpmath.exp(-X)
        return e / (1 + e) ** 2
    if name == "tanh_prime":
        e = mpmath.exp(-2 * X)
        return 4 * e / (1 + e) ** 2
    return 1 / (1 + mpmath.exp(-mpmath.mpf(float(x))))


def _events(xv):
    """numpy.errstate for a float-kernel call: every floating-point event raises."""
    return numpy.errstate(all="raise")


def _float_bump(name, x, dtype, bound):
    dtype = numpy.dtype(dtype)
    xv = numpy.asarray(x, dtype=dtype)
    with _events(xv):
        v = getattr(npp, name)(xv)
    if v.dtype != dtype:
        raise PropertyFailure(f"{name} turned {dtype} into {v.dtype}")
    v = v.item()
    top = bound + ULP_TOLERANCE["bound"] * float(numpy.spacing(dtype.type(bound)))
    if not 0 < v <= top:
        raise PropertyFailure(f"{name}({xv!r}) = {v!r} not in (0, {bound} + "
                              f"{ULP_TOLERANCE['bound']} ulp = {top!r}]")
    clip = CLIP[(name, dtype.name)]
    if abs(float(xv)) <= clip:
        exact = _exact_value(name, xv)
        ulp = float(numpy.spacing(dtype.type(float(exact))))
        err = float(abs(mpmath.mpf(v) - exact)) / ulp
        if err > ULP_TOLERANCE["value"]:
            raise PropertyFailure(f"{name}({xv!r}) = {v!r} is {err:.2f} ulp from the exact "
                                  f"{mpmath.nstr(exact, 20)} (tolerance {ULP_TOLERANCE['value']})")
    else:
        at_clip = getattr(npp, name)(numpy.asarray(clip, dtype=dtype)).item()
        if v != at_clip:
            raise PropertyFailure(f"{name}({xv!r}) = {v!r}; beyond the clip |x| > {clip} it "
                                  f"should be {name}({clip}) = {at_clip!r}")
    return v


def sigmoid_prime_float(x, dtype=numpy.float64):
    """Checks derive.codegen.np_primitives.sigmoid_prime at x (cast to dtype) raises no
    floating-point event, keeps the dtype, lies in (0, 1/4 + 1 ulp], is within 4 ulp of the
    exact sigma'(x) for |x| <= CLIP (700 float64, 80 float32) and equals sigma'(+-CLIP) > 0
    beyond (where the true value underflows from |x| ~ 745 / 104)."""
    return _float_bump("sigmoid_prime", x, dtype, 0.25)


def tanh_prime_float(x, dtype=numpy.float64):
    """Checks derive.codegen.np_primitives.tanh_prime at x: no floating-point event, dtype kept,
    value in (0, 1 + 1 ulp], within 4 ulp of the exact tanh'(x) for |x| <= CLIP (350 / 40)
    and equal to tanh'(+-CLIP) > 0 beyond."""
    return _float_bump("tanh_prime", x, dtype, 1.0)


def sigmoid_float(x, dtype=numpy.float64):
    """Checks derive.codegen.np_primitives.sigmoid at x: no floating-point event, dtype kept,
    0 < sigma(x) <= 1, within 4 ulp of the exact value for |x| <= CLIP, and sigma(x) == 1 only
    when the exact 1 - sigma(x) is at most machine epsilon (1/(1+e) rounds to 1 once
    e = exp(-x) < eps/2: from x ~ 36.7 in float64, ~ 16.6 in float32)."""
    dtype = numpy.dtype(dtype)
    xv = numpy.asarray(x, dtype=dtype)
    with _events(xv):
        v = npp.sigmoid(xv)
    if v.dtype != dtype:
        raise PropertyFailure(f"sigmoid turned {dtype} into {v.dtype}")
    v = v.item()
    if not 0 < v <= 1:
        raise PropertyFailure(f"sigmoid({xv!r}) = {v!r} not in (0, 1]")
    exact = _exact_value("sigmoid", xv)
    if v == 1:
        eps = float(numpy.finfo(dtype).eps)
        if float(1 - exact) > eps:
            raise PropertyFailure(f"sigmoid({xv!r}) rounded to 1 but 1 - sigma = "
                                  f"{mpmath.nstr(1 - exact, 5)} exceeds machine epsilon {eps}")
    if abs(float(xv)) <= CLIP[("sigmoid_prime", dtype.name)]:
        err = float(abs(mpmath.mpf(v) - exact)) / float(numpy.spacing(dtype.type(float(exact))))
        if err > ULP_TOLERANCE["value"]:
            raise PropertyFailure(f"sigmoid({xv!r}) = {v!r} is {err:.2f} ulp from exact")
    return v
