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


# -- exp, log, sqrt: the value at the edge of the domain is IEEE's, without a floating-point
# event (errstate ignore): exp(x) = inf for x > log(max) = 709.78 (float64), 88.72 (float32),
# and rounds to a subnormal or 0 below -708.4 (float64), -87.3 (float32); log and sqrt are
# defined for x > 0: log(0) = -inf, log'(0) = sqrt'(0) = inf, and nan for x < 0.

def exp(x, out=None):
    """exp(x); inf for x > 709.78 in float64 (88.72 in float32), by nature, without a warning."""
    with numpy.errstate(over="ignore", under="ignore"):
        return numpy.exp(x, out=out)


exp_prime = exp


def log(x, out=None):
    """log(x) for x > 0 (-inf at 0, nan below, without a warning)."""
    with numpy.errstate(divide="ignore", invalid="ignore"):
        return numpy.log(x, out=out)


def log_prime(x, out=None):
    """log'(x) = 1/x for x > 0 (inf at 0 and for subnormal x below 1/max, without a warning)."""
    with numpy.errstate(divide="ignore", over="ignore", under="ignore"):
        return numpy.divide(1, x, out=out)


def sqrt(x, out=None):
    """sqrt(x) for x >= 0 (nan below, without a warning)."""
    with numpy.errstate(invalid="ignore"):
        return numpy.sqrt(x, out=out)


@_scalar_safe
def sqrt_prime(x, out=None):
    """sqrt'(x) = 1 / (2 sqrt(x)) for x > 0: infinite at 0 (without a warning), nan below."""
    with numpy.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = numpy.sqrt(x, out=out)
        r *= 2
        return numpy.divide(1, r, out=r)


# -- softplus, logsigmoid, silu: stable for finite x of any magnitude, no floating-point events

@_scalar_safe
def softplus(x, out=None):
    """softplus(x) = log(1 + e^x) = max(x, 0) + log1p(exp(-|x|)); for x < -limit (700 in
    float64, 80 in float32) it returns exp(-limit) (<= 2e-35), above the true value."""
    m = numpy.maximum(x, 0)
    e = _exp_neg_magnitude(x, out, 1.0)
    numpy.log1p(e, out=e)
    return numpy.add(e, m, out=e)


@_scalar_safe
def softplus_prime(x, out=None):
    """softplus'(x) = sigma(x)."""
    return sigmoid(x, out=out)


@_scalar_safe
def logsigmoid(x, out=None):
    """log sigma(x) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|))."""
    e = softplus(numpy.negative(x), out=out)
    return numpy.negative(e, out=e)


@_scalar_safe
def logsigmoid_prime(x, out=None):
    """(log sigma)'(x) = sigma(-x)."""
    return sigmoid(numpy.negative(x), out=out)


@_scalar_safe
def silu(x, out=None):
    """silu(x) = x sigma(x), with the stable sigmoid (for x < -limit: x sigma(-limit), within
    |x| e^-limit of the true value, which is smaller)."""
    s = sigmoid(x)
    return numpy.multiply(x, s, out=out if out is not None else s)


@_scalar_safe
def silu_prime(x, out=None):
    """silu'(x) = sigma(x) (1 + x sigma(-x)), written with e = exp(-|x|) as
    e (1 + x + e) / (1 + e)**2 for x < 0 and (1 + e + x e) / (1 + e)**2 for x >= 0: no
    cancellation except in 1 + x + e near the zero x = -1.2785 (where 1 + x is exact)."""
    neg = numpy.less(x, 0)
    e = _exp_neg_magnitude(x, None, 1.0)
    d = e + 1
    d *= d
    pos = numpy.multiply(x, e)
    pos += e
    pos += 1                                    # 1 + e + x e  (x >= 0)
    n = numpy.add(x, 1, out=out)                # 1 + x        (x < 0; out may be x)
    n += e                                      # 1 + x + e
    n *= numpy.where(neg, e, 1)                 # e (1 + x + e)
    numpy.copyto(n, pos, where=~neg)
    return numpy.divide(n, d, out=n)


