"""Elementwise primitives as SymPy matrix expressions, each with its derivative beside it.

Every primitive ``f`` is a :class:`Elementwise` node ``f(u)`` applied entry by entry to a
column vector ``u``. Next to its definition it registers, in the style of JAX primitives:

* ``scalar(x)``: the scalar SymPy definition (used when a cell is expanded to explicit entries);
* ``derivative``: the primitive node for ``f'`` (so ``d f(u) = diag(f'(u)) du`` and the
  transpose rule ``delta_u = f'(u) * delta``);
* ``from_output``: ``f'`` written with the output ``y = f(u)`` (``sigma' = y(1-y)``,
  ``tanh' = 1 - y^2``), which kernels use when ``y`` is already computed;
* ``numpy``: the name of the stable NumPy implementation in :mod:`derive.codegen.np_primitives`.

The derivative rules are facts to be proved, not trusted: ``tests/core/test_primitives.py``
and ``tests/core/test_primitives_new.py`` check every ``derivative.scalar`` against SymPy's
own ``diff`` of ``scalar``.

Domains: every primitive is defined on the reals except ``log`` and ``sqrt``, defined for
positive arguments (``domain``); ``sqrt'(u) = 1/(2 sqrt(u))`` is infinite at 0. Conventions
at the kinks (the subgradient PyTorch uses): ``relu'(0) = 0``, ``abs'(0) = sgn(0) = 0``.
"""
from __future__ import annotations

import functools

from fractions import Fraction

import sympy

from derive.core.elementwise import Elementwise, _limit_at  # noqa: F401  (re-exported)

class SigmoidPrime(Elementwise):
    """sigma'(x) = sigma(x) (1 - sigma(x))."""
    name, latex, numpy, is_derivative = "sigmoid_prime", r"\sigma'", "sigmoid_prime", True
    text = "σ'"

    @staticmethod
    def scalar(x):
        s = Sigmoid.scalar(x)
        return s * (1 - s)


class Sigmoid(Elementwise):
    """sigma(x) = 1 / (1 + e^{-x}), the logistic sigmoid."""
    name, latex, numpy, text = "sigmoid", r"\sigma", "sigmoid", "σ"
    derivative = SigmoidPrime

    @staticmethod
    def scalar(x):
        return 1 / (1 + sympy.exp(-x))

    @staticmethod
    def from_output(y):
        return y * (1 - y)


class TanhPrime(Elementwise):
    """tanh'(x) = 1 - tanh(x)^2."""
    name, latex, numpy, is_derivative = "tanh_prime", r"\tanh'", "tanh_prime", True
    text = "tanh'"

    @staticmethod
    def scalar(x):
        return 1 - sympy.tanh(x) ** 2


class Tanh(Elementwise):
    """tanh(x)."""
    name, latex, numpy, text = "tanh", r"\tanh", "tanh", "tanh"
    derivative = TanhPrime

    @staticmethod
    def scalar(x):
        return sympy.tanh(x)

    @staticmethod
    def from_output(y):
        return 1 - y * y


class ReluPrime(Elementwise):
    """relu'(x) = 1 for x > 0 and 0 for x <= 0 (relu'(0) = 0: the subgradient PyTorch uses)."""
    name, latex, numpy, is_derivative = "relu_prime", r"\operatorname{relu}'", "relu_prime", True
    text = "relu'"

    @staticmethod
    def scalar(x):
        return sympy.Heaviside(x, 0)


class Relu(Elementwise):
    """relu(x) = max(x, 0)."""
    name, latex, numpy, text = "relu", r"\operatorname{relu}", "relu", "relu"
    derivative = ReluPrime

    @staticmethod
    def scalar(x):
        return sympy.Max(x, 0)

    @classmethod
    def _sup_abs_derivative(cls):
        # relu' is piecewise constant: take the larger of its two branches.
        pos, neg = sympy.Symbol("x", positive=True), sympy.Symbol("x", negative=True)
        return sympy.Max(*(cls.derivative.scalar(v) for v in (pos, neg, sympy.S.Zero)))


