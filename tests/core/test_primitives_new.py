"""The primitives of issue 16 (exp, log, softplus, logsigmoid, silu, abs, sqrt, cos, sin)
against independent oracles:

* each registered derivative is SymPy's ``diff`` of the definition (verify.proofs.derivative_rule);
* gamma = sup |f'| over the domain, checked against mpmath on a dense grid (and, for silu,
  against the maximiser found by mpmath's own root finder);
* the conventions: relu'(0) = abs'(0) = 0, sqrt'(0) infinite, log and sqrt on (0, oo);
* the stable NumPy forms agree with mpmath at 50 digits to a few ulp (Hypothesis), raise no
  floating-point event for finite input of any magnitude, and exp overflows exactly where
  its docstring says;
* the spec language accepts the names and reports each misuse at its position.
"""
import math

import mpmath
import numpy
import pytest
import sympy
from hypothesis import given, strategies as st

from derive.codegen import np_primitives as P
from derive.core.primitives import (ALL_PRIMITIVES, FUNCTIONS, Abs, Cos, Exp, Log, LogSigmoid,
                                    Relu, Silu, Sin, Softplus, Sqrt, gamma_identity)
from derive.spec.tables import SpecError, parse_spec
from test_primitives import _awkward_inputs
from verify import proofs

NEW = [Exp, Log, Softplus, LogSigmoid, Silu, Abs, Sqrt, Cos, Sin]
NEW_ALL = [c for f in NEW for c in (f, f.derivative)]
x = sympy.Symbol("x", real=True)
mpmath.mp.dps = 50


def test_every_new_function_is_registered_once_with_its_derivative():
    for f in NEW:
        assert FUNCTIONS[f.name] is f and f.derivative.primitive is f
        assert f.derivative.is_derivative and not f.is_derivative
        assert f.latex and f.text and f.derivative.latex and f.derivative.text
        assert callable(getattr(P, f.numpy)) and callable(getattr(P, f.derivative.numpy))
    # sigmoid, tanh, relu and the new ones with their derivatives, then 1/x, (1/x)' and the step
    assert len(ALL_PRIMITIVES) == len(set(ALL_PRIMITIVES)) == 6 + 2 * len(NEW) + 3
    assert len({p.name for p in ALL_PRIMITIVES}) == len({p.numpy for p in ALL_PRIMITIVES}) \
        == len(ALL_PRIMITIVES)


@pytest.mark.parametrize("cls", NEW, ids=lambda c: c.__name__)
def test_derivative_is_sympy_diff(cls):
    proof = proofs.derivative_rule(cls)
    assert proof, str(proof)


def test_conventions_at_kinks_and_domain_edges():
    """relu'(0) = abs'(0) = 0 (PyTorch's subgradients); sqrt' -> oo at 0+; log, sqrt (and
    their derivatives) are defined on (0, oo), the others on the reals."""
    assert Relu.derivative.scalar(sympy.S.Zero) == 0
    assert Abs.derivative.scalar(sympy.S.Zero) == 0
    assert Abs.derivative.scalar(sympy.Rational(-1, 10 ** 9)) == -1
    assert sympy.limit(Sqrt.derivative.scalar(x), x, 0, "+") == sympy.oo
    for f in (Log, Sqrt):
        assert f.domain == f.derivative.domain == sympy.Interval.open(0, sympy.oo)
    for f in set(NEW) - {Log, Sqrt}:
        assert f.domain == sympy.S.Reals
    import derive.core.primitives as prim
    assert "abs'(0) = sgn(0) = 0" in prim.__doc__ and "relu'(0) = 0" in prim.__doc__
    assert "relu'(0) = 0" in Relu.derivative.__doc__ and "x = 0" in Abs.derivative.__doc__


EXPECTED_GAMMA = {Exp: sympy.oo, Log: sympy.oo, Sqrt: sympy.oo, Softplus: 1, LogSigmoid: 1,
                  Abs: 1, Cos: 1, Sin: 1}


def _mp_derivative(f):
    """f' as an mpmath function, from SymPy's diff of the definition (not the registered node)."""
    return sympy.lambdify(x, sympy.diff(f.scalar(x), x), "mpmath")


@pytest.mark.parametrize("cls", NEW, ids=lambda c: c.__name__)
def test_gamma_is_the_supremum_of_the_derivative(cls):
    """|f'| <= gamma on a grid of 4001 points of the domain (mpmath, 50 digits), and the grid
    comes within 1e-3 of gamma (or exceeds 1e6 when gamma = oo)."""
    g = cls.gamma()
    d = _mp_derivative(cls)
    lo = mpmath.mpf("1e-15") if cls.domain != sympy.S.Reals else mpmath.mpf(-40)
    pts = [lo + (mpmath.mpf(40) - lo) * k / 4000 for k in range(4001)]
    vals = [abs(d(p)) if cls is not Abs else (1 if p != 0 else 0) for p in pts]
    if cls in EXPECTED_GAMMA:
        assert g == EXPECTED_GAMMA[cls]
    if g == sympy.oo:
        assert max(vals) > 1e6
    else:
        assert max(vals) <= mpmath.mpf(str(g)) * (1 + mpmath.mpf("1e-25"))
        assert max(vals) > mpmath.mpf(str(g)) - mpmath.mpf("1e-3")


