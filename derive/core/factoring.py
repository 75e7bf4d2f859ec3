"""Factoring the polynomials of the Hadamard normal form over the rationals.

The polynomials :class:`~derive.core.algebra.VecPoly` factors have one indeterminate per atom,
and most of them are of degree 1 in some atom ``x``: ``p = a x + b`` with ``a`` and ``b`` free
of ``x``. Then every factor free of ``x`` divides both ``a`` and ``b``, so
``p = g (a' x + b')`` with ``g = gcd(a, b)``, and ``a' x + b'``, of degree 1 in ``x`` with
coprime coefficients, is irreducible: only ``g``, in fewer indeterminates, is left to factor.
That takes a gcd where SymPy's general multivariate factoring (Wang's algorithm) is several
times slower. Irreducible factors are unique up to units, so :func:`factor_list` gives SymPy's
factorization: the same factors (integer coefficients with gcd 1) up to their order and signs.
"""
from __future__ import annotations

from math import gcd

import sympy


def factor_list(poly: sympy.Poly):
    """``(coeff, [(factor, multiplicity), ...])`` of a non-zero polynomial over QQ:
    ``poly = coeff * prod(factor ** multiplicity)``, each factor irreducible over QQ with
    integer coefficients of gcd 1 (as ``sympy.Poly.factor_list``, up to the order and the
    signs of the factors)."""
    if poly.is_zero or poly.is_ground:
        return poly.factor_list()
    gens = poly.gens
    factors: list = []
    monoms = poly.monoms()
    low = [min(m[i] for m in monoms) for i in range(len(gens))]
    for i, k in enumerate(low):
        if k:
            factors.append((sympy.Poly(gens[i], *gens, domain=poly.domain), k))
    rest = poly
    if any(low):
        rest = sympy.Poly.from_dict({tuple(e - m for e, m in zip(exps, low)): c
                                     for exps, c in poly.terms()}, *gens, domain=poly.domain)
    factors += _factors(rest)
    lc = poly.LC()
    for f, k in factors:
        lc = lc / f.LC() ** k
    return lc, factors


def _factors(p):
    """The irreducible factors of ``p`` (no monomial divides it), with their multiplicities."""
    if p.is_ground:
        return []
    gens = p.gens
    linear = [i for i in range(len(gens)) if p.degree(gens[i]) == 1]
    if not linear:
        return list(p.factor_list()[1])
    terms = p.terms()
    # the indeterminate whose coefficient a has the fewest terms: a monomial a (often 1)
    # makes gcd(a, b) the monomial of the exponents a and b share
    i = min(linear, key=lambda i: (sum(1 for e, _ in terms if e[i] == 1), i))
    a = {e[:i] + (0,) + e[i + 1:]: c for e, c in terms if e[i] == 1}
    b = {e: c for e, c in terms if e[i] == 0}
    if len(a) == 1:
        (m, _), = a.items()
        low = tuple(min([k] + [e[j] for e in b]) for j, k in enumerate(m))
        if not any(low):
            return [(_primitive(p), 1)]
        g = sympy.Poly.from_dict({low: 1}, *gens, domain=p.domain)
    else:
        g = sympy.Poly.from_dict(a, *gens, domain=p.domain).gcd(
            sympy.Poly.from_dict(b, *gens, domain=p.domain))
    q = p.exquo(g) if not g.is_ground else p
    return [(_primitive(q), 1)] + _factors(g)


def _primitive(q):
    """``q`` scaled to integer coefficients with gcd 1."""
    coeffs = [sympy.Rational(c) for c in q.coeffs()]
    den = 1
    for c in coeffs:
        den = den * int(c.q) // gcd(den, int(c.q))
    nums = [int(c * den) for c in coeffs]
    g = 0
    for n in nums:
        g = gcd(g, n)
    return q.mul_ground(sympy.Rational(den, g))