def _sigma(x):
    return 1 / (1 + sympy.exp(-x))


_POSITIVE = sympy.Interval.open(0, sympy.oo)


class ExpPrime(Elementwise):
    """exp'(x) = exp(x)."""
    name, latex, numpy, text, is_derivative = "exp_prime", r"\exp'", "exp_prime", "exp'", True
    scalar = staticmethod(sympy.exp)


class Exp(Elementwise):
    """exp(x) (overflows to inf in floating point for x > 709.78 in float64, 88.72 in float32)."""
    name, latex, numpy, text, derivative = "exp", r"\exp", "exp", "exp", ExpPrime
    derive_with_output = True
    scalar = staticmethod(sympy.exp)

    @staticmethod
    def from_output(y):
        return y


class LogPrime(Elementwise):
    """log'(x) = 1/x, for x > 0."""
    name, latex, numpy, text, is_derivative = "log_prime", r"\log'", "log_prime", "log'", True
    domain = _POSITIVE

    @staticmethod
    def scalar(x):
        return 1 / x


class Log(Elementwise):
    """log(x), the natural logarithm, defined for x > 0."""
    name, latex, numpy, text, derivative = "log", r"\log", "log", "log", LogPrime
    domain = _POSITIVE
    scalar = staticmethod(sympy.log)


class SoftplusPrime(Elementwise):
    """softplus'(x) = sigma(x)."""
    name, latex, numpy, text = "softplus_prime", r"\operatorname{softplus}'", "softplus_prime", ""
    text, is_derivative = "softplus'", True
    scalar = staticmethod(_sigma)


class Softplus(Elementwise):
    """softplus(x) = log(1 + e^x)."""
    name, latex, numpy, text = "softplus", r"\operatorname{softplus}", "softplus", "softplus"
    derivative = SoftplusPrime

    @staticmethod
    def scalar(x):
        return sympy.log(1 + sympy.exp(x))


class LogSigmoidPrime(Elementwise):
    """(log sigma)'(x) = sigma(-x) = 1 - sigma(x)."""
    name, latex, numpy, text = "logsigmoid_prime", r"(\log\sigma)'", "logsigmoid_prime", "logσ'"
    is_derivative = True

    @staticmethod
    def scalar(x):
        return _sigma(-x)


class LogSigmoid(Elementwise):
    """log sigma(x) = -log(1 + e^{-x}) = -softplus(-x)."""
    name, latex, numpy, text = "logsigmoid", r"\log\sigma", "logsigmoid", "logσ"
    derivative = LogSigmoidPrime

    @staticmethod
    def scalar(x):
        return -sympy.log(1 + sympy.exp(-x))


class SiluPrime(Elementwise):
    """silu'(x) = sigma(x) (1 + x sigma(-x))."""
    name, latex, numpy, text = "silu_prime", r"\operatorname{silu}'", "silu_prime", "silu'"
    is_derivative = True

    @staticmethod
    def scalar(x):
        return _sigma(x) * (1 + x * _sigma(-x))


class Silu(Elementwise):
    """silu(x) = x sigma(x) (SiLU, swish)."""
    name, latex, numpy, text = "silu", r"\operatorname{silu}", "silu", "silu"
    derivative = SiluPrime

    @staticmethod
    def scalar(x):
        return x * _sigma(x)

    @classmethod
    def _sup_abs_derivative(cls):
        """silu' is smooth, tends to 1 at +oo and 0 at -oo; its critical points are the real
        zeros of silu'' (SymPy's diff), found by ``nsolve`` to 30 digits from both sides (they
        are transcendental: x tanh(x/2) = 2): sup |silu'| is the largest |silu'| there or 1."""
        x = sympy.Symbol("x", real=True)
        fp = cls.derivative.scalar(x)
        crit = [sympy.nsolve(sympy.diff(fp, x), x, x0, prec=30) for x0 in (-2, 2)]
        return sympy.Max(1, *(abs(fp.subs(x, c)).evalf(30) for c in crit))


