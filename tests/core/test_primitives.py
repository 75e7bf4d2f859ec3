"""The elementwise primitives against SymPy's own calculus.

For every registered primitive f with a derivative node f':
* ``f'.scalar`` is SymPy's ``diff`` of ``f.scalar`` (ReLU: for x != 0, where relu is
  differentiable; the value at 0 is a convention, checked separately);
* ``from_output(f(x))`` is ``f'(x)`` (the form kernels use when y = f(x) is at hand);
* ``gamma()`` is the supremum of |f'| over the reals, established independently by the
  bound proofs of :mod:`verify.proofs`;
* the NumPy implementations agree with the scalar definitions (float64, a few ulp).
"""
import math

import numpy
import pytest
import sympy

from derive.codegen import np_primitives as numpy_primitives
from derive.core.primitives import ALL_PRIMITIVES, FUNCTIONS, Relu, Sigmoid, Tanh
from verify import proofs

WITH_DERIVATIVE = [cls for cls in ALL_PRIMITIVES if cls.derivative is not None]
x = sympy.Symbol("x", real=True)


def test_every_function_has_a_registered_derivative():
    for name, cls in FUNCTIONS.items():
        assert cls.derivative is not None, f"{name} has no derivative node"
        assert cls.derivative in ALL_PRIMITIVES
        assert cls.derivative.is_derivative and not cls.is_derivative


@pytest.mark.parametrize("cls", WITH_DERIVATIVE, ids=lambda c: c.__name__)
def test_derivative_is_sympy_diff(cls):
    proof = proofs.derivative_rule(cls)
    assert proof, str(proof)


_y = sympy.Symbol("y", real=True)
WITH_FROM_OUTPUT = [cls for cls in WITH_DERIVATIVE if cls.from_output(_y) is not None]


def test_sigmoid_and_tanh_have_output_forms():
    assert Sigmoid in WITH_FROM_OUTPUT and Tanh in WITH_FROM_OUTPUT


@pytest.mark.parametrize("cls", WITH_FROM_OUTPUT, ids=lambda c: c.__name__)
def test_from_output_consistent(cls):
    diff = cls.from_output(_y).subs(_y, cls.scalar(x)) - cls.derivative.scalar(x)
    assert sympy.cancel(sympy.together(diff)) == 0


def test_relu_prime_value_at_zero_is_pytorchs():
    # the only point where relu' is a convention: PyTorch's subgradient 0
    assert Relu.derivative.scalar(sympy.S.Zero) == 0
    assert Relu.derivative.scalar(sympy.Rational(1, 10**9)) == 1


@pytest.mark.parametrize("cls,expected", [(Sigmoid, "sigmoid_prime_bounds"),
                                          (Tanh, "tanh_prime_bounds"),
                                          (Relu, "relu_prime_bounds")],
                         ids=["sigmoid", "tanh", "relu"])
def test_gamma_is_the_proved_supremum(cls, expected):
    proof = getattr(proofs, expected)()
    assert proof, str(proof)
    # gamma() is computed by SymPy; the proof derives the same maximum independently
    gamma = cls.gamma()
    d = cls.derivative.scalar
    grid = [sympy.Rational(k, 7) for k in range(-70, 71)]
    assert all(d(v) <= gamma for v in grid)
    assert max(d(v) for v in grid + [sympy.S.Zero, sympy.Rational(1, 10**6)]) == gamma


def test_every_classic_activation_has_a_gamma_with_a_bound_proof():
    """sigmoid, tanh and relu (the activations of the built-in Elman and gated cells) have a
    symbolic bound proof; the newer primitives' gammas are checked against an mpmath grid in
    test_primitives_new.py."""
    from derive.core.primitives import Relu, Sigmoid, Tanh
    for cls in (Sigmoid, Tanh, Relu):
        assert proofs.derivative_bounds(cls), cls.__name__


@pytest.mark.parametrize("cls", ALL_PRIMITIVES, ids=lambda c: c.__name__)
def test_numpy_implementation_matches_scalar_definition(cls):
    """The stable NumPy forms equal the SymPy scalar definitions (evaluated exactly, then to
    40 digits) in float64 to 4 ulp relative, on a grid of 320 points in [-20, 20] without 0 (inside the primitive's domain)."""
    fn = getattr(numpy_primitives, cls.numpy)
    pts = [sympy.Rational(v, 8) for v in range(-160, 161) if v != 0]
    pts = [p for p in pts if cls.domain.contains(p) is sympy.true]     # log, sqrt: p > 0
    got = fn(numpy.array([float(p) for p in pts], dtype=numpy.float64))
    for p, g in zip(pts, got):
        want = float(cls.scalar(p).evalf(40))
        assert math.isclose(g, want, rel_tol=4 * numpy.finfo(numpy.float64).eps, abs_tol=0.0), \
            (cls.__name__, p, g, want)


NUMPY_FUNCTIONS = sorted({cls.numpy for cls in ALL_PRIMITIVES})


def _awkward_inputs(dtype):
    """Ordinary values, saturating ones, |x| up to 1e4, zeros and subnormals."""
    tiny = numpy.finfo(dtype).tiny
    vals = numpy.concatenate([numpy.linspace(-30, 30, 241), [0.0, -0.0, 1e4, -1e4, 750, -750,
                              90, -90, tiny, -tiny, tiny / 8, -tiny / 8, tiny / 2 ** 20]])
    return vals.astype(dtype).reshape(-1, 1) * numpy.ones((1, 3), dtype)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("name", NUMPY_FUNCTIONS)
def test_out_argument_gives_the_same_bits_in_place(name, dtype):
    """fn(x, out=buf) returns buf holding exactly fn(x), also when buf is x itself (the
    kernels activate gates in place) and for strided views; x is otherwise untouched."""
    fn = getattr(numpy_primitives, name)
    x = _awkward_inputs(dtype)
    keep = x.copy()
    with numpy.errstate(all="raise"):
        want = fn(x)
        buf = numpy.empty_like(x)
        assert fn(x, out=buf) is buf
        same = x.copy()
        assert fn(same, out=same) is same
        wide = numpy.zeros((x.shape[0], 2 * x.shape[1]), dtype)
        view = wide[:, ::2]
        view[...] = x
        fn(view, out=view)
    assert want.dtype == dtype
    numpy.testing.assert_array_equal(buf, want)
    numpy.testing.assert_array_equal(same, want)
    numpy.testing.assert_array_equal(wide[:, ::2], want)
    assert not wide[:, 1::2].any()
    numpy.testing.assert_array_equal(x, keep)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_subnormal_and_zero_dimensional_inputs(dtype):
    """Subnormal x (NumPy's float32 exp flags underflow for them) give the exact limits
    sigma = 1/2, sigma' = 1/4, tanh' = 1 without a floating-point event; a 0-d input gives a
    0-d result (array or NumPy scalar) of the same dtype."""
    sub = numpy.array([numpy.finfo(dtype).tiny / 16, -numpy.finfo(dtype).tiny / 16], dtype)
    with numpy.errstate(all="raise"):
        assert (numpy_primitives.sigmoid(sub) == 0.5).all()
        assert (numpy_primitives.sigmoid_prime(sub) == 0.25).all()
        assert (numpy_primitives.tanh_prime(sub) == 1).all()
        for name in NUMPY_FUNCTIONS:
            y = getattr(numpy_primitives, name)(numpy.array(0.5, dtype))
            assert numpy.shape(y) == () and y.dtype == dtype, name
