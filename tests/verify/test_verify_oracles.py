"""verify.oracles: the one NumPy interpreter of the expression vocabulary and the one
central-difference routine, each checked against something independent of it."""
import numpy
import pytest
import sympy
from hypothesis import given, strategies as st
from sympy import ImmutableMatrix, MatrixSymbol

import derive
from derive.core.primitives import Sigmoid
from derive.core.symbols import DIMS, Input, Param
from verify import explicit, oracles

H, D = 2, 3


def _random_leaves(cell, rng):
    vals = {"x": rng.standard_normal((D, 1))}
    vals.update({p.name: rng.standard_normal((H, 1)) for p in cell.prev.values()})
    vals.update({f"Delta_{s}": rng.standard_normal((H, 1)) for s in cell.states})
    for n, p in cell.params.items():
        vals[n] = 0.7 * rng.standard_normal(tuple(int(sympy.sympify(d).subs({DIMS["H"]: H, DIMS["D"]: D}))
                                                  for d in p.shape))
    return vals


def _sympy_value(expr, vals):
    """SymPy's own evaluation (verify.explicit.evaluate: doit / as_explicit, the primitives'
    scalar definitions) with every leaf an explicit Float matrix."""
    sub = {s: ImmutableMatrix(vals[s.name].tolist()) for s in expr.atoms(MatrixSymbol)}
    sub.update({DIMS["H"]: H, DIMS["D"]: D})
    return numpy.array(explicit.evaluate(expr.xreplace(sub)).evalf(20).tolist(), dtype=float)


@pytest.mark.parametrize("name", ["lstm_peephole", "gru_cho", "rnn_relu"])
def test_evaluate_equals_sympys_evaluation_of_every_derived_expression(name):
    """Every equation, step-Jacobian block and backward output of the cell, evaluated by
    verify.oracles.evaluate at a random point (H = 2, D = 3), equals SymPy's evaluation of the
    same expression to 1e-12 (each side evaluates the equations and adjoints it depends on)."""
    cell = derive.cell(name)
    rng = numpy.random.default_rng(1)
    ours, theirs = _random_leaves(cell, rng), None
    theirs = dict(ours)
    for eq in cell.equations:
        ours[eq.lhs.name] = oracles.evaluate(eq.rhs, ours)
        theirs[eq.lhs.name] = _sympy_value(eq.rhs, theirs)
        numpy.testing.assert_allclose(ours[eq.lhs.name], theirs[eq.lhs.name], rtol=1e-12, atol=1e-12)
    for delta, expr in cell.backward().assignments:
        ours[delta.name] = oracles.evaluate(expr, ours)
        theirs[delta.name] = _sympy_value(expr, theirs)
    for sym, expr in cell.backward().outputs():
        numpy.testing.assert_allclose(oracles.evaluate(expr, ours), _sympy_value(expr, theirs),
                                      rtol=1e-12, atol=1e-12, err_msg=str(sym))
    for (s, r), block in cell.step_jacobian().items():
        got = oracles.evaluate(block, ours, dims={"H": H, "D": D})
        numpy.testing.assert_allclose(numpy.broadcast_to(got, (H, H)), _sympy_value(block, theirs),
                                      rtol=1e-12, atol=1e-12, err_msg=f"d{s}/d{r}")


def test_rows_layout_and_batches_equal_one_column_at_a_time():
    """evaluate_rows on a (B, n) batch equals evaluate on each row as an (n, 1) column, and
    the nonlinearity of ``functions=stable`` (derive.codegen.np_primitives) agrees with the
    definition to 1e-15."""
    cell = derive.cell("lstm")
    rng = numpy.random.default_rng(2)
    B = 4
    rows = {"x": rng.standard_normal((B, D)), "h_prev": rng.standard_normal((B, H)),
            "c_prev": rng.standard_normal((B, H))}
    rows.update({n: rng.standard_normal((H, D) if v.shape[1] == DIMS["D"] else
                                        ((H, H) if v.shape[1] == DIMS["H"] else (H,)))
                 for n, v in cell.params.items()})
    expr = Sigmoid(cell.definition("ibar"))
    got = oracles.evaluate_rows(expr, rows)
    stable = oracles.evaluate_rows(expr, rows, functions=oracles.stable)
    assert got.shape == (B, H)
    for b in range(B):
        col = {k: (v[b][:, None] if k in ("x", "h_prev", "c_prev") else
                   (v[:, None] if v.ndim == 1 else v)) for k, v in rows.items()}
        numpy.testing.assert_allclose(got[b], oracles.evaluate(expr, col)[:, 0], rtol=1e-15)
    numpy.testing.assert_allclose(stable, got, rtol=1e-15, atol=1e-16)


def test_unknown_leaf_and_unsized_constants_are_named():
    W, x = Param("W", DIMS["H"], DIMS["D"]), Input("x", DIMS["D"], 1)
    with pytest.raises(KeyError, match="'x'"):
        oracles.evaluate(W * x, {"W": numpy.eye(2)})
    with pytest.raises(ValueError, match="dimension H unknown"):
        oracles.evaluate(sympy.Identity(DIMS["H"]), {})
    assert oracles.evaluate(sympy.Identity(DIMS["H"]), {}, dims={"H": 3}).shape == (3, 3)
    with pytest.raises(TypeError, match="MatPow"):
        oracles.evaluate(sympy.MatPow(MatrixSymbol("A", 2, 2), 2), {"A": numpy.eye(2)})


def test_definition_keeps_dtype_and_takes_the_limit_without_warnings():
    f = oracles.definition(Sigmoid)
    with numpy.errstate(all="raise"):
        v = f(numpy.array([-1000.0, 0.0, 1000.0], dtype=numpy.float32))
    assert v.dtype == numpy.float32 and list(v) == [0.0, 0.5, 1.0]


# -- central differences -----------------------------------------------------------------------

@given(st.integers(0, 2 ** 32 - 1))
def test_central_difference_of_a_linear_map_is_the_matrix(seed):
    """For f(x) = A x the central difference is A up to rounding (no truncation error), in
    numerator layout; x is not modified."""
    rng = numpy.random.default_rng(seed)
    A, x = rng.standard_normal((3, 4)), rng.standard_normal(4)
    x0 = x.copy()
    numpy.testing.assert_allclose(oracles.fd_jacobian(lambda v: A @ v, x), A, atol=1e-8)
    assert numpy.array_equal(x, x0)


def test_central_difference_shapes_gradient_and_batch():
    """Shape f(x).shape + x.shape; fd_gradient of sum(x^3) is 3 x^2 (O(eps^2) truncation);
    batch = 1 moves one entry of every row at once and equals the row-by-row Jacobians."""
    rng = numpy.random.default_rng(0)
    X = rng.standard_normal((2, 3))
    assert oracles.central_difference(lambda m: m.sum(axis=0), X).shape == (3, 2, 3)
    numpy.testing.assert_allclose(oracles.fd_gradient(lambda m: (m ** 3).sum(), X), 3 * X ** 2,
                                  atol=1e-8)
    W = rng.standard_normal((3, 3))
    f = lambda rows: numpy.tanh(rows @ W.T)  # noqa: E731
    J = oracles.fd_jacobian(f, X, batch=1)
    assert J.shape == (2, 3, 3)
    for b in range(2):
        numpy.testing.assert_allclose(J[b], oracles.fd_jacobian(lambda v: numpy.tanh(W @ v), X[b]),
                                      atol=1e-12)
        numpy.testing.assert_allclose(J[b], (1 - numpy.tanh(W @ X[b]) ** 2)[:, None] * W, atol=1e-8)