class AbsPrime(Elementwise):
    """abs'(x) = sgn(x): -1, 0, 1 (the value 0 at x = 0 is the subgradient PyTorch uses)."""
    name, latex, numpy, text = "abs_prime", r"\operatorname{sgn}", "absolute_prime", "sgn"
    is_derivative = True
    scalar = staticmethod(sympy.sign)


class Abs(Elementwise):
    """abs(x) = |x| (NumPy name ``absolute``, so generated code keeps Python's ``abs``)."""
    name, latex, numpy, text = "abs", r"\operatorname{abs}", "absolute", "abs"
    derivative = AbsPrime
    scalar = staticmethod(sympy.Abs)

    @classmethod
    def _sup_abs_derivative(cls):
        # sgn is piecewise constant: the largest |value| of its three branches.
        pos, neg = sympy.Symbol("x", positive=True), sympy.Symbol("x", negative=True)
        return sympy.Max(*(abs(cls.derivative.scalar(v)) for v in (pos, neg, sympy.S.Zero)))


class SqrtPrime(Elementwise):
    """sqrt'(x) = 1 / (2 sqrt(x)), for x > 0 (infinite at 0, where sqrt is not differentiable)."""
    name, latex, numpy, text = "sqrt_prime", r"\operatorname{sqrt}'", "sqrt_prime", "sqrt'"
    is_derivative, domain = True, _POSITIVE

    @staticmethod
    def scalar(x):
        return 1 / (2 * sympy.sqrt(x))


class Sqrt(Elementwise):
    """sqrt(x), defined for x > 0 here (sqrt(0) = 0, but its derivative is infinite there)."""
    name, latex, numpy, text = "sqrt", r"\operatorname{sqrt}", "sqrt", "sqrt"
    derivative = SqrtPrime
    domain = _POSITIVE
    scalar = staticmethod(sympy.sqrt)
    derive_with_output = True

    @staticmethod
    def from_output(y):
        """sqrt'(u) = 1 / (2 y) with y = sqrt(u) (layer norm's derivative reads sigma)."""
        if isinstance(y, sympy.Basic):                  # a scalar symbol
            return 1 / (2 * y)
        return type(y).atom(Reciprocal(y.to_expr())).scaled(Fraction(1, 2))


class CosPrime(Elementwise):
    """cos'(x) = -sin(x)."""
    name, latex, numpy, text, is_derivative = "cos_prime", r"\cos'", "cos_prime", "cos'", True

    @staticmethod
    def scalar(x):
        return -sympy.sin(x)


class Cos(Elementwise):
    """cos(x)."""
    name, latex, numpy, text, derivative = "cos", r"\cos", "cos", "cos", CosPrime
    scalar = staticmethod(sympy.cos)


class SinPrime(Elementwise):
    """sin'(x) = cos(x)."""
    name, latex, numpy, text, is_derivative = "sin_prime", r"\sin'", "sin_prime", "sin'", True
    scalar = staticmethod(sympy.cos)


class Sin(Elementwise):
    """sin(x)."""
    name, latex, numpy, text, derivative = "sin", r"\sin", "sin", "sin", SinPrime
    scalar = staticmethod(sympy.sin)


_NONZERO = sympy.Union(sympy.Interval.open(-sympy.oo, 0), sympy.Interval.open(0, sympy.oo))


class ReciprocalPrime(Elementwise):
    """(1/x)' = -1/x^2, for x != 0."""
    name, latex, numpy, text = "reciprocal_prime", r"(1/\cdot)'", "reciprocal_prime", "(1/·)'"
    is_derivative, domain = True, _NONZERO

    @staticmethod
    def scalar(x):
        return -1 / x ** 2


