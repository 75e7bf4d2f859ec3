"""The batched NumPy printer decides parentheses on the expression (the shared precedence
table), not on the printed text: outer products v u^T and products applied to a vector."""
import numpy
import pytest
from sympy import HadamardProduct, MatAdd, MatMul, Transpose

from derive.codegen.mathfn import math_namespace
from derive.core.primitives import Tanh
from derive.core.symbols import Param, Var
from derive.printing.numpy_code import numpy_code

a, b, u = Var("a", 3, 1), Var("b", 3, 1), Var("u", 2, 1)
W = Param("W", 3, 3)
LEFTS = {"sum": MatAdd(a, b), "hadamard": HadamardProduct(a, b), "call": Tanh(MatAdd(a, b)),
         "product": MatMul(W, a), "negated": MatMul(-1, a, evaluate=False), "symbol": a}


def _values(rng):
    return {"a": rng.standard_normal((4, 3)), "b": rng.standard_normal((4, 3)),
            "u": rng.standard_normal((4, 2)), "W": rng.standard_normal((3, 3))}


def _left_value(kind, v):
    return {"sum": v["a"] + v["b"], "hadamard": v["a"] * v["b"],
            "call": numpy.tanh(v["a"] + v["b"]), "product": v["a"] @ v["W"].T,
            "negated": -v["a"], "symbol": v["a"]}[kind]


@pytest.mark.parametrize("kind", sorted(LEFTS))
def test_outer_product_code_evaluates_to_the_outer_product(kind):
    """v u^T for every kind of left factor v prints as code whose value, per batch row, is
    the outer product of v's and u's values (independent oracle: numpy.einsum)."""
    v = _values(numpy.random.default_rng(0))
    code = numpy_code(MatMul(LEFTS[kind], Transpose(u), evaluate=False))
    got = eval(code, {**math_namespace(), **v})
    want = numpy.einsum("bi,bj->bij", _left_value(kind, v), v["u"])
    numpy.testing.assert_allclose(got, want, rtol=1e-13)


def test_parentheses_follow_the_expression_not_the_text():
    """An atomic left factor is indexed directly even when the code that holds it contains
    spaces or brackets (the old printer looked for a space in the text); a compound one is
    parenthesized."""
    held = 'c["V"]["a"][t, :]'
    outer = numpy_code(MatMul(a, Transpose(u)), names={"a": held})
    assert outer.startswith(held + "[..., :, None] * ")
    assert numpy_code(MatMul(MatAdd(a, b), Transpose(u), evaluate=False)).startswith("(a + b)[")
    assert numpy_code(MatMul(Tanh(MatAdd(a, b)), Transpose(u), evaluate=False)).startswith(
        "tanh(a + b)[")