# -- abs, cos, sin (cos and sin of a subnormal x flag underflow in NumPy: ignored, the value
# is exact there)

def absolute(x, out=None):
    """abs(x) = |x| (named so that generated modules keep Python's abs)."""
    return numpy.abs(x, out=out)


def absolute_prime(x, out=None):
    """abs'(x) = sgn(x) in {-1, 0, 1}; sgn(0) = 0 (PyTorch's subgradient at 0)."""
    return numpy.sign(x, out=out)


def cos(x, out=None):
    """cos(x)."""
    with numpy.errstate(under="ignore"):
        return numpy.cos(x, out=out)


@_scalar_safe
def cos_prime(x, out=None):
    """cos'(x) = -sin(x)."""
    s = sin(x, out=out)
    return numpy.negative(s, out=s)


def sin(x, out=None):
    """sin(x)."""
    with numpy.errstate(under="ignore"):
        return numpy.sin(x, out=out)


sin_prime = cos


# -- 1/x, the step, max and min: 1/x is inf at 0 and for |x| below 1/max by nature (no
# warning); the step is 1/2 at 0 (each argument of a tied max gets half its gradient)

def reciprocal(x, out=None):
    """1/x (inf at 0 and where 1/x overflows, without a warning)."""
    with numpy.errstate(divide="ignore", over="ignore"):
        return numpy.divide(1, x, out=out)


@_scalar_safe
def reciprocal_prime(x, out=None):
    """(1/x)' = -1/x^2 (-inf at 0 and where it overflows, -0 where it underflows; no warning)."""
    with numpy.errstate(divide="ignore", over="ignore", under="ignore"):
        r = numpy.divide(1, x, out=out)
        numpy.multiply(r, r, out=r)
        return numpy.negative(r, out=r)


@_scalar_safe
def heaviside(x, out=None):
    """Θ(x): 1 for x > 0, 0 for x < 0, 1/2 at 0 (the derivative of max(x, 0) with ties split)."""
    r = numpy.sign(x, out=out)
    r += 1
    r *= 0.5
    return r


def maximum(a, b):
    """max(a, b) entry by entry."""
    return numpy.maximum(a, b)


def minimum(a, b):
    """min(a, b) entry by entry."""
    return numpy.minimum(a, b)


# -- matrix states (held row-major as n*n-vectors; derive.core.matrixstate) -------------------

def outer_vec(u, w):
    """vec(u w^T) of every batch row: (..., n), (..., n) -> (..., n * n), row-major (einsum
    writes the products straight into the result: no broadcast temporary)."""
    out = numpy.einsum("...i,...j->...ij", u, w)
    return out.reshape(out.shape[:-2] + (-1,))


def dot(u, v):
    """u^T v of every batch row, kept as a column: (..., n), (..., n) -> (..., 1), without
    the temporary u * v of numpy.sum(u * v) (NumPy 2's vecdot gufunc, else einsum)."""
    vecdot = getattr(numpy, "vecdot", None)
    if vecdot is not None:
        return vecdot(u, v)[..., None]
    return numpy.einsum("...i,...i->...", u, v)[..., None]


def mat_vec(C, v):
    """C v of every batch row, C held as (..., n * n) row-major and v (..., n) (NumPy 2.2's
    matvec gufunc, else matmul)."""
    n = v.shape[-1]
    C = C.reshape(C.shape[:-1] + (n, n))
    matvec = getattr(numpy, "matvec", None)
    return matvec(C, v) if matvec is not None else numpy.matmul(C, v[..., :, None])[..., 0]


def mat_t_vec(C, v):
    """C^T v of every batch row, C held as (..., n * n) row-major and v (..., n) (NumPy 2.2's
    vecmat gufunc, else matmul)."""
    n = v.shape[-1]
    C = C.reshape(C.shape[:-1] + (n, n))
    vecmat = getattr(numpy, "vecmat", None)
    return vecmat(v, C) if vecmat is not None else numpy.matmul(v[..., None, :], C)[..., 0, :]