class Reciprocal(Elementwise):
    """1/x, for x != 0: the spec language's ``a / b`` is ``a * reciprocal(b)``; printers write
    the reciprocal factors of a product as its denominator."""
    name, latex, numpy, text = "reciprocal", r"\operatorname{recip}", "reciprocal", "1/"
    derivative, domain, derive_with_output = ReciprocalPrime, _NONZERO, True

    @staticmethod
    def scalar(x):
        return 1 / x

    @staticmethod
    def from_output(y):
        return -y * y

    @classmethod
    def _sup_abs_derivative(cls):
        return sympy.oo                 # 1/x^2 is unbounded near 0


class Step(Elementwise):
    """The Heaviside step with value 1/2 at 0: the derivative of max and min (the tie
    convention of PyTorch's ``torch.maximum``: at a tie each argument gets half). It has no
    derivative of its own here (it is constant almost everywhere)."""
    # written Θ, not H: H is the hidden size in every display
    name, latex, numpy, text = "step", r"\Theta", "heaviside", "Θ"

    @staticmethod
    def scalar(x):
        return sympy.Heaviside(x, sympy.S.Half)

    @classmethod
    def _sup_abs_derivative(cls):
        return sympy.S.Zero


_NEW = (Exp, Log, Softplus, LogSigmoid, Silu, Abs, Sqrt, Cos, Sin)

#: Functions a cell definition may call, by spec-language name.
FUNCTIONS: dict[str, type[Elementwise]] = {cls.name: cls for cls in (Sigmoid, Tanh, Relu) + _NEW}

for _f in FUNCTIONS.values():                  # the one inverse of f -> f'
    _f.derivative.primitive = _f

Reciprocal.derivative.primitive = Reciprocal

#: Every primitive node, derivatives included.
ALL_PRIMITIVES: tuple[type[Elementwise], ...] = (
    Sigmoid, SigmoidPrime, Tanh, TanhPrime, Relu, ReluPrime) + tuple(
    c for f in _NEW for c in (f, f.derivative)) + (Reciprocal, ReciprocalPrime, Step)



class PrimitiveError(ArithmeticError):
    """A registered derivative that contradicts what SymPy computes from the definition."""


class ActivationValue(sympy.Symbol):
    """f(u) as a scalar symbol, printed ``\\sigma(u)``: the variable of the polynomial form of
    a derivative."""

    def __new__(cls, prim):
        obj = sympy.Symbol.__new__(cls, "act_" + prim.name, real=True)
        obj.prim_latex = prim.latex
        return obj

    def _project_latex(self, printer):
        return r"%s(u)" % self.prim_latex


@functools.lru_cache(maxsize=None)
def gamma_identity(prim):
    """(p, gamma, a, u_star) for a primitive f whose derivative is a quadratic polynomial
    p(U) in U = f(u): gamma = ``prim.gamma()`` and gamma - p(U) = a (U - u_star)^2, verified
    by expansion (:class:`PrimitiveError` when it is not); None when f' is not such a
    polynomial in f (relu)."""
    u = sympy.Symbol("u", real=True)
    U = ActivationValue(prim)
    p = prim.derivative.scalar(u).subs(prim.scalar(u), U)
    if u in p.free_symbols or not p.is_polynomial(U) or sympy.degree(p, U) != 2:
        return None
    gamma = prim.gamma()
    gap = sympy.expand(gamma - p)
    crit = sympy.solve(sympy.diff(p, U), U)
    if len(crit) != 1:
        return None
    a = sympy.Poly(gap, U).LC()
    if sympy.expand(gap - a * (U - crit[0]) ** 2) != 0:
        raise PrimitiveError(f"{prim.name}: gamma - {prim.derivative.name} = {gap} is not "
                             f"{a} (U - {crit[0]})^2; gamma or the derivative is wrong")
    return p, gamma, a, crit[0]
