"""Every derived step-Jacobian block, proved equal to SymPy's scalar ``Matrix.jacobian``.

For every cell in ``derive.cells()`` (new cells are picked up automatically), every block
``d s_t / d s'_{t-1}`` of the step Jacobian is expanded to explicit n x n matrices
(H = n = 1..4, D = 2) and compared entry by entry with the Jacobian SymPy computes from the
explicit scalar forward pass (:mod:`verify.explicit`). Equality is a symbolic proof per
entry (rational identity after naming the transcendental nodes), not a numerical check.
The Jacobians with respect to the input x and to every vector parameter are proved the
same way. The negative tests show that the oracle rejects the classic wrong forms.

Runtime (2 cores, SymPy 1.14): all 16 cells at n = 1..4 take 30-50 s for the
Jacobians; the explicit expansions are cached and shared with test_oracle_backward.py.
"""
import pytest
import sympy
from sympy import DiagMatrix, MatMul

import derive
from conftest import VECTOR_WRT_SIZES, explicit_sizes
from verify.explicit import entries_equal, expand

D = 2
CELLS = derive.cells()


def _blocks():
    for name in CELLS:
        states = derive.cell(name).states
        for n in explicit_sizes(name):
            for s in states:
                for r in states:
                    yield pytest.param(name, n, s, r, id=f"{name}-n{n}-d{s}/d{r}_prev")


def _describe(bad, limit=3):
    return "\n".join(f"  entry ({i},{j}): derived {a}\n            oracle  {b}"
                     for i, j, a, b in bad[:limit])


@pytest.mark.parametrize("name,n,of,wrt", list(_blocks()))
def test_step_jacobian_block_equals_sympy_jacobian(name, n, of, wrt):
    ex = expand(name, n, D)
    derived = ex.derived_jacobian(of, wrt)
    oracle = ex.oracle_jacobian(of, wrt)
    rows, cols = (len(ex.symbols_of(f"{s}_prev")) for s in (of, wrt))     # n, 1 or n * n
    assert derived.shape == oracle.shape == (rows, cols)
    bad = entries_equal(derived, oracle)
    assert not bad, f"{name} d{of}/d{wrt}_prev at n={n}:\n{_describe(bad)}"


def _vector_wrts():
    for name in CELLS:
        cell = derive.cell(name)
        wrts = ["x"] + [p for p, sym in cell.params.items() if sym.shape[1] == 1]
        for n in VECTOR_WRT_SIZES.get(name, (1, 3)):
            yield pytest.param(name, n, wrts, id=f"{name}-n{n}")


@pytest.mark.parametrize("name,n,wrts", list(_vector_wrts()))
def test_jacobians_wrt_input_and_vector_params(name, n, wrts):
    ex = expand(name, n, D)
    cell = ex.cell
    for of in cell.states:
        for wrt in wrts:
            bad = entries_equal(ex.derived_jacobian(of, wrt), ex.oracle_jacobian(of, wrt))
            assert not bad, f"{name} d{of}/d{wrt} at n={n}:\n{_describe(bad)}"


# -- the oracle catches wrong forms ------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3])
def test_oracle_rejects_right_multiplied_diagonal(n):
    """W_hh diag(sigma'(a)) (the seed's ambiguity / Pascanu's parametrisation) is not
    dh_t/dh_{t-1}; the oracle must say so, while the derived order passes."""
    cell = derive.cell("rnn_sigmoid")
    block = cell.jacobian("h", "h")
    diag, w = block.args
    assert isinstance(diag, DiagMatrix)
    ex = expand("rnn_sigmoid", n, D)
    oracle = ex.oracle_jacobian("h", "h")
    assert not entries_equal(ex.explicit(MatMul(diag, w)), oracle)
    assert entries_equal(ex.explicit(MatMul(w, diag)), oracle)


def test_oracle_rejects_transposed_weight():
    cell = derive.cell("rnn_tanh")
    diag, w = cell.jacobian("h", "h").args
    ex = expand("rnn_tanh", 2, D)
    assert entries_equal(ex.explicit(MatMul(diag, w.T)), ex.oracle_jacobian("h", "h"))


def test_oracle_rejects_seed_claim_dc_dc_is_diag_f_for_peepholes():
    """Seed note erratum 10: for the peephole LSTM dc_t/dc_{t-1} is not diag(f_t)."""
    cell = derive.cell("lstm_peephole")
    ex = expand("lstm_peephole", 1, D)
    naive = ex.explicit(DiagMatrix(cell.symbol("f")))
    assert entries_equal(naive, ex.oracle_jacobian("c", "c"))
    assert not entries_equal(ex.derived_jacobian("c", "c"), ex.oracle_jacobian("c", "c"))


def test_oracle_rejects_a_dropped_term():
    """Leaving out one term of the GRU's dh/dh (the direct diag(z) path) is caught."""
    cell = derive.cell("gru")
    block = cell.jacobian("h", "h")
    terms = block.args
    assert len(terms) >= 2
    ex = expand("gru", 2, D)
    oracle = ex.oracle_jacobian("h", "h")
    for k in range(len(terms)):
        rest = sympy.MatAdd(*(terms[:k] + terms[k + 1:]))
        assert entries_equal(ex.explicit(rest), oracle), f"dropping term {k} went unnoticed"
