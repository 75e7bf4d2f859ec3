"""The two normal forms of derived expressions (the constructors, which never reorder, are
:mod:`derive.core.build`'s, re-exported here). They keep results in the shape a person writes:

* :class:`VecPoly`: a column-vector expression built from ``+``, scalar multiples and
  Hadamard products, expanded into a sum of Hadamard monomials with rational coefficients,
  like terms collected, common factors pulled out (``a*c + b*c -> (a + b)*c``) and a stable
  term order.
* Jacobians live in :mod:`derive.core.linmap` as sums of ``diag(v) M1 M2 ...`` chains.
"""
from __future__ import annotations

from fractions import Fraction
from functools import total_ordering

import sympy
from sympy import HadamardProduct, MatAdd, MatMul, OneMatrix, ZeroMatrix

from derive.core.binary import Binary
# the constructors, re-exported: the engine's modules import them from here
from derive.core.build import add, diag, hadamard, matmul, ones, scale, transpose  # noqa: F401
from derive.core.factoring import factor_list
from derive.core.matrixstate import Factor, MatTVec, MatVec, Outer
from derive.core.ordering import atom_rank
from derive.core.primitives import Elementwise, Reciprocal
from derive.core.reduction import Broadcast, SumOf
from derive.core.symbols import Centred


def broadcast(s, n):
    """The scalar ``s`` as an n-vector, ``Broadcast(s, n)``; a constant ``c`` gives ``c 1_n``."""
    p = VecPoly.from_expr(s)
    if all(not m for m, _ in p.terms):                 # a rational constant (or zero)
        c = p.terms[0][1] if p.terms else Fraction(0)
        return scale(sympy.Rational(c.numerator, c.denominator), OneMatrix(n, 1))
    return Broadcast(p.to_expr(), n)


def apply_constant(m, v):
    """The constant matrix ``m`` applied to the vector ``v``: a parameter product ``M v``,
    or, for the all-ones matrices of the reductions, ``1^T v = SumOf(v)`` and ``1_n s =
    Broadcast(s, n)``."""
    if isinstance(m, OneMatrix) and m.shape[0] == 1:
        return SumOf(v)
    if isinstance(m, OneMatrix) and m.shape[1] == 1:
        return broadcast(v, m.shape[0])
    if isinstance(m, Factor):                          # a matrix state's linear maps
        return m.apply(v)
    return matmul(m, v)


# -- Hadamard polynomials ----------------------------------------------------------------

