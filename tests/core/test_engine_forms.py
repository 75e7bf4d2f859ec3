"""The derived results come out in the forms a person writes (structure, not just value).

Values are proved elsewhere (test_oracle_*.py); here the *shape* of the expressions:
* textbook blocks: ``diag(phi'(a)) W_hh`` for the Elman cells (phi' taken from the cell's
  own definition), ``diag(f)`` for the LSTM without peepholes, ``diag(f + two peephole
  terms)`` for the peephole LSTM;
* for every cell and every derived expression (Jacobian blocks, backward outputs): no
  DiagMatrix inside a DiagMatrix, transposes only on leaves (or on the column-vector row
  factor of an outer product, ``delta (r * h)^T``), no duplicate terms in a sum,
  no adjacent diagonals in a product (``diag(a) diag(b)`` is merged), at most one bare
  diagonal per sum and one term per matrix chain (``diag(a) M + diag(b) M`` is merged),
  sums and Hadamard products flattened, no identity or zero left inside;
* the simplification rules ``diag(a) + diag(b) -> diag(a + b)`` and
  ``diag(a) diag(b) -> diag(a * b)`` of :mod:`derive.core.linmap`;
* deterministic output (same string twice, same term order).
"""
from collections import Counter

import pytest
from sympy import (DiagMatrix, HadamardProduct, Identity, MatAdd, MatMul, MatrixSymbol,
                   OneMatrix, Transpose, ZeroMatrix)

import derive
from derive.core.algebra import VecPoly
from derive.core.linmap import LinMap
from derive.core.matrixstate import Factor
from derive.core.primitives import Elementwise
from derive.core.symbols import H, Param, Var

CELLS = derive.cells()


def _elman_cells():
    """Cells with the single state h defined as phi(a) of a pre-activation a."""
    out = []
    for name in CELLS:
        cell = derive.cell(name)
        if cell.states == ("h",) and isinstance(cell.definition("h"), Elementwise) \
                and "W_hh" in cell.params:
            out.append(name)
    return out


ELMAN = _elman_cells()


def test_the_seed_cells_are_elman_cells():
    assert {"rnn_sigmoid", "rnn_tanh"} <= set(ELMAN)


@pytest.mark.parametrize("name", ELMAN)
def test_elman_block_is_diag_phi_prime_times_w_hh(name):
    cell = derive.cell(name)
    phi = cell.definition("h")
    expected = MatMul(DiagMatrix(phi.derivative(phi.arg)), cell.params["W_hh"])
    block = cell.jacobian("h", "h")
    assert block == expected, f"{name}: {block}"
    # left multiplication: the diagonal comes first
    assert isinstance(block.args[0], DiagMatrix) and block.args[1] == cell.params["W_hh"]


def test_rnn_sigmoid_block_is_sigmoid_prime_of_a():
    from derive.core.primitives import SigmoidPrime
    cell = derive.cell("rnn_sigmoid")
    assert cell.jacobian("h", "h") == MatMul(DiagMatrix(SigmoidPrime(cell.symbol("a"))),
                                             cell.params["W_hh"])


def test_lstm_dc_dc_is_diag_f():
    cell = derive.cell("lstm")
    assert cell.jacobian("c", "c") == DiagMatrix(cell.symbol("f"))
    assert cell.jacobian_linmap("c", "c").to_expr() == DiagMatrix(cell.symbol("f"))


def _factors(term):
    return Counter(term.args) if isinstance(term, HadamardProduct) else Counter([term])


def test_lstm_peephole_dc_dc_is_diag_of_f_plus_two_peephole_terms():
    from derive.core.primitives import SigmoidPrime
    cell = derive.cell("lstm_peephole")
    block = cell.jacobian("c", "c")
    assert isinstance(block, DiagMatrix)
    v = block.args[0]
    assert isinstance(v, MatAdd) and len(v.args) == 3
    s = cell.symbol
    wanted = [Counter([s("f")]),
              Counter([cell.params["W_cf"], s("c_prev"), SigmoidPrime(s("fbar"))]),
              Counter([cell.params["W_ci"], s("g"), SigmoidPrime(s("ibar"))])]
    got = [_factors(t) for t in v.args]
    for w in wanted:
        assert w in got, f"missing term {dict(w)} in {v}"


# -- structural invariants over every derived expression -----------------------------

def _derived_exprs(name):
    cell = derive.cell(name)
    for (s, r), block in cell.step_jacobian().items():
        yield f"d{s}/d{r}_prev", block
    for sym, expr in cell.backward().outputs():
        yield sym.name, expr


def _walk(e):
    yield e
    for a in getattr(e, "args", ()):
        if hasattr(a, "shape"):
            yield from _walk(a)


def _chain_key(term):
    """A product term split into (leading diagonal or None, the rest of the chain)."""
    if isinstance(term, DiagMatrix):
        return None, ()
    if isinstance(term, MatMul):
        c, mats = term.as_coeff_matrices()
        if isinstance(mats[0], DiagMatrix):
            return c, tuple(mats[1:])
        return c, tuple(mats)
    return None, (term,)


def _is_outer_product_row(node, expr):
    """``u (v1 * v2)^T``: the transposed column-vector expression that is the row factor of
    an outer product (gru_cho's ``delta_nbar (r * h_prev)^T``) is the textbook form; pushing
    the transpose into the Hadamard product would not make it more readable."""
    if node.arg.shape[1] != 1:
        return False
    return any(isinstance(m, MatMul) and m.args[-1] == node for m in _walk(expr))


