"""The exact sigma'/tanh' claims (interval arithmetic) and the float kernels' documented
tolerances, run under the Hypothesis profile of tests/conftest.py."""
from fractions import Fraction

import numpy
import pytest
from hypothesis import given, strategies as st

from verify import properties as P

REALS = st.one_of(st.integers(), st.fractions(), st.floats(allow_nan=False, allow_infinity=False),
                  st.floats(-1e-300, 1e-300))


@given(REALS)
def test_sigmoid_prime_in_open_quarter_exactly(x):
    enc = P.sigmoid_prime_exact(x)       # raises PropertyFailure unless 0 < sigma' <= 1/4
    assert 0 < enc.a <= 0.25


@given(REALS)
def test_tanh_prime_in_unit_interval_exactly(x):
    enc = P.tanh_prime_exact(x)
    assert enc.a > 0


@pytest.mark.parametrize("x", [0, Fraction(0), 2 ** -1074, -(2 ** -1074), 1e-300, 745, 746,
                               10 ** 6, -1.7976931348623157e308, Fraction(1, 10 ** 400)])
def test_exact_claims_at_extremes(x):
    assert P.sigmoid_prime_exact(x).a > 0
    assert P.tanh_prime_exact(x).a > 0


def test_sigmoid_prime_is_exactly_a_quarter_at_zero():
    enc = P.sigmoid_prime_exact(0)
    assert enc.a == enc.b == 0.25


def test_exact_check_rejects_non_finite():
    with pytest.raises(ValueError, match="finite"):
        P.sigmoid_prime_exact(float("nan"))


def test_identities_behind_the_interval_check():
    assert P.scalar_identities()


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_sigmoid_prime_float64(x):
    P.sigmoid_prime_float(x, numpy.float64)


@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_sigmoid_prime_float32(x):
    P.sigmoid_prime_float(x, numpy.float32)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_tanh_prime_float64(x):
    P.tanh_prime_float(x, numpy.float64)


@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_tanh_prime_float32(x):
    P.tanh_prime_float(x, numpy.float32)


@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([numpy.float32, numpy.float64]))
def test_sigmoid_float(x, dtype):
    if dtype == numpy.float32 and abs(x) > float(numpy.finfo(numpy.float32).max):
        return
    P.sigmoid_float(x, dtype)


def test_documented_one_ulp_above_a_quarter_is_reached():
    """The tolerance is needed: near 0 the float64 kernel returns 0.25000000000000006."""
    xs = numpy.linspace(-1e-6, 1e-6, 200001)
    from derive.codegen.np_primitives import sigmoid_prime
    v = sigmoid_prime(xs)
    assert v.max() == 0.25 + numpy.spacing(0.25)
    for x in xs[v > 0.25][:20]:
        P.sigmoid_prime_float(x)          # accepted: within the documented 1 ulp


def test_float_kernels_stay_positive_where_the_true_value_underflows():
    """exp(-|x|) underflows from |x| ~ 745 (float64) / ~104 (float32); the kernels clip at
    700 / 80 and stay positive (and exact values are positive everywhere)."""
    for dtype, far in ((numpy.float64, 1e4), (numpy.float32, 1e3)):
        assert P.sigmoid_prime_float(far, dtype) > 0
        assert P.tanh_prime_float(-far, dtype) > 0
    assert P.sigmoid_prime_exact(1e4).a > 0


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("name", ["sigmoid_prime", "tanh_prime", "sigmoid"])
def test_subnormal_inputs_raise_no_floating_point_event(name, dtype):
    """NumPy's exp flags underflow for a subnormal argument; the kernels flush |x| below the
    smallest normal number to 0 first, so they are exact there (sigma'(0+) = 1/4,
    tanh'(0+) = 1, sigma(0+) = 1/2) and raise nothing."""
    from derive.codegen import np_primitives as npp
    x = numpy.asarray(numpy.finfo(dtype).smallest_subnormal, dtype=dtype)
    with numpy.errstate(all="raise"):
        v = getattr(npp, name)(x)
    assert v.dtype == dtype
    getattr(P, f"{name}_float")(x, dtype)


def test_float_check_catches_a_naive_kernel(monkeypatch):
    """The float property fails on the naive s(1-s), which cancels to 0 at x ~ 37."""
    from derive.codegen import np_primitives as npp

    def naive(x):
        s = 1 / (1 + numpy.exp(-x))
        return s * (1 - s)
    monkeypatch.setattr(npp, "sigmoid_prime", naive)
    with pytest.raises(P.PropertyFailure):
        P.sigmoid_prime_float(40.0)
