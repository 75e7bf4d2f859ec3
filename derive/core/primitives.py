"""Elementwise primitives as SymPy matrix expressions, each with its derivative beside it.

Every primitive ``f`` is a :class:`Elementwise` node ``f(u)`` applied entry by entry to a
column vector ``u``. Next to its definition it registers, in the style of JAX primitives:

* ``scalar(x)``: the scalar SymPy definition (used when a cell is expanded to explicit entries);
* ``derivative``: the primitive node for ``f'`` (so ``d f(u) = diag(f'(u)) du`` and the
  transpose rule ``delta_u = f'(u) * delta``);
* ``from_output``: ``f'`` written with the output ``y = f(u)`` (``sigma' = y(1-y)``,
  ``tanh' = 1 - y^2``), which kernels use when ``y`` is already computed;
* ``numpy``: the name of the stable NumPy implementation in :mod:`derive.codegen.np_primitives`.

The derivative rules are facts to be proved, not trusted: ``tests/test_primitives.py``
checks every ``derivative.scalar`` against SymPy's own ``diff`` of ``scalar``.
"""
from __future__ import annotations

import functools

import sympy
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
        """sup over the reals of f' (every f' here is >= 0, so this is sup |f'|): the gamma
        of Pascanu et al. (2013), section 2.1. Computed by SymPy, not typed in."""
        if cls not in _GAMMA_CACHE:          # (setdefault would recompute it every call)
            _GAMMA_CACHE[cls] = cls._sup_abs_derivative()
        return _GAMMA_CACHE[cls]

    @classmethod
    def _sup_abs_derivative(cls):
        """f' is smooth on the reals. If f'' has exactly one real zero c and f^(3)(c) < 0, c is
        the only critical point and a strict local maximum, hence the global one:
        sup f' = f'(c). Otherwise the supremum is the largest of f' at the critical points and
        its limits at -oo and +oo."""
        x = sympy.Symbol("x", real=True)
        fp = cls.derivative.scalar(x)
        fpp = sympy.diff(fp, x)
        critical = sympy.solve(fpp, x)
        if len(critical) == 1 and (sympy.diff(fpp, x).subs(x, critical[0]) < 0) is sympy.true:
            return sympy.nsimplify(fp.subs(x, critical[0]))
        candidates = [fp.subs(x, c) for c in critical]
        candidates += [sympy.limit(fp, x, sympy.oo), sympy.limit(fp, x, -sympy.oo)]
        return sympy.Max(*candidates)


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
    """relu'(x) = 1 for x > 0 and 0 for x <= 0 (the subgradient PyTorch uses at 0)."""
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


#: Functions a cell definition may call, by spec-language name.
FUNCTIONS: dict[str, type[Elementwise]] = {cls.name: cls for cls in (Sigmoid, Tanh, Relu)}

for _f in FUNCTIONS.values():                  # the one inverse of f -> f'
    _f.derivative.primitive = _f

#: Every primitive node, derivatives included.
ALL_PRIMITIVES: tuple[type[Elementwise], ...] = (
    Sigmoid, SigmoidPrime, Tanh, TanhPrime, Relu, ReluPrime)

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
