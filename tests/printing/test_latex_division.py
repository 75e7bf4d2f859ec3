"""LaTeX and text of the new vocabulary written as a person would: Hadamard products with
reciprocal factors as fractions (repeated denominators as powers), the Heaviside step as
Θ(u) (H is the hidden size), sqrt as a radical, negated products in a sum without parentheses, time-invariant
equations (parameters only) without a time index, no break inside a short parenthesised sum."""
import sympy
from sympy import HadamardProduct, MatAdd, MatMul

import derive
from derive.core import algebra
from derive.core.binary import Maximum
from derive.core.primitives import Reciprocal, Sqrt, Step
from derive.core.symbols import Cotangent, Param, Var
from derive.printing.latex import LINE_WIDTH, expr_latex, layout_rhs
from derive.printing.text import text

H = sympy.Symbol("H")
a, b, c, n = (Var(s, H, 1) for s in ("a", "b", "c", "n"))


def _sum(*terms):
    return MatAdd(*terms, evaluate=False)


def _neg(x):
    return MatMul(sympy.Integer(-1), x, evaluate=False)


def test_hadamard_product_with_reciprocals_is_a_fraction():
    """a ⊙ b ⊙ (1/n): numerator a ⊙ b, denominator n; reciprocal factors anywhere in the
    product go to the denominator."""
    e = HadamardProduct(a, Reciprocal(n), b)
    assert expr_latex(e) == r"\frac{a_t \odot b_t}{n_t}"
    assert text(e) == "a ⊙ b / n"


def test_repeated_denominator_is_a_power_and_a_sum_is_grouped():
    """(1/n) ⊙ (1/n) -> n^{2}; 1/(f+i) twice -> (f + i)^{2}; the text keeps ⊙ in parentheses."""
    assert expr_latex(HadamardProduct(a, Reciprocal(n), Reciprocal(n))) == r"\frac{a_t}{n_t^{2}}"
    s = _sum(a, b)
    e = HadamardProduct(c, Reciprocal(s), Reciprocal(s))
    assert expr_latex(e) == r"\frac{c_t}{(a_t + b_t)^{2}}"
    assert text(e) == "c / ((a + b) ⊙ (a + b))"
    assert text(HadamardProduct(c, Reciprocal(n), Reciprocal(n))) == "c / (n ⊙ n)"


def test_a_lone_reciprocal():
    """1/u on its own: \\frac{1}{u} and ``1 / u``; a sum in parentheses in the text."""
    assert expr_latex(Reciprocal(n)) == r"\frac{1}{n_t}"
    assert text(Reciprocal(_sum(a, b))) == "1 / (a + b)"
    W = Param("W", H, H)
    assert text(MatMul(W, Reciprocal(n), evaluate=False)) == "W (1 / n)"


def test_step_sqrt_and_max_print_in_the_papers_notation():
    assert expr_latex(Step(_sum(a, _neg(b)))) == r"\Theta\bigl(a_t - b_t\bigr)"
    assert expr_latex(Sqrt(_sum(a, b))) == r"\sqrt{a_t + b_t}"
    assert expr_latex(Maximum(a, b)) == r"\max\bigl(a_t, b_t\bigr)"
    assert text(Maximum(a, b)) == "max(a, b)"


def test_a_negated_product_in_a_sum_has_no_parentheses():
    """a - b ⊙ c (⊙ binds tighter than -), never a - (b ⊙ c); a - (b + c) keeps them."""
    e = _sum(a, _neg(HadamardProduct(b, c)))
    assert expr_latex(e) == r"a_t - b_t \odot c_t"
    assert text(e) == "a - b ⊙ c"
    assert text(_sum(a, _neg(_sum(b, c)))) == "a - (b + c)"


def test_parameter_only_equations_carry_no_time_index():
    """The LRU's |λ|, λ^re, λ^im and γ depend only on ν and θ: printed without t; the states
    and the input keep it (decided from the equations' symbols, not from names)."""
    lru = derive.cell("lru")
    line = {eq.lhs.name: expr_latex(eq.lhs, cell=lru) + " = " + expr_latex(eq.rhs, cell=lru)
            for eq in lru.equations}
    assert line["lam_mod"] == r"|\lambda| = \exp\bigl(-\exp(\nu)\bigr)"
    assert line["gam"] == r"\gamma = \sqrt{1 - |\lambda| \odot |\lambda|}"
    assert line["xre"].startswith(r"x^{\mathrm{re}}_t = \lambda^{\mathrm{re}} \odot x^{\mathrm{re}}_{t-1}")
    assert expr_latex(Cotangent("delta_lam_re", H, 1), cell=lru) == r"\delta \lambda^{\mathrm{re}}"
    slstm = derive.cell("slstm")                 # every equation reaches x or a state
    assert all(expr_latex(eq.lhs, cell=slstm).endswith("_t") for eq in slstm.equations)


def test_no_break_inside_a_short_parenthesised_sum():
    """GRU (Cho) dh_t/dh_{t-1}, laid out in a narrow line: (1 - z_t) stays on one line."""
    cho = derive.cell("gru_cho")
    rhs = expr_latex(cho.jacobian("h", "h"), cell=cho, breaks=True)
    for width in range(150, int(LINE_WIDTH) + 1, 10):
        lines = [t for _, t in layout_rhs(rhs, width)]
        assert not any(t.rstrip().endswith("(1") for t in lines), (width, lines)
        assert sum(t.count("(1 - z_t)") for t in lines) == 2, (width, lines)
