"""NumPy implementations of the elementwise primitives (numpy only, no SymPy).

These functions are the numerical definition of each primitive registered in
:mod:`derive.primitives`. The kernel generator copies their source verbatim into
every generated module, so a generated kernel imports nothing but NumPy.

All of them are numerically stable: no overflow, underflow or invalid-operation
floating-point events for finite inputs (tested under ``numpy.errstate(all="raise")``),
and they keep the input dtype (float32 stays float32).
"""
import numpy


def _magnitude(x, scale=1.0):
    """|x| clipped to [0, limit]: exp(-scale * limit) is still a normal number in x's dtype,
    so exp never underflows; magnitudes below the smallest normal number are flushed to 0
    (NumPy's exp flags underflow for subnormal arguments; exp(-a) rounds to 1 there anyway)."""
    limit = (80.0 if x.dtype == numpy.float32 else 700.0) / scale
    a = numpy.minimum(numpy.abs(x), limit)
    return numpy.where(a < numpy.finfo(x.dtype).tiny, 0, a).astype(x.dtype, copy=False)


def sigmoid(x):
    """sigma(x) = 1 / (1 + exp(-x)), evaluated as exp(-|x|) so exp never overflows."""
    x = numpy.asarray(x)
    e = numpy.exp(-_magnitude(x))
    return numpy.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_prime(x):
    """sigma'(x) = sigma(x) sigma(-x) = exp(-|x|) / (1 + exp(-|x|))**2, never cancelling to 0 early."""
    x = numpy.asarray(x)
    e = numpy.exp(-_magnitude(x))
    return (e / ((1 + e) * (1 + e))).astype(x.dtype, copy=False)


def tanh(x):
    """tanh(x); NumPy's tanh saturates to +-1 without floating-point events."""
    return numpy.tanh(x)


def tanh_prime(x):
    """tanh'(x) = sech(x)**2 = 4 exp(-2|x|) / (1 + exp(-2|x|))**2 (no 1 - tanh**2 cancellation)."""
    x = numpy.asarray(x)
    e = numpy.exp(-2 * _magnitude(x, scale=2.0))
    return (4 * e / ((1 + e) * (1 + e))).astype(x.dtype, copy=False)


def relu(x):
    """relu(x) = max(x, 0)."""
    return numpy.maximum(x, 0)


def relu_prime(x):
    """relu'(x) = 1 for x > 0, else 0 (the value at 0 follows PyTorch)."""
    x = numpy.asarray(x)
    return (x > 0).astype(x.dtype)
