"""Dimension-generic statements in index notation (symbolic n), verify.proofs.index_block.

The cell's equations are read entry by entry with ``IndexedBase`` and ``Sum`` over
``0..n-1`` (hidden) and ``0..m-1`` (input), n and m symbolic. For a derived block
``d s_t / d s'_{t-1}``, entry (i, k) of the engine's matrix expression must equal SymPy's
``diff`` of the index-notation forward expression of ``s_t[i]`` w.r.t. ``s'_prev[k]``;
the ``Piecewise`` range condition SymPy leaves after summing a Kronecker delta
(``0 <= k <= n - 1``, true by construction) is stripped explicitly and only when it is
exactly such a range condition.

Required: every block of ``rnn_sigmoid`` and ``lstm_peephole``. Every other cell whose
matrix products act only on x and previous states (verify.proofs.index_supported) is
checked on its dh_t/dh_{t-1} block. Cells with products such as ``W_co @ c`` (full
peepholes) or ``W_hn @ (r * h_prev)`` would need nested sums normalised and are covered
only by the explicit n = 1..4 proofs (test_oracle_jacobians.py).
"""
import pytest
import sympy
from sympy import IndexedBase, MatMul

import derive
from derive.core.primitives import SigmoidPrime
from verify import proofs

REQUIRED = ["rnn_sigmoid", "lstm_peephole"]


def _required_blocks():
    for name in REQUIRED:
        states = derive.cell(name).states
        for s in states:
            for r in states:
                yield pytest.param(name, s, r, id=f"{name}-d{s}/d{r}_prev")


@pytest.mark.parametrize("name,of,wrt", list(_required_blocks()))
def test_required_blocks_hold_for_symbolic_n(name, of, wrt):
    p = proofs.index_block(derive.cell(name), of, wrt)
    assert p, str(p)


OTHERS = [n for n in derive.cells()
          if n not in REQUIRED and proofs.index_supported(derive.cell(n))]


@pytest.mark.parametrize("name", OTHERS)
def test_dh_dh_holds_for_symbolic_n(name):
    """The output state's block (h, or the first state of a cell without h) for symbolic n."""
    cell = derive.cell(name)
    s = "h" if "h" in cell.states else cell.states[0]
    p = proofs.index_block(cell, s, s)
    assert p, str(p)


def test_supported_cells_include_the_seed_cells():
    assert all(proofs.index_supported(derive.cell(n)) for n in REQUIRED + ["rnn_tanh", "lstm"])
    assert not proofs.index_supported(derive.cell("lstm_peephole_full"))


def test_rnn_entry_reads_sigma_prime_a_i_times_w_hh_ik():
    """The textbook statement (d h_t / d h_{t-1})_{ik} = sigma'(a_i) W_hh[i, k]."""
    cell = derive.cell("rnn_sigmoid")
    entry = proofs.IndexNotation(cell, inline=False).block_entry(cell.jacobian("h", "h"))
    i, k = proofs.I_IDX, proofs.K_IDX
    expected = sympy.Function("sigmoid_prime")(IndexedBase("a")[i]) * IndexedBase("W_hh")[i, k]
    assert entry == expected
    assert SigmoidPrime.name == "sigmoid_prime"


def test_lstm_peephole_dc_dc_entry_is_diagonal():
    cell = derive.cell("lstm_peephole")
    entry = proofs.IndexNotation(cell, inline=False).block_entry(cell.jacobian("c", "c"))
    assert entry.has(sympy.KroneckerDelta(proofs.I_IDX, proofs.K_IDX))
    assert not entry.has(sympy.Sum)


def test_right_multiplied_form_is_rejected_for_symbolic_n():
    """W_hh diag(sigma'(a)) has entry W_hh[i, k] sigma'(a_k): not the derivative."""
    cell = derive.cell("rnn_sigmoid")
    diag, w = cell.jacobian("h", "h").args
    p = proofs.index_block(cell, "h", "h", block=MatMul(w, diag))
    assert not p
    assert "NOT proved" in str(p)


def test_seed_dc_dc_claim_is_rejected_for_symbolic_n():
    cell = derive.cell("lstm_peephole")
    from sympy import DiagMatrix
    assert not proofs.index_block(cell, "c", "c", block=DiagMatrix(cell.symbol("f")))


def test_strip_range_only_strips_range_conditions():
    n, i, k = proofs.N_SYM, proofs.I_IDX, proofs.K_IDX
    W = IndexedBase("W")
    ok = sympy.Piecewise((W[i, k], (k >= 0) & (k <= n - 1)), (0, True))
    assert proofs.strip_range(ok, {i: n, k: n}) == W[i, k]
    other = sympy.Piecewise((W[i, k], k <= n - 2), (0, True))
    assert proofs.strip_range(other, {i: n, k: n}) == other