def _violations(expr):
    out = []
    for node in _walk(expr):
        if isinstance(node, DiagMatrix):
            if any(isinstance(x, DiagMatrix) for x in _walk(node.args[0])):
                out.append(f"DiagMatrix inside DiagMatrix: {node}")
        if isinstance(node, Transpose) and not isinstance(node.arg, MatrixSymbol) \
                and not _is_outer_product_row(node, expr):
            out.append(f"transpose above a leaf: {node}")
        if isinstance(node, MatAdd):
            if len(set(node.args)) != len(node.args):
                out.append(f"duplicate terms: {node}")
            if any(isinstance(a, MatAdd) for a in node.args):
                out.append(f"nested sum: {node}")
            if any(isinstance(a, (ZeroMatrix,)) for a in node.args):
                out.append(f"zero term: {node}")
            if node.shape[1] != 1:
                bare = [a for a in node.args if isinstance(a, DiagMatrix)]
                if len(bare) > 1:
                    out.append(f"diag(a) + diag(b) not merged: {node}")
                chains = [_chain_key(a)[1] for a in node.args if not isinstance(a, DiagMatrix)]
                dup = [c for c, k in Counter(chains).items() if k > 1]
                if dup:
                    out.append(f"diag(a) M + diag(b) M not merged for M = {dup[0]}: {node}")
        if isinstance(node, MatMul):
            mats = node.as_coeff_matrices()[1]
            for a, b in zip(mats, mats[1:]):
                if isinstance(a, DiagMatrix) and isinstance(b, DiagMatrix):
                    out.append(f"diag(a) diag(b) not merged: {node}")
            if any(isinstance(m, (Identity, ZeroMatrix)) for m in mats):
                out.append(f"identity or zero factor: {node}")
        if isinstance(node, HadamardProduct):
            if any(isinstance(a, HadamardProduct) for a in node.args):
                out.append(f"nested Hadamard product: {node}")
    return out


@pytest.mark.parametrize("name", CELLS)
def test_derived_expressions_are_in_normal_form(name):
    problems = []
    for label, expr in _derived_exprs(name):
        problems += [f"{label}: {v}" for v in _violations(expr)]
    assert not problems, f"{name}:\n" + "\n".join(problems[:10])


@pytest.mark.parametrize("name", CELLS)
def test_jacobian_terms_are_diag_led_chains_of_params(name):
    """Every block is a sum of diag(v) M1 diag(v2) M2 ... with parameters M (numerator
    layout, diagonal on the left), or a bare diag(v); the other factors are the constant
    all-ones vectors of a reduction (1, 1^T) and a matrix state's linear maps (I (x) w^T, ...)."""
    cell = derive.cell(name)
    for (s, r), block in cell.step_jacobian().items():
        terms = block.args if isinstance(block, MatAdd) else (block,)
        for t in terms:
            if isinstance(t, (DiagMatrix, ZeroMatrix)):
                continue
            assert isinstance(t, MatMul), (name, s, r, t)
            mats = t.as_coeff_matrices()[1]
            for m in mats:
                assert isinstance(m, (DiagMatrix, Param, OneMatrix, Factor)) or \
                    (isinstance(m, Transpose) and isinstance(m.arg, Param)), (name, s, r, m)


@pytest.mark.parametrize("name", CELLS)
def test_output_is_deterministic(name):
    first = [(k, str(v)) for k, v in _derived_exprs(name)]
    again = [(k, str(v)) for k, v in _derived_exprs(name)]
    assert first == again


# -- the simplification rules themselves ------------------------------------------------

def _vec(name):
    return VecPoly.atom(Var(name, H, 1))


def test_rule_diag_plus_diag_is_diag_of_sum():
    a, b = _vec("a"), _vec("b")
    m = (LinMap.diagonal(a) + LinMap.diagonal(b)).simplified()
    assert len(m.terms) == 1
    assert m.to_expr() == DiagMatrix((a + b).to_expr())


def test_rule_diag_times_diag_is_diag_of_product():
    a, b = _vec("a"), _vec("b")
    m = LinMap.diagonal(a) @ LinMap.diagonal(b)
    assert len(m.terms) == 1
    assert m.to_expr() == DiagMatrix((a * b).to_expr())
    assert isinstance(m.to_expr().args[0], HadamardProduct)


def test_rule_same_chain_terms_merge():
    a, b = _vec("a"), _vec("b")
    W = Param("W", H, H)
    m = (LinMap.diagonal(a) @ LinMap.matrix(W) + LinMap.diagonal(b) @ LinMap.matrix(W)).simplified()
    assert len(m.terms) == 1
    assert m.to_expr() == MatMul(DiagMatrix((a + b).to_expr()), W)


def test_rule_cancelling_terms_vanish():
    a = _vec("a")
    W = Param("W", H, H)
    m = (LinMap.diagonal(a) @ LinMap.matrix(W) + (LinMap.diagonal(a) @ LinMap.matrix(W)).scaled(-1))
    assert m.simplified().is_zero()


def test_normal_form_checker_flags_unsimplified_expressions():
    """The invariants above can fail: hand-built unsimplified forms are flagged."""
    a, b = Var("a", H, 1), Var("b", H, 1)
    W, U = Param("W", H, H), Param("U", H, H)
    bad = [
        DiagMatrix(MatMul(DiagMatrix(a), b)),                      # diag of diag
        Transpose(MatMul(W, U)),                                   # transpose above a product
        MatAdd(DiagMatrix(a), DiagMatrix(b)),                      # diag(a) + diag(b)
        MatMul(DiagMatrix(a), DiagMatrix(b), W),                   # diag(a) diag(b) W
        MatAdd(MatMul(DiagMatrix(a), W), MatMul(DiagMatrix(b), W)),  # same chain twice
        MatAdd(MatMul(W, a), MatMul(W, a), evaluate=False),        # duplicate term
    ]
    for e in bad:
        assert _violations(e), f"not flagged: {e}"
