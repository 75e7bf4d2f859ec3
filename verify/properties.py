"""Property suites: each property is a function with a docstring saying exactly what it checks.

A property takes one concrete case (a number, or a :class:`verify.strategies.StepCase` /
:class:`~verify.strategies.SequenceCase`) and raises :class:`PropertyFailure` (an
``AssertionError``) with the offending quantities when the claim fails on it, or
:class:`NotApplicable` when the cell does not have the structure the claim is about. Run them
under Hypothesis (``tests/test_verify_properties.py``, ``python -m verify``) or by hand.

Exact versus floating-point claims. ``sigma'(x) in (0, 1/4]`` and ``tanh'(x) in (0, 1]`` are
checked *exactly* for any real x given as int, float, ``Fraction`` or SymPy ``Rational`` of
any magnitude: with ``e = exp(-|x|)`` (rigorous interval enclosure from ``mpmath.iv``, whose
exponent range is unbounded, so ``exp(-1e300)`` is a positive enclosure, not an underflow)

    sigma'(x) = e / (1 + e)^2 > 0,     1/4 - sigma'(x) = (1 - e)^2 / (4 (1 + e)^2) >= 0,

(and the same with ``e = exp(-2|x|)`` for ``tanh' = 4e/(1+e)^2``, ``1 - tanh' = (1-e)^2/(1+e)^2``);
the two identities are verified by SymPy once (:func:`scalar_identities`). Every float-kernel
call runs under ``numpy.errstate(all="raise")``, subnormal inputs included. The float kernels of
:mod:`derive.numpy_primitives` are checked against the exact value with documented tolerances
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
from sympy import HadamardProduct, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix
from sympy.matrices.expressions.diagonal import DiagMatrix

import derive
from derive import numpy_primitives as npp
from derive.primitives import ALL_PRIMITIVES, Elementwise, Sigmoid, Tanh
from derive.symbols import Param, Var

from .gradcheck import gradcheck_kernel

__all__ = [
    "PropertyFailure", "NotApplicable", "ULP_TOLERANCE", "CLIP", "scalar_identities",
    "sigmoid_prime_exact", "tanh_prime_exact", "sigmoid_prime_float", "tanh_prime_float",
    "sigmoid_float", "evaluate", "cell_values", "reference_kernels", "forward_matches_equations", "gates_in_unit_interval",
    "recurrence_structure", "step_jacobian_norm_bound", "jacobian_chain_bound",
    "direct_path_gate", "lstm_direct_path", "step_jacobian_matches_fd", "backward_matches_fd",
    "PROPERTIES",
]


class PropertyFailure(AssertionError):
    """A property does not hold on the given case; the message has the numbers."""


class NotApplicable(Exception):
    """The cell lacks the structure a property is about (e.g. no c state)."""


#: Documented float tolerances of derive.numpy_primitives, in units in the last place of
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
    """Checks derive.numpy_primitives.sigmoid_prime at x (cast to dtype) raises no
    floating-point event, keeps the dtype, lies in (0, 1/4 + 1 ulp], is within 4 ulp of the
    exact sigma'(x) for |x| <= CLIP (700 float64, 80 float32) and equals sigma'(+-CLIP) > 0
    beyond (where the true value underflows from |x| ~ 745 / 104)."""
    return _float_bump("sigmoid_prime", x, dtype, 0.25)


def tanh_prime_float(x, dtype=numpy.float64):
    """Checks derive.numpy_primitives.tanh_prime at x: no floating-point event, dtype kept,
    value in (0, 1 + 1 ulp], within 4 ulp of the exact tanh'(x) for |x| <= CLIP (350 / 40)
    and equal to tanh'(+-CLIP) > 0 beyond."""
    return _float_bump("tanh_prime", x, dtype, 1.0)


