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

import sympy
from sympy.calculus.util import function_range
from sympy.matrices.expressions import MatrixExpr


class Elementwise(MatrixExpr):
    """``f(u)``: a scalar function applied to every entry of the matrix expression ``u``."""

    name: str = ""          # spec-language and NumPy name, e.g. "sigmoid"
    latex: str = ""         # LaTeX operator, e.g. r"\sigma"
    text: str = ""          # Unicode name in text and pretty output, e.g. "σ'"
    numpy: str = ""         # function in derive.codegen.np_primitives
    derivative: type | None = None
    primitive: type | None = None   # on a derivative node f': the primitive f (set below)
    is_derivative = False   # True for f' nodes (sigma', tanh', relu')
    domain = sympy.S.Reals  # where f (and f') is defined: the reals, or (0, oo) for log, sqrt

    def __new__(cls, arg):
        return MatrixExpr.__new__(cls, arg)

    @property
    def arg(self):
        return self.args[0]

    @property
    def shape(self):
        return self.arg.shape

    def _entry(self, i, j, **kwargs):
        return self.scalar(self.arg._entry(i, j, **kwargs))

    def doit(self, **hints):
        return type(self)(self.arg.doit(**hints)) if hints.get("deep", True) else self

    def _eval_transpose(self):
        return None

    # -- printmethod hooks: SymPy's printers (sympy.latex, sympy.pretty, str, Jupyter) call
    # these before their dispatch on the class name
    def _latex(self, printer):
        """``\\sigma'\\left(u\\right)``: the operator of :attr:`latex` applied to the argument."""
        return r"%s\left(%s\right)" % (self.latex, printer._print(self.arg))

    def _pretty(self, printer):
        """``σ'(u)`` as a 2-D picture (the argument may be taller than one line)."""
        from sympy.printing.pretty.stringpict import prettyForm
        arg = prettyForm(*printer._print(self.arg).parens())
        return prettyForm(*arg.left(self.text or self.name))

    def _sympystr(self, printer):
        """``SigmoidPrime(u)``: the constructor form (``str`` and ``repr`` of SymPy matrix
        expressions; :mod:`derive.printing.text` prints ``σ'(u)``)."""
        return "%s(%s)" % (type(self).__name__, printer._print(self.arg))

    @staticmethod
    def scalar(x):  # pragma: no cover - overridden
        raise NotImplementedError

    @staticmethod
    def from_output(y):
        """f'(u) in terms of y = f(u); None when f' is not a function of y alone."""
        return None

    @classmethod
    def gamma(cls):
        """sup of |f'| over the domain: the gamma of Pascanu et al. (2013), section 2.1;
        ``sympy.oo`` when f' is unbounded (exp, log, sqrt). Computed by SymPy, not typed in."""
        if cls not in _GAMMA_CACHE:          # (setdefault would recompute it every call)
            _GAMMA_CACHE[cls] = cls._sup_abs_derivative()
        return _GAMMA_CACHE[cls]

    @classmethod
    def _sup_abs_derivative(cls):
        """The range of f' over the domain by SymPy's ``function_range`` (an interval [a, b]):
        sup |f'| = max(|a|, |b|). When SymPy cannot find the range: if f'' has exactly one real
        zero c and f^(3)(c) < 0, c is the only critical point and a strict local maximum, hence
        the global one: sup f' = f'(c); otherwise the largest |f'| at the critical points and
        its limits at -oo and +oo."""
        x = sympy.Symbol("x", real=True)
        fp = cls.derivative.scalar(x)
        fpp = sympy.diff(fp, x)
        if cls.domain == sympy.S.Reals:
            # the fast case first (sigmoid, tanh): f' smooth with one critical point, a strict
            # maximum; then f' decreases towards both ends, so sup |f'| is the larger of f'(c)
            # and |f'| at -oo and +oo
            critical = sympy.solve(fpp, x)
            if len(critical) == 1 and (sympy.diff(fpp, x).subs(x, critical[0]) < 0) is sympy.true:
                ends = [_limit_at(fp, x, sympy.oo), _limit_at(fp, x, -sympy.oo)]
                if all(e.is_finite for e in ends):
                    return sympy.Max(sympy.nsimplify(fp.subs(x, critical[0])), *map(abs, ends))
        try:
            rng = function_range(fp, x, cls.domain)
        except NotImplementedError:
            rng = None
        if isinstance(rng, sympy.Interval):
            return sympy.Max(abs(rng.inf), abs(rng.sup))
        critical = sympy.solve(fpp, x)
        if len(critical) == 1 and (sympy.diff(fpp, x).subs(x, critical[0]) < 0) is sympy.true:
            return sympy.nsimplify(fp.subs(x, critical[0]))
        candidates = [fp.subs(x, c) for c in critical]
        candidates += [sympy.limit(fp, x, sympy.oo), sympy.limit(fp, x, -sympy.oo)]
        return sympy.Max(*(abs(c) for c in candidates))


def _limit_at(f, x, end):
    """lim f(x) as x -> end (+-oo): f evaluated in the extended reals when that gives a finite
    number (no indeterminate form arose: SymPy returns nan for oo - oo or 0 * oo), else
    SymPy's limit (Gruntz's algorithm, exact but slow)."""
    v = f.subs(x, end)
    if v.is_number and v.is_finite and v is not sympy.nan:
        return v
    return sympy.limit(f, x, end)


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


_NEW = (Exp, Log, Softplus, LogSigmoid, Silu, Abs, Sqrt, Cos, Sin)

#: Functions a cell definition may call, by spec-language name.
FUNCTIONS: dict[str, type[Elementwise]] = {cls.name: cls for cls in (Sigmoid, Tanh, Relu) + _NEW}

for _f in FUNCTIONS.values():                  # the one inverse of f -> f'
    _f.derivative.primitive = _f

#: Every primitive node, derivatives included.
ALL_PRIMITIVES: tuple[type[Elementwise], ...] = (
    Sigmoid, SigmoidPrime, Tanh, TanhPrime, Relu, ReluPrime) + tuple(
    c for f in _NEW for c in (f, f.derivative))

_GAMMA_CACHE: dict = {}


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