@total_ordering
class VecPoly:
    """A sum of Hadamard monomials: {(atom, atom, ...): Fraction coefficient}.

    Atoms are SymPy matrix expressions that are not sums, scalar multiples or Hadamard
    products (symbols, ``f(u)`` nodes, matrix-vector products). The empty monomial is the
    all-ones vector. Instances are immutable and hashable.
    """

    __slots__ = ("terms", "shape", "_key")

    def __init__(self, terms: dict, shape):
        clean = {m: c for m, c in terms.items() if c != 0}
        self.terms = tuple(sorted(clean.items(), key=lambda mc: _monomial_key(mc[0])))
        self.shape = tuple(shape)
        self._key = tuple((tuple(map(atom_rank, m)), c) for m, c in self.terms)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def one(cls, shape):
        return cls({(): Fraction(1)}, shape)

    @classmethod
    def zero(cls, shape):
        return cls({}, shape)

    @classmethod
    def atom(cls, a):
        if isinstance(a, ZeroMatrix):          # W (h - h): a product that normalised to 0
            return cls.zero(a.shape)
        return cls({(a,): Fraction(1)}, a.shape)

    @classmethod
    def from_expr(cls, e) -> "VecPoly":
        """Expand a vector expression into a Hadamard polynomial (memoised: a pure function
        of the expression's tree, and VecPolys are immutable)."""
        hit = _FROM_EXPR.get(e)
        if hit is None:
            hit = _FROM_EXPR[e] = cls._from_expr(e)
        return hit

    @classmethod
    def _from_expr(cls, e) -> "VecPoly":
        if isinstance(e, MatAdd):
            out = cls.zero(e.shape)
            for a in e.args:
                out = out + cls.from_expr(a)
            return out
        if isinstance(e, HadamardProduct):
            out = cls.one(e.shape)
            for a in e.args:
                out = out * cls.from_expr(a)
            return out
        if isinstance(e, ZeroMatrix):
            return cls.zero(e.shape)
        if isinstance(e, OneMatrix):
            return cls.one(e.shape)
        if isinstance(e, MatMul):
            c, mats = e.as_coeff_matrices()
            if c != 1:
                inner = mats[0] if len(mats) == 1 else MatMul(*mats, evaluate=False)
                return cls.from_expr(inner).scaled(c)
        if isinstance(e, Elementwise):
            return cls.atom(type(e)(cls.from_expr(e.arg).to_expr()))
        if isinstance(e, (Outer, MatVec, MatTVec)):
            return _bilinear_atom(type(e), [cls.from_expr(a) for a in e.args], e.shape)
        if isinstance(e, Binary):
            return cls.atom(type(e)(*(cls.from_expr(a).to_expr() for a in e.args)))
        if isinstance(e, SumOf):
            inner = _uncentred(cls.from_expr(e.arg))
            return _trace_form(inner) or _linear_atom(lambda v: SumOf(v), inner, e.shape)
        if isinstance(e, Broadcast):
            return _linear_atom(lambda s: Broadcast(s, e.shape[0]), cls.from_expr(e.arg), e.shape)
        if isinstance(e, MatMul):
            # matrix times vector: normalise the vector operand, keep the product an atom
            *mats, v = e.args
            return cls.atom(matmul(*mats, cls.from_expr(v).to_expr()))
        return cls.atom(e)

    # -- arithmetic --------------------------------------------------------------------
    def __add__(self, other):
        acc = dict(self.terms)
        for m, c in other.terms:
            acc[m] = acc.get(m, 0) + c
        return VecPoly(acc, self.shape)

    def __neg__(self):
        return self.scaled(-1)

    def __sub__(self, other):
        return self + (-other)

    def __mul__(self, other):
        """Hadamard product; broadcast scalars of one monomial multiply inside one broadcast
        (``Broadcast(a) * Broadcast(b) = Broadcast(a b)``)."""
        acc: dict = {}
        for m1, c1 in self.terms:
            for m2, c2 in other.terms:
                m = tuple(sorted(m1 + m2, key=atom_rank))
                c = c1 * c2
                if sum(isinstance(a, Broadcast) for a in m) > 1:
                    m, c = _merge_broadcasts(m, c)
                acc[m] = acc.get(m, 0) + c
        return VecPoly(acc, self.shape)

    def scaled(self, c):
        if not isinstance(c, Fraction):
            c = Fraction(int(sympy.Rational(c).p), int(sympy.Rational(c).q))
        return VecPoly({m: k * c for m, k in self.terms}, self.shape)

    def is_zero(self):
        return not self.terms

    def reshaped(self, shape):
        """A constant polynomial (no atoms) of another shape: c 1_1 -> c 1_n."""
        return VecPoly(dict(self.terms), shape)

    def is_one(self):
        return self.terms == (((), Fraction(1)),)

    def __eq__(self, other):
        return isinstance(other, VecPoly) and self._key == other._key

    def __lt__(self, other):
        return self._key < other._key

    def __hash__(self):
        return hash(self._key)

    def __repr__(self):
        return f"VecPoly({self.to_expr()})"

    # -- back to SymPy -----------------------------------------------------------------
    def to_expr(self):
        """The SymPy expression, factored.

        Hadamard products are commutative, associative and distribute over ``+``, so the
        polynomial ring over the atoms is the right algebra: SymPy's multivariate
        ``factor`` (over the rationals) gives ``(1 - z) * (W_hn h + b_hn)`` instead of its
        four expanded monomials. Factors are normalised so their first term is positive
        (``1 - z``, not ``-(z - 1)``)."""
        if self.is_zero():
            return ZeroMatrix(*self.shape)
        if len(self.terms) == 1:
            (m, c), = self.terms
            return _monomial_expr(m, c, self.shape)
        return _factored_expr(self)

    def flat_expr(self):
        """The expanded sum of monomials in canonical order, positive terms first (no factoring)."""
        if self.is_zero():
            return ZeroMatrix(*self.shape)
        ordered = sorted(self.terms, key=lambda mc: mc[1] < 0)      # stable: keeps canonical order
        return add([_monomial_expr(m, c, self.shape) for m, c in ordered], self.shape)


