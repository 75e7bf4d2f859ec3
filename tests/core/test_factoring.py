"""derive.core.factoring.factor_list is SymPy's factorization over QQ (the same irreducible
factors with integer coefficients of gcd 1, up to order and signs), on polynomials of the
normal form's kinds: degree 1 in some indeterminate (the fast path), monomial content,
repeated factors, a gcd that is not a monomial, and none of degree 1 (SymPy's own path)."""
import random

import pytest
import sympy

from derive.core.factoring import factor_list

X = sympy.symbols("_a0:5")
a, b, c, d, e = X


def _normal(coeff, factors):
    out = []
    for f, k in factors:
        if f.LC() < 0:
            f, coeff = -f, coeff * (-1) ** k
        out.append((str(f.as_expr()), k))
    return sympy.Rational(coeff), sorted(out)


CASES = [
    a * b + a * c,
    sympy.Rational(1, 2) * a * b - sympy.Rational(3, 4) * b * c + 2 * a - 3 * c,
    (a + b) * (c - d) * e,
    (a - b) ** 2 * (a + c),
    a ** 2 * (b + c) ** 3,
    (a * b + c * d) * (a * c - b * d + 1),
    (b + c) * a + (b + c) * d,                      # gcd(a-coefficient, rest) = b + c
    a ** 2 + b ** 2,                                # no indeterminate of degree 1
    (a ** 2 - b ** 2) * (c ** 2 + d),
    -7 * a * b * c,
    sympy.Rational(-2, 3) * (1 - a) * (b - c) * (b - c),
]


@pytest.mark.parametrize("expr", CASES, ids=[str(c) for c in CASES])
def test_factor_list_is_sympys_factorization(expr):
    p = sympy.Poly(sympy.expand(expr), *X, domain="QQ")
    assert _normal(*factor_list(p)) == _normal(*p.factor_list())


def test_random_products_of_sums():
    rng = random.Random(13)
    for _ in range(60):
        expr = 1
        for _ in range(rng.randint(1, 3)):
            term = sum(rng.randint(-3, 3) * rng.choice(X) * rng.choice([1, *X]) for _ in range(3))
            expr *= term if term != 0 else 1
        expr *= sympy.Rational(rng.randint(1, 5), rng.randint(1, 5))
        p = sympy.Poly(sympy.expand(expr), *X, domain="QQ")
        if p.is_zero:
            continue
        assert _normal(*factor_list(p)) == _normal(*p.factor_list()), expr