def test_silu_gamma_is_silu_prime_at_its_maximiser():
    """silu'' = 0 at x tanh(x / 2) = 2 (mpmath findroot, independently of SymPy's nsolve):
    gamma(silu) = silu'(x*) = 1.0998393..., to 25 digits."""
    xstar = mpmath.findroot(lambda t: t * mpmath.tanh(t / 2) - 2, 2.4)
    s = 1 / (1 + mpmath.exp(-xstar))
    want = s * (1 + xstar * (1 - s))
    assert abs(mpmath.mpf(str(Silu.gamma())) - want) < mpmath.mpf("1e-25")
    assert abs(want - mpmath.mpf("1.0998393")) < 1e-7


def test_new_primitives_leave_the_bound_section_alone():
    """None of them has a quadratic gamma identity (the article's bound rows are built only
    for sigmoid and tanh), and the bounds section lists only each cell's own activations."""
    from derive.document.bounds import primitives_of
    import derive
    for f in NEW:
        assert gamma_identity(f) is None
    for name in derive.cells():
        c = derive.cell(name)
        used = {type(a) for eq in c.equations for a in eq.rhs.atoms(sympy.Function)} | {
            type(a) for eq in c.equations for a in _elementwise(eq.rhs)}
        assert set(primitives_of(c)) <= used, name


def _elementwise(e):
    from derive.core.primitives import Elementwise
    if isinstance(e, Elementwise):
        yield e
    for a in getattr(e, "args", ()):
        yield from _elementwise(a)


# -- NumPy ---------------------------------------------------------------------------------

EPS = float(numpy.finfo(numpy.float64).eps)


def _mp(cls):
    """The value of the primitive from its SymPy definition, evaluated by mpmath at 400
    digits (log(1 + e^-700) needs more than 304 of them before the 1 is absorbed)."""
    f = sympy.lambdify(x, cls.scalar(x), "mpmath")

    def at(v):
        with mpmath.workdps(400):
            return +f(mpmath.mpf(v))
    return at


def _ulps(got, want):
    want = mpmath.mpf(want)
    return abs(mpmath.mpf(float(got)) - want) / (abs(want) * EPS) if want != 0 else \
        (0 if got == 0 else mpmath.inf)