_FROM_EXPR: dict = {}


def _uncentred(p: VecPoly) -> VecPoly:
    """``p`` without its monomials ``s d`` (broadcast scalars times one centred vector d):
    under ``1^T`` they vanish, ``1^T (s d) = s 1^T d = 0``."""
    def centred(m):
        rest = [a for a in m if not isinstance(a, Broadcast)]
        return len(rest) == 1 and isinstance(rest[0], Centred)
    if not any(centred(m) for m, _ in p.terms):
        return p
    return VecPoly({m: c for m, c in p.terms if not centred(m)}, p.shape)


def _trace_form(inner: VecPoly):
    """``1^T (P * vec(v w^T)) = v^T P w``: a sum whose one monomial holds an outer product and
    other matrix-state factors, as ``Sum(v * (P w))`` (no H^2 temporary); else None."""
    if len(inner.terms) != 1:
        return None
    (m, c), = inner.terms
    outers = [a for a in m if isinstance(a, Outer)]
    rest = [a for a in m if not isinstance(a, Outer)]
    if len(outers) != 1 or not rest or any(isinstance(a, Broadcast) for a in rest):
        return None
    v, w = outers[0].args
    return VecPoly.from_expr(SumOf(hadamard([v, MatVec(hadamard(rest), w)]))).scaled(c)


def _linear_atom(make, inner: VecPoly, shape) -> VecPoly:
    """The atom ``make(inner)`` of a linear node (SumOf, Broadcast) with the rational factor of
    its argument pulled out (``SumOf(-2 d) = -2 SumOf(d)``); a constant argument stays a constant
    (``Broadcast(c) = c 1_n``)."""
    if inner.is_zero():
        return VecPoly.zero(shape)
    if isinstance(make(inner.to_expr()), Broadcast) and all(not m for m, _ in inner.terms):
        return inner.reshaped(shape)
    c = inner.terms[0][1] if len(inner.terms) == 1 else Fraction(-1 if inner.terms[0][1] < 0 else 1)
    inner, outside = inner.scaled(1 / c), VecPoly.one((1, 1))
    if len(inner.terms) == 1 and isinstance(make(inner.to_expr()), SumOf):
        (m, _), = inner.terms          # SumOf(v Broadcast(s)) = s SumOf(v): the scalars come out
        scalars = [a for a in m if isinstance(a, Broadcast)]
        if scalars and len(scalars) < len(m):
            for a in scalars:
                outside = outside * VecPoly.from_expr(a.arg)
            inner = VecPoly({tuple(a for a in m if not isinstance(a, Broadcast)): Fraction(1)}, inner.shape)
    return (VecPoly.atom(make(inner.to_expr())) * outside).scaled(c)


def _bilinear_atom(node, args, shape) -> VecPoly:
    """``node(a, b)`` for a bilinear node (Outer, MatVec, MatTVec) with the rational factor and
    the broadcast scalars of each single-monomial argument pulled out:
    ``MatVec(i' dC, k) = i' MatVec(dC, k)``."""
    outside, c, clean = VecPoly.one((1, 1)), Fraction(1), []
    for a in args:
        if len(a.terms) == 1:
            (m, k), = a.terms
            scalars = [x for x in m if isinstance(x, Broadcast)]
            if scalars and len(scalars) < len(m):
                for x in scalars:
                    outside = outside * VecPoly.from_expr(x.arg)
                m = tuple(x for x in m if not isinstance(x, Broadcast))
            c, a = c * k, VecPoly({m: Fraction(1)}, a.shape)
        clean.append(a)
    out = VecPoly.atom(node(*(a.to_expr() for a in clean)))
    if not outside.is_one():
        out = out * VecPoly.from_expr(broadcast(outside.to_expr(), shape[0]))
    return out.scaled(c)


