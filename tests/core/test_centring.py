"""Centred vectors: ``sums_to_zero`` proves ``1^T e = 0`` for the equations that make it so
(``u - mean(u)``) and for no other; a quantity so defined is a ``Centred`` symbol whose sum the
simplifier drops; and with that the layer-norm Jacobian comes out compact (three terms per
layer norm, no ``d 1^T d``) and still equal to SymPy's ``Matrix.jacobian`` of the explicit
expansion, where nothing is known about centring."""
from __future__ import annotations

import pytest
import sympy

import derive
from derive.core.algebra import VecPoly, add, hadamard, scale
from derive.core.centring import sums_to_zero
from derive.core.primitives import Reciprocal
from derive.core.reduction import Broadcast, DimSize, SumOf
from derive.core.symbols import Centred, Param, Var
from derive.printing.text import text
from verify.explicit import entries_equal, expand

H = sympy.Symbol("H", integer=True, positive=True)
u, v = Var("u", H, 1), Var("v", H, 1)


def mean(x):
    return Broadcast(hadamard([SumOf(x), Reciprocal(DimSize("H"))]), H)


def centred(x):
    return add([x, scale(-1, mean(x))], (H, 1))


@pytest.mark.parametrize("expr, zero", [
    (centred(u), True),                                               # u - mean(u)
    (scale(3, centred(u)), True),                                     # 3 (u - mean(u))
    (add([centred(u), centred(v)], (H, 1)), True),                    # a sum of centred vectors
    (add([u, scale(-1, Broadcast(SumOf(u), H))], (H, 1)), False),     # u - sum(u): not centred
    (add([u, scale(-1, mean(v))], (H, 1)), False),                    # u - mean(v)
    (hadamard([centred(u), v]), False),                               # (u - mean u) * v
    (u, False),
])
def test_sums_to_zero_proves_exactly_the_centred_equations(expr, zero):
    """True only where 1^T e cancels to 0 for every value; the independent check: SymPy's
    explicit entries at n = 3 (``_entry``, H's size symbol replaced by 3) sum to 0 exactly
    when the claim is True."""
    assert sums_to_zero(expr) is zero
    n = 3
    e = expr.subs(H, n)
    total = sympy.Add(*[e._entry(k, 0) for k in range(n)])
    size = DimSize("H")._entry(0, 0)
    assert (sympy.simplify(total.subs(size, n)) == 0) is zero


def test_the_sum_of_a_centred_symbol_is_zero_in_the_simplifier():
    """1^T d = 0, 1^T (s d) = 0 for a broadcast scalar s, and 1^T (d + w) = 1^T w."""
    d = Centred("d", H, 1)
    w = Var("w", H, 1)
    s = Broadcast(Param("s0", 1, 1), H)
    assert VecPoly.from_expr(SumOf(d)).is_zero()
    assert VecPoly.from_expr(SumOf(hadamard([s, d]))).is_zero()
    assert VecPoly.from_expr(SumOf(add([d, w], (H, 1)))) == VecPoly.from_expr(SumOf(w))
    assert not VecPoly.from_expr(SumOf(hadamard([d, w]))).is_zero()       # d^T w is not 0


def test_the_spec_marks_centred_quantities():
    """lnlstm: the nine u - mean(u) quantities are Centred; its layer-norm scales are not."""
    c = derive.cell("lnlstm")
    marked = sorted(eq.lhs.name for eq in c.equations if isinstance(eq.lhs, Centred))
    assert marked == sorted(["dri", "dui", "drf", "duf", "dro", "duo", "drg", "dug", "dc"])


LN_CELL = """
[cell]
name = "ln_rnn_c"
states = ["h"]
[params]
R = ["H", "H"]
a = ["H"]
[equations]
u = "R @ h_prev"
d = "u - mean(u)"
s = "sqrt(mean(d * d) + 0.00001)"
h = "a * d / s"
"""


def test_layer_norm_jacobian_is_compact_and_right(tmp_path):
    """d LN(R h)/d h = diag(a/s) (I - 1 1^T/H - d d^T/(H s^2)) R: three terms, no 1^T d
    anywhere; and equal to Matrix.jacobian of the explicit expansion at n = 2 and 3."""
    p = tmp_path / "ln.toml"
    p.write_text(LN_CELL, encoding="utf-8")
    cell = derive.cell_from_spec(p)
    J = cell.jacobian("h", "h")
    assert len(J.args) == 3, text(J)
    assert "1ᵀ d " not in text(J) + " " and "sum(d)" not in text(J), text(J)   # (1ᵀ diag(d) is dᵀ)
    for n in (2, 3):
        ex = expand(cell, n, 2)
        assert not entries_equal(ex.derived_jacobian("h", "h"), ex.oracle_jacobian("h", "h")), n
