"""The normal form of Hadamard polynomials (derive.core.algebra.VecPoly) only rearranges.

Property: printing a polynomial in its factored/grouped form and expanding the result again
gives back exactly the same polynomial (same monomials, same rational coefficients), for
random polynomials over a few atoms; and the printed form never has more top-level terms
than the expanded one. The oracle is the expansion, which shares no code with factoring.
"""
from fractions import Fraction

from hypothesis import given, strategies as st
from sympy import MatAdd

from derive.core.algebra import VecPoly
from derive.core.primitives import Sigmoid, SigmoidPrime, Tanh
from derive.core.symbols import H, Param, PrevState, Var

_v = [Var("f", H, 1), Var("g", H, 1), PrevState("c_prev", H, 1), Param("w", H, 1)]
ATOMS = _v + [SigmoidPrime(Var("ibar", H, 1)), Tanh(Var("c", H, 1)), Sigmoid(Var("obar", H, 1))]

monomials = st.lists(st.sampled_from(ATOMS), min_size=0, max_size=3)
coefficients = st.fractions(min_value=-3, max_value=3, max_denominator=3).filter(lambda c: c != 0)


@st.composite
def polynomials(draw):
    terms = {}
    for m in draw(st.lists(monomials, min_size=1, max_size=6)):
        key = tuple(sorted(m, key=lambda a: str(a)))
        terms[key] = terms.get(key, Fraction(0)) + draw(coefficients)
    acc = VecPoly.zero((H, 1))
    for m, c in terms.items():
        mono = VecPoly.one((H, 1)).scaled(c)
        for a in m:
            mono = mono * VecPoly.atom(a)
        acc = acc + mono
    return acc


@given(polynomials())
def test_printed_form_expands_back_to_the_same_polynomial(p):
    assert VecPoly.from_expr(p.to_expr()) == p


@given(polynomials())
def test_printed_form_has_no_more_terms_than_the_expansion(p):
    e = p.to_expr()
    top = len(e.args) if isinstance(e, MatAdd) else 1
    assert top <= max(1, len(p.terms))
