"""NumPy implementations of the elementwise primitives (numpy only, no SymPy).

These functions are the numerical definition of each primitive registered in
:mod:`derive.core.primitives`. The kernel generator copies their source verbatim into
every generated module, so a generated kernel imports nothing but NumPy.

All of them are numerically stable: no overflow, underflow or invalid-operation
floating-point events for finite inputs (tested under ``numpy.errstate(all="raise")``),
and they keep the input dtype (float32 stays float32). Each takes an optional ``out``
array of x's shape and dtype (it may be ``x`` itself) and is written as a short chain of
in-place ufunc calls, because kernels call them once per time step on (B, n) arrays.
"""
import numpy

# (x + 2**-60) - 2**-60 is x for |x| >= 2**-35 and 0 for subnormal x; in between it moves x
# by at most 2**-84, far below one ulp of exp(-x) ~ 1. NumPy's float32 exp flags underflow
# for subnormal arguments, so sigmoid rounds them to 0 this way (exp(-x) is 1 there anyway).
_SHIFT = 2.0 ** -60


def _exp_limit(dtype, scale=1.0):
    """exp(limit) is finite and exp(-limit) a normal number in ``dtype`` (for scale * |x|)."""
    return (80.0 if dtype == numpy.float32 else 700.0) / scale


def _exp_neg_magnitude(x, out, scale):
    """exp(-scale * min(|x|, limit / scale)), never underflowing (|x| below the smallest
    normal number is raised to it: exp of it rounds to 1, as exp(-0) does)."""
    a = numpy.abs(x, out=out)
    numpy.clip(a, numpy.finfo(a.dtype).tiny, _exp_limit(a.dtype, scale), out=a)
    numpy.multiply(a, -scale, out=a)
    return numpy.exp(a, out=a)


def _scalar_safe(f):
    """Let ``f`` (written with in-place ufuncs on arrays) take 0-d input too."""
    def wrapper(x, out=None):
        x = numpy.asarray(x)
        if x.ndim == 0 and out is None:
            return f(x.reshape(1), None).reshape(())
        return f(x, out)
    wrapper.__name__, wrapper.__doc__ = f.__name__, f.__doc__
    return wrapper


@_scalar_safe
def sigmoid(x, out=None):
    """sigma(x) = 1 / (1 + exp(-x)); exp's argument is clipped to +-limit, so exp neither
    overflows nor underflows and sigma keeps its relative accuracy for negative x down to
    -limit (beyond +-limit the value is sigma(+-limit): 1, or below 2e-35 in float32)."""
    lim = _exp_limit(x.dtype)
    e = numpy.add(x, _SHIFT, out=out)
    numpy.subtract(_SHIFT, e, out=e)            # -x (subnormal x rounded to 0)
    numpy.clip(e, -lim, lim, out=e)
    numpy.exp(e, out=e)
    e += 1
    return numpy.divide(1, e, out=e)


@_scalar_safe
def sigmoid_prime(x, out=None):
    """sigma'(x) = sigma(x) sigma(-x) = exp(-|x|) / (1 + exp(-|x|))**2, never cancelling to 0 early."""
    e = _exp_neg_magnitude(x, out, 1.0)
    d = e + 1
    d *= d
    return numpy.divide(e, d, out=e)


def tanh(x, out=None):
    """tanh(x); NumPy's tanh saturates to +-1 without floating-point events."""
    return numpy.tanh(x, out=out)


@_scalar_safe
def tanh_prime(x, out=None):
    """tanh'(x) = sech(x)**2 = 4 exp(-2|x|) / (1 + exp(-2|x|))**2 (no 1 - tanh**2 cancellation)."""
    e = _exp_neg_magnitude(x, out, 2.0)
    d = e + 1
    d *= d
    e *= 4
    return numpy.divide(e, d, out=e)


def relu(x, out=None):
    """relu(x) = max(x, 0)."""
    return numpy.maximum(x, 0, out=out)


def relu_prime(x, out=None):
    """relu'(x) = 1 for x > 0, else 0 (the value at 0 follows PyTorch)."""
    x = numpy.asarray(x)
    return numpy.greater(x, 0, out=out, casting="unsafe") if out is not None \
        else (x > 0).astype(x.dtype)