def sigmoid_float(x, dtype=numpy.float64):
    """Checks derive.numpy_primitives.sigmoid at x: no floating-point event, dtype kept,
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


# ---------------------------------------------------------------------------------------
# evaluating a cell's defining equations (an independent forward oracle)
# ---------------------------------------------------------------------------------------

def _cell(c):
    return derive.cell(c) if isinstance(c, str) else c


def _eval(expr, env):
    if isinstance(expr, MatrixSymbol):
        return env[expr.name]
    if isinstance(expr, OneMatrix):
        return 1.0
    if isinstance(expr, ZeroMatrix):
        return 0.0
    if isinstance(expr, MatAdd):
        out = _eval(expr.args[0], env)
        for a in expr.args[1:]:
            out = out + _eval(a, env)
        return out
    if isinstance(expr, HadamardProduct):
        out = _eval(expr.args[0], env)
        for a in expr.args[1:]:
            out = out * _eval(a, env)
        return out
    if isinstance(expr, MatMul):
        coeff, mats = expr.as_coeff_matrices()
        v = _eval(mats[-1], env)
        for m in reversed(mats[:-1]):
            if isinstance(m, Param):
                v = v @ env[m.name].T      # row-vector batches: (W v)^T = v^T W^T
            elif isinstance(m, Transpose) and isinstance(m.arg, Param):
                v = v @ env[m.arg.name]    # (W^T v)^T = v^T W
            else:
                raise NotImplementedError(f"matrix factor {m} in {expr}")
        return v if coeff == 1 else float(coeff) * v
    if isinstance(expr, Elementwise):
        return getattr(npp, expr.numpy)(_eval(expr.arg, env))
    raise NotImplementedError(f"cannot evaluate {type(expr).__name__}: {expr}")


def evaluate(expr, env):
    """Numerical value of a cell expression (equation right side, derived Jacobian-free
    vector expression, or backward assignment) on row-vector batches: ``env`` maps symbol
    names to arrays (vectors (B, n) or (n,), matrices as stored in ``params``)."""
    return _eval(expr, env)


def cell_values(cell, params, x, state) -> dict:
    """Every equation of the cell evaluated on row-vector batches, straight from its
    definition (the spec's expressions, :mod:`derive.numpy_primitives` for the
    nonlinearities; nothing derived): ``{name: (B, H) array}``."""
    c = _cell(cell)
    env = dict(params)
    env["x"] = x
    for s, v in zip(c.states, state):
        env[f"{s}_prev"] = v
    for eq in c.equations:
        val = _eval(eq.rhs, env)
        env[eq.lhs.name] = numpy.broadcast_to(val, state[0].shape) if numpy.ndim(val) < 2 else val
    return {eq.lhs.name: env[eq.lhs.name] for eq in c.equations}


def reference_kernels(name):
    """The derived kernels of a cell, ``derive.kernels(name)``."""
    return derive.kernels(name)


_kernel = reference_kernels


#: Finite differences are only meaningful away from a kink of relu: cases with a relu argument
#: within this distance of 0 are skipped (NotApplicable) by the finite-difference properties.
KINK_MARGIN = 1e-4


def _relu_args(c, params, x, state):
    from derive.primitives import Relu
    env = dict(params, x=x, **{f"{s}_prev": v for s, v in zip(c.states, state)})
    env.update(cell_values(c, params, x, state))
    for eq in c.equations:
        for node in eq.rhs.atoms(Relu) if hasattr(eq.rhs, "atoms") else ():
            yield _eval(node.arg, env)


def _skip_near_kinks(cell, params, xs, state0, step=None):
    """NotApplicable when some relu argument along the steps is within KINK_MARGIN of 0."""
    c = _cell(cell)
    from derive.primitives import Relu
    if not any(eq.rhs.has(Relu) for eq in c.equations):
        return
    s = tuple(state0)
    for t in range(len(xs)):
        for a in _relu_args(c, params, xs[t], s):
            if numpy.any(numpy.abs(a) < KINK_MARGIN):
                raise NotApplicable(f"{c.name}: a relu argument is within {KINK_MARGIN} of its kink")
        vals = cell_values(c, params, xs[t], s)
        s = tuple(numpy.asarray(vals[n]) for n in c.states)


def _tol(dtype):
    return (1e-10, 1e-9) if numpy.dtype(dtype) == numpy.float64 else (1e-4, 1e-4)


def _close(name, got, want, atol, rtol):
    got, want = numpy.asarray(got, dtype=numpy.float64), numpy.asarray(want, dtype=numpy.float64)
    if got.shape != want.shape:
        raise PropertyFailure(f"{name}: shape {got.shape}, expected {want.shape}")
    err = numpy.abs(got - want)
    bad = err > atol + rtol * numpy.abs(want)
    if numpy.any(bad) or not numpy.all(numpy.isfinite(got)):
        i = numpy.unravel_index(int(numpy.nanargmax(numpy.where(numpy.isnan(err), numpy.inf, err))),
                                err.shape)
        raise PropertyFailure(f"{name}: max abs error {float(err[i]):.3e} at {tuple(map(int, i))} "
                              f"(got {got[i]!r}, expected {want[i]!r}; atol {atol}, rtol {rtol})")
    return float(err.max(initial=0.0))


# ---------------------------------------------------------------------------------------
# cell properties
# ---------------------------------------------------------------------------------------

def forward_matches_equations(case):
    """Checks kernel.step(params, x, state) equals the cell's defining equations evaluated
    directly (:func:`cell_values`) for every state, to 1e-10 absolute + 1e-9 relative in
    float64 (1e-4 in float32)."""
    k = _kernel(case.cell)
    got = k.step(case.params, case.x, case.state)
    vals = cell_values(case.cell, case.params, case.x, case.state)
    atol, rtol = _tol(case.x.dtype)
    return max(_close(f"{case.cell} step state {s}", g, vals[s], atol, rtol)
               for s, g in zip(k.STATE, got))


def _saturation(dtype):
    """|a| from which the float sigmoid 1/(1 + exp(-a)) rounds to exactly 1: where
    exp(-a) < eps/2, i.e. a > log(2/eps) (36.74 float64, 16.64 float32)."""
    eps = float(numpy.finfo(numpy.dtype(dtype)).eps)
    return float(mpmath.log(2 / eps)) * (1 - 1e-6)


def gates_in_unit_interval(case):
    """Checks that every gate (every equation ``g = sigmoid(...)`` of the cell) lies strictly in
    (0, 1) for every batch row and unit. Float caveat, stated: where |pre-activation| exceeds
    the saturation point (~36.7 float64, ~16.6 float32) the float sigmoid correctly rounds
    to 1, so there only 0 < g <= 1 is required. Returns the number of gate entries checked."""
    c = _cell(case.cell)
    vals = cell_values(c, case.params, case.x, case.state)
    env = dict(case.params, x=case.x, **{f"{s}_prev": v for s, v in zip(c.states, case.state)})
    env.update(vals)
    sat = _saturation(case.x.dtype)
    n = 0
    for eq in c.equations:
        if not isinstance(eq.rhs, Sigmoid):
            continue
        g = numpy.asarray(vals[eq.lhs.name])
        a = numpy.broadcast_to(_eval(eq.rhs.arg, env), g.shape)
        strict = numpy.abs(a) < sat
        ok = (g > 0) & numpy.where(strict, g < 1, g <= 1)
        if not numpy.all(ok):
            i = numpy.argwhere(~ok)[0]
            raise PropertyFailure(f"gate {eq.lhs.name} = {g[tuple(i)]!r} at {tuple(i)} "
                                  f"(pre-activation {a[tuple(i)]!r}) is not in (0, 1)")
        n += g.size
    if n == 0:
        raise NotApplicable(f"cell {c.name!r} has no sigmoid gate")
    return n


def recurrence_structure(cell):
    """(primitive, recurrent matrix name) when the derived dh_t/dh_{t-1} of a one-state cell
    is diag(phi'(a)) W, else None. Read from the derivation, not from the cell's name."""
    c = _cell(cell)
    if tuple(c.states) != ("h",):
        return None
    J = c.jacobian("h", "h")
    if not isinstance(J, MatMul):
        return None
    coeff, mats = J.as_coeff_matrices()
    if coeff != 1 or len(mats) != 2 or not isinstance(mats[0], DiagMatrix) \
            or not isinstance(mats[1], Param):
        return None
    d = mats[0].args[0]
    prims = [p for p in ALL_PRIMITIVES if p.derivative is type(d)]
    if not isinstance(d, Elementwise) or not d.is_derivative or len(prims) != 1:
        return None
    return prims[0], mats[1].name


def _spectral(m):
    return float(numpy.linalg.norm(numpy.asarray(m, dtype=numpy.float64), 2))


def step_jacobian_norm_bound(case):
    """Checks ||dh_t/dh_{t-1}||_2 <= gamma ||W_hh||_2 for every batch row, where the step
    Jacobian comes from kernel.step_jacobian, W_hh is the matrix in the derived form
    diag(phi'(a)) W_hh and gamma = sup phi' from the primitive (derive.primitives, e.g.
    Sigmoid.gamma() = 1/4), with a relative slack of 1e-12 for rounding. Returns the largest
    ratio ||J||_2 / (gamma ||W_hh||_2)."""
    st = recurrence_structure(case.cell)
    if st is None:
        raise NotApplicable(f"{case.cell}: dh_t/dh_{{t-1}} is not of the form diag(phi'(a)) W")
    prim, W = st
    gamma = float(prim.gamma())
    bound = gamma * _spectral(case.params[W])
    J = _kernel(case.cell).step_jacobian(case.params, case.x, case.state)
    worst = 0.0
    for b in range(J.shape[0]):
        n = _spectral(J[b])
        if n > bound * (1 + 1e-12) + 1e-300:
            raise PropertyFailure(f"{case.cell}: ||dh_t/dh_t-1||_2 = {n!r} > gamma ||{W}||_2 = "
                                  f"{gamma} * {_spectral(case.params[W])!r} = {bound!r} (batch row {b})")
        worst = max(worst, n / bound if bound else 0.0)
    return worst


def _trajectory(k, case):
    """States s_0..s_T (tuples) from kernel.step, and step Jacobians J_1..J_T (B, S, S)."""
    s = tuple(case.state0)
    states, jacs = [s], []
    for t in range(case.xs.shape[0]):
        jacs.append(k.step_jacobian(case.params, case.xs[t], s))
        s = tuple(k.step(case.params, case.xs[t], s))
        states.append(s)
    return states, jacs


def jacobian_chain_bound(case):
    """Checks ||dh_t/dh_k||_2 <= (gamma ||W_hh||_2)^(t-k) for every 0 <= k < t <= T on the
    sequence, where dh_t/dh_k = J_t J_{t-1} ... J_{k+1} is the ordered product of kernel step
    Jacobians along the trajectory and gamma, W_hh come from the derived form (as in
    :func:`step_jacobian_norm_bound`); relative slack 1e-12 per factor. Returns the number of
    (t, k, batch row) triples checked."""
    st = recurrence_structure(case.cell)
    if st is None:
        raise NotApplicable(f"{case.cell}: dh_t/dh_{{t-1}} is not of the form diag(phi'(a)) W")
    prim, W = st
    eta = float(prim.gamma()) * _spectral(case.params[W])
    k = _kernel(case.cell)
    _, jacs = _trajectory(k, case)
    T, B = len(jacs), case.xs.shape[1]
    n = 0
    for b in range(B):
        for kk in range(T):
            P = numpy.eye(jacs[0].shape[1])
            for t in range(kk + 1, T + 1):
                P = jacs[t - 1][b].astype(numpy.float64) @ P
                bound = eta ** (t - kk)
                norm = _spectral(P)
                if norm > bound * (1 + 1e-12) ** (t - kk) + 1e-300:
                    raise PropertyFailure(f"{case.cell}: ||dh_{t}/dh_{kk}||_2 = {norm!r} > "
                                          f"(gamma ||{W}||_2)^{t - kk} = {bound!r} (batch row {b})")
                n += 1
    return n


def direct_path_gate(cell):
    """The gate f when the derived one-step block dc_t/dc_{t-1} (h_{t-1} held fixed) is
    diag(f) for a single equation f, else None (e.g. peepholes add terms)."""
    c = _cell(cell)
    if "c" not in c.states:
        return None
    block = c.jacobian("c", "c")
    if isinstance(block, DiagMatrix) and isinstance(block.args[0], Var):
        return block.args[0].name
    return None


def lstm_direct_path(case):
    """Checks the LSTM direct path (no peepholes, gates held fixed): for every step j the
    c-c block of kernel.step_jacobian equals diag(f_j), f_j the forget gate evaluated from the
    cell's equations, and for every k < t the ordered product of these blocks
    dc_t/dc_k|direct = diag(prod_{j=k+1}^t f_j); tolerance 1e-12 absolute in float64.
    The gate is read from the derived block (:func:`direct_path_gate`). Returns the largest
    difference between this direct path and the full dc_t/dc_k (taken through the 2x2 block
    products), i.e. how much the other paths contribute."""
    c = _cell(case.cell)
    gate = direct_path_gate(c)
    if gate is None:
        raise NotApplicable(f"{c.name}: dc_t/dc_(t-1) is not diag(gate) (no c state, or peepholes)")
    k = _kernel(case.cell)
    states, jacs = _trajectory(k, case)
    H = case.state0[0].shape[1]
    ci = list(k.STATE).index("c")
    sl = slice(ci * H, (ci + 1) * H)
    atol = 1e-12 if case.xs.dtype == numpy.float64 else 1e-6
    gates = [cell_values(c, case.params, case.xs[t], states[t])[gate] for t in range(len(jacs))]
    for j, (J, f) in enumerate(zip(jacs, gates), start=1):
        for b in range(J.shape[0]):
            _close(f"{c.name}: dc_{j}/dc_{j - 1} vs diag({gate}_{j}) (row {b})", J[b][sl, sl],
                   numpy.diag(f[b]), atol, 0.0)
    T = len(jacs)
    other = 0.0
    for b in range(case.xs.shape[1]):
        for kk in range(T):
            direct = numpy.eye(H)
            full = numpy.eye(jacs[0].shape[1])
            prod = numpy.ones(H)
            for t in range(kk + 1, T + 1):
                direct = jacs[t - 1][b][sl, sl] @ direct
                full = jacs[t - 1][b] @ full
                prod = prod * gates[t - 1][b]
                _close(f"{c.name}: direct path dc_{t}/dc_{kk} vs diag(prod {gate}) (row {b})",
                       direct, numpy.diag(prod), atol, 1e-12)
                other = max(other, float(numpy.max(numpy.abs(full[sl, sl] - direct))))
    return other


def _fd_step_jacobian(k, params, x, state, eps=1e-6):
    s = numpy.concatenate([numpy.asarray(v, dtype=numpy.float64) for v in state], axis=1)
    B, S = s.shape
    H = S // len(state)
    J = numpy.zeros((B, S, S))

    def run(flat):
        parts = tuple(flat[:, i * H:(i + 1) * H] for i in range(len(state)))
        return numpy.concatenate(k.step(params, x, parts), axis=1)
    for j in range(S):
        up, down = s.copy(), s.copy()
        up[:, j] += eps
        down[:, j] -= eps
        J[:, :, j] = (run(up) - run(down)) / (2 * eps)
    return J


def step_jacobian_matches_fd(case):
    """Checks kernel.step_jacobian (the derived blocks, numerator layout, STATE order) equals
    central finite differences of kernel.step with respect to the concatenated previous
    state (eps 1e-6, float64), to 1e-6 absolute + 1e-6 relative. Cases with a relu argument
    within KINK_MARGIN of 0 are NotApplicable (no derivative there). Returns the max error."""
    k = _kernel(case.cell)
    p = {n: numpy.asarray(v, dtype=numpy.float64) for n, v in case.params.items()}
    x = numpy.asarray(case.x, dtype=numpy.float64)
    s = tuple(numpy.asarray(v, dtype=numpy.float64) for v in case.state)
    _skip_near_kinks(case.cell, p, x[None], s)
    J = k.step_jacobian(p, x, s)
    return _close(f"{case.cell} step_jacobian vs finite differences", J,
                  _fd_step_jacobian(k, p, x, s), 1e-6, 1e-6)


def backward_matches_fd(case):
    """Checks kernel.backward (full BPTT) against central finite differences of
    kernel.forward (verify.gradcheck.gradcheck_kernel, eps 1e-6, float64) for every parameter
    and initial state: max abs error <= 1e-6 or max relative error <= 1e-6 per array.
    Cases with a relu argument within KINK_MARGIN of 0 are NotApplicable. Returns the report."""
    k = _kernel(case.cell)
    p = {n: numpy.asarray(v, dtype=numpy.float64) for n, v in case.params.items()}
    _skip_near_kinks(case.cell, p, case.xs, case.state0)
    rep = gradcheck_kernel(k, p, numpy.asarray(case.xs, dtype=numpy.float64),
                           tuple(numpy.asarray(v, dtype=numpy.float64) for v in case.state0))
    bad = rep.failing(atol=1e-6, rtol=1e-6)
    if bad:
        raise PropertyFailure(f"{case.cell} backward vs finite differences:\n{rep}")
    return rep


#: Property name -> (function, kind of case: "real", "step" or "sequence").
PROPERTIES = {
    "sigmoid_prime_exact": (sigmoid_prime_exact, "real"),
    "tanh_prime_exact": (tanh_prime_exact, "real"),
    "sigmoid_prime_float": (sigmoid_prime_float, "float"),
    "tanh_prime_float": (tanh_prime_float, "float"),
    "sigmoid_float": (sigmoid_float, "float"),
    "forward_matches_equations": (forward_matches_equations, "step"),
    "gates_in_unit_interval": (gates_in_unit_interval, "step"),
    "step_jacobian_norm_bound": (step_jacobian_norm_bound, "step"),
    "jacobian_chain_bound": (jacobian_chain_bound, "sequence"),
    "lstm_direct_path": (lstm_direct_path, "sequence"),
    "step_jacobian_matches_fd": (step_jacobian_matches_fd, "step"),
    "backward_matches_fd": (backward_matches_fd, "sequence"),
}