def _merge_broadcasts(m, c):
    """A monomial's broadcast atoms as one: (the other atoms + Broadcast(product), coefficient)."""
    scalars = [a for a in m if isinstance(a, Broadcast)]
    inner = VecPoly.one((1, 1))
    for a in scalars:
        inner = inner * VecPoly.from_expr(a.arg)
    merged = _linear_atom(lambda s: Broadcast(s, scalars[0].shape[0]), inner, scalars[0].shape)
    (mm, cc), = merged.terms
    return tuple(sorted([a for a in m if not isinstance(a, Broadcast)] + list(mm), key=atom_rank)), c * cc


_FACTOR_CACHE: dict = {}


def _factored_expr(poly: VecPoly):
    # keyed by the atoms themselves: VecPoly equality compares names only, and two cells may
    # use one name for symbols of different shapes
    cache_key = (poly.terms, poly.shape)
    cached = _FACTOR_CACHE.get(cache_key)
    if cached is not None:
        return cached
    atoms = sorted({a for m, _ in poly.terms for a in m}, key=atom_rank)
    out = _rational_expr(poly) if any(isinstance(a, Reciprocal) for a in atoms) else None
    if out is None:
        out = _polynomial_expr(poly, atoms)
    _FACTOR_CACHE[cache_key] = out
    return out


def _polynomial_expr(poly: VecPoly, atoms):
    """The polynomial factored over the rationals, atoms as indeterminates."""
    syms = sympy.symbols(f"_a0:{len(atoms)}", commutative=True)
    to_sym = dict(zip(atoms, syms))
    to_atom = dict(zip(syms, atoms))
    if not atoms:                      # a constant (never more than one monomial)
        return _monomial_expr((), poly.terms[0][1], poly.shape)
    index = {a: k for k, a in enumerate(atoms)}
    terms: dict = {}
    for m, c in poly.terms:            # the polynomial built directly (no expression first)
        exps = [0] * len(atoms)
        for a in m:
            exps[index[a]] += 1
        terms[tuple(exps)] = sympy.Rational(c.numerator, c.denominator)
    coeff, factors = factor_list(sympy.Poly.from_dict(terms, *syms, domain="QQ"))
    return _assemble(sympy.Rational(coeff), [(f.as_expr(), k) for f, k in factors], [], to_atom,
                     poly.shape)


def _rational_expr(poly: VecPoly):
    """A polynomial with reciprocal atoms 1/u as one fraction in lowest terms: every 1/u
    becomes 1/(u's polynomial), SymPy's ``cancel`` brings the rational function to p/q with
    gcd(p, q) = 1, and both are factored; the factors of q come back as reciprocal atoms
    (``delta_i' (1 - i/(f + i)) - delta_f' f/(f + i)  ->  f (delta_i' - delta_f')/(f + i)^2``).
    Used only when terms cancel (p has fewer monomials than the polynomial had); otherwise
    None, and the reciprocals stay atoms of the polynomial form."""
    to_sym: dict = {}

    def scalar_of(vp):
        return sympy.Add(*[sympy.Rational(c.numerator, c.denominator) *
                           sympy.Mul(*[value(a) for a in m]) for m, c in vp.terms])

    def value(a):
        if isinstance(a, Reciprocal):
            return 1 / scalar_of(VecPoly.from_expr(a.arg))
        if a not in to_sym:
            to_sym[a] = sympy.Symbol(f"_a{len(to_sym)}", commutative=True)
        return to_sym[a]

    num, den = sympy.fraction(sympy.cancel(scalar_of(poly)))
    if len(sympy.Add.make_args(sympy.expand(num))) >= len(poly.terms):
        return None
    to_atom = {v: k for k, v in to_sym.items()}
    cn, fn = sympy.factor_list(num)
    cd, fd = sympy.factor_list(den)
    coeff, denominators = cn / cd, []
    for base, power in fd:
        part = VecPoly.atom(to_atom[base]) if base.is_Symbol else _poly_from_scalar(base, to_atom, poly.shape)
        if part.terms[0][1] < 0:
            part, coeff = -part, coeff * (-1) ** int(power)
        denominators += [Reciprocal(part.to_expr())] * int(power)
    return _assemble(coeff, fn, denominators, to_atom, poly.shape)