FINITE = st.floats(-700, 700, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("cls", [c for c in NEW_ALL if c.domain == sympy.S.Reals
                                 and c.numpy != "silu_prime"], ids=lambda c: c.__name__)
@given(v=FINITE)
def test_numpy_form_within_4_ulp_of_mpmath(cls, v):
    """Property: on the reals (|x| <= 700; for cos and sin |x| <= 700 too), the float64
    NumPy form is within 4 ulp (relative) of the value at 50 digits, except where the value
    is below 1e-290 (softplus and sigmoid forms clip exp at -700: absolute error < 1e-290)."""
    want = _mp(cls)(mpmath.mpf(v))
    got = getattr(P, cls.numpy)(numpy.array([v]))[0]
    if abs(want) < 1e-290:
        assert abs(got - float(want)) < 1e-290
    else:
        assert _ulps(got, want) <= 4, (cls.__name__, v, got, want)


@pytest.mark.parametrize("cls", [Log, Sqrt, Log.derivative, Sqrt.derivative],
                         ids=lambda c: c.__name__)
@given(v=st.floats(5e-324, 1e308, allow_nan=False, allow_infinity=False))
def test_log_and_sqrt_within_4_ulp_on_their_domain(cls, v):
    """Property: for every positive float64 (subnormals included), log, sqrt and their
    derivatives are within 4 ulp of the 50-digit value (inf where it exceeds the largest
    float: log'(x) for x < 1/max)."""
    got = getattr(P, cls.numpy)(numpy.array([v]))[0]
    want = _mp(cls)(mpmath.mpf(v))
    if want > numpy.finfo(numpy.float64).max:          # log'(x) = 1/x for x < 1/max
        assert got == numpy.inf
    else:
        assert _ulps(got, want) <= 4


@given(v=st.floats(-700, 700, allow_nan=False))
def test_silu_prime_accuracy(v):
    """Property: silu' is within 4 ulp relative away from its zero x0 = -1.2785 (|x - x0| >
    0.05), and everywhere within 4 ulp of sigma(x) (1 + |x|) absolute (the size of its terms)."""
    want = _mp(Silu.derivative)(mpmath.mpf(v))
    got = P.silu_prime(numpy.array([v]))[0]
    s = 1 / (1 + mpmath.exp(-mpmath.mpf(v)))
    assert abs(mpmath.mpf(float(got)) - want) <= 4 * EPS * s * (1 + abs(v))
    if abs(v + 1.2785) > 0.05 and abs(want) > 1e-290:
        assert _ulps(got, want) <= 4


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("cls", NEW_ALL, ids=lambda c: c.__name__)
def test_no_floating_point_event_for_finite_input_of_any_magnitude(cls, dtype):
    """Under errstate(all='raise'), inputs up to the largest finite float: finite results
    except exp (inf above 709.78 / 88.72, by nature), and log, sqrt and their derivatives
    outside (0, oo) (-inf / inf at 0, nan below); the awkward inputs of test_primitives too."""
    big = numpy.finfo(dtype).max
    vals = numpy.array([big, -big, big / 3, -big / 3, 1e30, -1e30, 0.0], dtype)
    with numpy.errstate(all="raise"):
        y = getattr(P, cls.numpy)(vals)
        getattr(P, cls.numpy)(_awkward_inputs(dtype))
    assert y.dtype == dtype
    if cls in (Exp, Exp.derivative):
        assert numpy.isinf(y[vals > 709]).all() and numpy.isfinite(y[vals <= 0]).all()
    elif cls.domain != sympy.S.Reals:
        assert numpy.isfinite(y[vals > 0]).all()
        assert numpy.isnan(y[vals < 0]).all() or cls.numpy == "log_prime"   # 1/x is real
        assert y[vals == 0][0] == {"log": -numpy.inf, "sqrt": 0}.get(cls.numpy, numpy.inf)
    else:
        assert numpy.isfinite(y).all()


@pytest.mark.parametrize("dtype,edge", [(numpy.float64, 709.782712893384),
                                        (numpy.float32, 88.72283)])
def test_exp_overflows_where_its_contract_says(dtype, edge):
    """exp(x) is finite up to log(max) (709.78 in float64, 88.72 in float32) and inf just
    above, without a warning; it underflows to 0 (no warning) for x < -745 / -104."""
    with numpy.errstate(all="raise"):
        below = P.exp(numpy.array([edge], dtype))
        above = P.exp(numpy.array([numpy.nextafter(dtype(edge), dtype(1000))], dtype))
        low = P.exp(numpy.array([-1e4], dtype))
    assert numpy.isfinite(below).all() and numpy.isinf(above).all() and low[0] == 0
    assert "709.78" in P.exp.__doc__ and "88.72" in P.exp.__doc__
    assert math.log(numpy.finfo(dtype).max) == pytest.approx(edge, abs=1e-4)


def test_softplus_and_logsigmoid_stable_at_huge_magnitudes():
    """softplus(1e300) = 1e300, softplus(-1e300) ~ 0, logsigmoid(-1e300) = -1e300,
    logsigmoid(1e300) ~ 0, silu(1e300) = 1e300, with no floating-point event."""
    v = numpy.array([1e300, -1e300])
    with numpy.errstate(all="raise"):
        sp, ls, si = P.softplus(v), P.logsigmoid(v), P.silu(v)
    assert sp[0] == 1e300 and 0 <= sp[1] < 1e-300
    assert ls[1] == -1e300 and -1e-300 < ls[0] <= 0
    assert si[0] == 1e300 and abs(si[1]) < 1e-3


# -- the spec language ------------------------------------------------------------------------

SPEC = """[cell]
name = "t"
states = ["h"]
[params]
W = ["H", "H"]
{extra}[equations]
h = "{expr}"
"""


@pytest.mark.parametrize("name", [f.name for f in NEW])
def test_spec_accepts_the_new_functions(name):
    c = parse_spec(SPEC.format(extra="", expr=f"{name}(W @ h_prev)"), "t.toml")
    assert type(c.definition("h")) is FUNCTIONS[name]


@pytest.mark.parametrize("name", [f.name for f in NEW])
@pytest.mark.parametrize("expr,message,col", [
    ("{f}(2) * h_prev", "{f}() of a number is not a cell quantity", 6),
    ("{f} * h_prev", "function '{f}' needs an argument in parentheses", 6),
    ("{f}(W)", "{f}() applies to vectors; 'W' is a (H, H) matrix", 7),
])
def test_spec_errors_for_the_new_functions(name, expr, message, col):
    """Each misuse is a SpecError at file:line:col naming the function."""
    text = SPEC.format(extra="", expr=expr.format(f=name))
    want = message.format(f=name)
    col = col + len(name) if "(W)" in expr else col
    with pytest.raises(SpecError) as info:
        parse_spec(text, "t.toml")
    assert str(info.value) == f"t.toml:7:{col}: {want}", str(info.value)


@pytest.mark.parametrize("name", [f.name for f in NEW] + [f.derivative.name for f in NEW])
def test_new_function_names_are_reserved_for_parameters(name):
    with pytest.raises(SpecError, match=f"'{name}'.*reserved|reserved.*'{name}'"):
        parse_spec(SPEC.format(extra=f'{name} = ["H"]\n', expr="tanh(W @ h_prev)"), "t.toml")


def test_unknown_function_lists_the_new_ones():
    with pytest.raises(SpecError, match="unknown function 'erf'; the functions are abs, cos, "
                                        "dot, exp, log, logsigmoid, max, mean, min, norm, outer, relu, "
                                        "sigmoid, silu, sin, softplus, sqrt, sum, tanh"):
        parse_spec(SPEC.format(extra="", expr="erf(W @ h_prev)"), "t.toml")
