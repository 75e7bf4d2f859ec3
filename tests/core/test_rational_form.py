"""The normal form of vector expressions with reciprocals (derive.core.algebra._rational_expr):
when terms cancel over a common denominator, the result is one fraction in lowest terms
(minLSTM: delta_i = f (delta_i' - delta_f') / (f + i)^2); otherwise the reciprocals stay
atoms. Either way the value is unchanged: checked with verify.oracles' interpreter (the
defining scalar functions, not the engine) at random points, as a Hypothesis property."""
import numpy
from hypothesis import given, settings, strategies as st
from sympy import MatrixSymbol

import derive
from derive.core.algebra import VecPoly, add, hadamard, scale
from derive.core.primitives import Reciprocal
from verify import oracles

N = 3
A, B, C = (MatrixSymbol(n, N, 1) for n in "abc")


def test_minlstm_input_gate_gradient_is_one_fraction():
    bw = derive.cell("minlstm").backward()
    delta_i = dict((d.name, e) for d, e in bw.assignments)["delta_i"]
    recips = [a for a in delta_i.atoms(Reciprocal)]
    assert len(recips) == 1 and str(recips[0].arg) in ("f + i", "i + f")
    # two monomials in the numerator, the denominator (f + i)^2: nothing left to cancel
    assert len(VecPoly.from_expr(delta_i).terms) == 2


def test_no_fraction_where_nothing_cancels():
    """Delta_n - Delta_h c o / n^2 keeps its two terms (a common denominator would not cancel)."""
    bw = derive.cell("slstm").backward()
    delta_n = dict((d.name, e) for d, e in bw.assignments)["delta_n"]
    assert len(delta_n.args) == 2


def _expr(draw, depth):
    atoms = [A, B, C]
    if depth == 0:
        return draw(st.sampled_from(atoms))
    kind = draw(st.sampled_from(["add", "mul", "recip", "scale"]))
    if kind == "add":
        return add([_expr(draw, depth - 1), _expr(draw, depth - 1)], (N, 1))
    if kind == "mul":
        return hadamard([_expr(draw, depth - 1), _expr(draw, depth - 1)])
    if kind == "scale":
        return scale(draw(st.integers(-3, 3).filter(bool)), _expr(draw, depth - 1))
    return Reciprocal(_expr(draw, depth - 1))


@st.composite
def expressions(draw):
    return _expr(draw, draw(st.integers(1, 3)))


@settings(max_examples=60, deadline=None)
@given(expressions(), st.integers(0, 2 ** 31 - 1))
def test_normal_form_keeps_the_value(e, seed):
    """Property: the normal form of a random expression in +, *, scalar multiples and 1/u
    evaluates to the same vector as the expression (relative 1e-9), where both are finite
    and no denominator is near 0 (entries drawn in [1, 2], so sums of atoms stay positive
    unless a negative multiple cancels them: such draws are skipped)."""
    rng = numpy.random.default_rng(seed)
    values = {n: rng.uniform(1, 2, (N, 1)) for n in "abc"}
    with numpy.errstate(all="ignore"):
        want = oracles.evaluate(e, values)
        got = oracles.evaluate(VecPoly.from_expr(e).to_expr(), values)
    if not numpy.isfinite(want).all() or numpy.abs(want).max() > 1e6:
        return
    numpy.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
