"""The base of the elementwise primitives: ``f(u)`` applied entry by entry, and gamma = sup |f'|.

:class:`Elementwise` is a SymPy matrix expression; each primitive (:mod:`derive.core.primitives`)
subclasses it with its scalar definition, its derivative node and its NumPy name. gamma, the
bound of Pascanu et al. (2013), is computed from the registered derivative by SymPy.
"""
from __future__ import annotations

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
    #: derive with f' written in f's own output (``from_output``): ``d exp(u) = exp(u) du``,
    #: ``d (1/u) = -(1/u)^2 du``, so derived results reuse the forward value
    derive_with_output = False

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
            critical = real_zeros(fpp, x)
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
        critical = real_zeros(fpp, x)
        if len(critical) == 1 and (sympy.diff(fpp, x).subs(x, critical[0]) < 0) is sympy.true:
            return sympy.nsimplify(fp.subs(x, critical[0]))
        candidates = [fp.subs(x, c) for c in critical]
        candidates += [sympy.limit(fp, x, sympy.oo), sympy.limit(fp, x, -sympy.oo)]
        return sympy.Max(*(abs(c) for c in candidates))


_NOT_REAL = (sympy.zoo, sympy.oo, -sympy.oo, sympy.nan)


def real_zeros(f, x):
    """The real zeros of ``f(x)`` that ``sympy.solve(f, x)`` returns for a real ``x``, in its
    order: solve's candidates unchecked and unsimplified; those that are infinite or known to be
    non-real dropped, the others simplified (an atom such as 0 is its own simplification) and
    kept if ``f`` at them is not known to be nonzero (``checksol``'s rule: "keep if the check is
    not False"). The same roots as solve (equal values; the same expressions where they are
    atoms), without solve's ``simplify`` and ``checksol`` calls on candidates such as 0, zoo and
    I*pi, each of which imports ``sympy.physics.units`` (about 0.2 s per process)."""
    keep = []
    for r in sympy.solve(f, x, check=False, simplify=False):
        if r.has(*_NOT_REAL) or r.is_real is False:     # zoo, I*pi: rejected unsimplified
            continue
        r = r if not r.args else sympy.simplify(r)      # simplify returns an atom unchanged
        if r.has(*_NOT_REAL) or r.is_real is False:
            continue
        v = f.subs(x, r)
        if v.has(*_NOT_REAL):
            continue
        if v.is_zero is False or (v.is_zero is None and sympy.simplify(v).is_zero is False):
            continue
        keep.append(r)
    return keep


def limit_at(f, x, end):
    """lim f(x) as x -> end (+-oo): f evaluated in the extended reals when that gives a finite
    number (no indeterminate form arose: SymPy returns nan for oo - oo or 0 * oo), else
    SymPy's limit (Gruntz's algorithm, exact but slow)."""
    v = f.subs(x, end)
    if v.is_number and v.is_finite and v is not sympy.nan:
        return v
    return sympy.limit(f, x, end)


_limit_at = limit_at
_GAMMA_CACHE: dict = {}