def _assemble(coeff, factors, extra_atoms, to_atom, shape):
    """coeff * (the product of the factors) * (extra atoms) as a Hadamard product: symbols
    back to their atoms, sums back to VecPolys with a positive first term and grouped
    (:func:`_collected`), one minus sign moved into a sum where that reads better."""
    monomial_atoms, sums = list(extra_atoms), []
    for base, power in factors:
        if base.is_Symbol:
            monomial_atoms += [to_atom[base]] * int(power)
            continue
        part = _poly_from_scalar(base, to_atom, shape)
        first_coeff = part.terms[0][1]
        if first_coeff < 0:           # make the first term positive: 1 - z, not z - 1
            part = -part
            coeff *= (-1) ** int(power)
        sums += [part] * int(power)
    monomial_atoms.sort(key=atom_rank)
    sums.sort()
    if coeff < 0 and sums:
        # move the minus sign into a sum: sigma'(i) * (g - c_prev), not -(sigma'(i) * (c_prev - g))
        # (choose the factor whose negation loses the fewest positive terms)
        odd = [i for i in range(len(sums)) if sums.count(sums[i]) % 2 == 1]
        k = max(odd, key=lambda i: (_positives(-sums[i]) - _positives(sums[i]), -i)) if odd else None
        if k is not None:
            sums[k] = -sums[k]
            coeff = -coeff
    factors_expr = monomial_atoms + [_collected(p) for p in sums]
    if not factors_expr:
        return scale(coeff, OneMatrix(*shape))
    return scale(coeff, hadamard(factors_expr))


def _collected(p: VecPoly):
    """An irreducible sum, with the terms that share atoms grouped: the atom found in most
    terms (at least two, not all) is pulled out of those terms, with their other common
    atoms, and the rest is treated the same way:
    ``f + w*g*s - w*c*s  ->  f + w*s*(g - c)``."""
    counts: dict = {}
    for m, _ in p.terms:
        for a in set(m):
            counts[a] = counts.get(a, 0) + 1
    best = [a for a, n in counts.items() if 2 <= n < len(p.terms)]
    if not best:
        return p.flat_expr()
    pivot = min(best, key=lambda a: (-counts[a], atom_rank(a)))
    group = VecPoly({m: c for m, c in p.terms if pivot in m}, p.shape)
    rest = VecPoly({m: c for m, c in p.terms if pivot not in m}, p.shape)
    return add([group.to_expr(), _collected(rest) if len(rest.terms) > 1 else rest.to_expr()],
               p.shape)


def _positives(p: VecPoly) -> int:
    return sum(1 for _, c in p.terms if c > 0)


def _poly_from_scalar(expr, to_atom, shape) -> VecPoly:
    """A commutative polynomial in the placeholder symbols back to a VecPoly."""
    terms: dict = {}
    for term in sympy.Add.make_args(sympy.expand(expr)):
        c, rest = term.as_coeff_Mul()
        atoms = []
        for f in sympy.Mul.make_args(rest):
            if f == 1:
                continue
            base, e = f.as_base_exp()
            atoms += [to_atom[base]] * int(e)
        key = tuple(sorted(atoms, key=atom_rank))
        terms[key] = terms.get(key, 0) + Fraction(int(c.p), int(c.q))
    return VecPoly(terms, shape)


def _monomial_key(m):
    return (len(m), tuple(map(atom_rank, m)))


def _monomial_expr(m, c, shape):
    if not m:
        return scale(sympy.Rational(c.numerator, c.denominator), OneMatrix(*shape))
    return scale(sympy.Rational(c.numerator, c.denominator), hadamard(list(m)))


def vsimplify(e):
    """Normal form of a column-vector expression (see :class:`VecPoly`)."""
    return VecPoly.from_expr(e).to_expr()
