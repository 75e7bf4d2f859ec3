"""The claims about the 2024-26 cells (verify.modern_claims): each proof holds for its cell
and fails where its statement is false (a cell whose gates see h), and the float checks find
a counterexample where there is one."""
import pytest
from hypothesis import given, settings

from verify import modern_claims as M
from verify.claims import run_claims
from verify.scalar_properties import PropertyFailure


@pytest.mark.parametrize("claim", M.MODERN_CLAIMS, ids=lambda c: c[0])
def test_every_proof_holds(claim):
    ok, how = claim[2]()
    assert ok, how


def test_the_diagonal_proof_fails_for_a_cell_whose_gates_see_h():
    ok, _ = M._proof_diagonal("gru")()
    assert not ok


def test_the_diagonal_check_finds_the_gru_off_diagonal_entries():
    with pytest.raises(PropertyFailure, match="off-diagonal"):
        M.check_diagonal("gru")((0, 3, 2, 1.0))


@settings(max_examples=30, deadline=None)
@given(M.CASES)
def test_lru_step_jacobian_is_a_contraction(case):
    """Property: for nu, theta drawn at scales 0.1..3, ||ds_t/ds_(t-1)||_2 < 1 (kernel)."""
    M.check_lru_contraction(case)


def test_the_claims_report_lists_them_as_proved():
    ids = [c[0] for c in M.MODERN_CLAIMS]
    got = {c.id: c.verdict for c in run_claims(ids, max_examples=5)}
    assert got == {i: "proved" for i in ids}


def test_the_block_check_finds_an_off_diagonal_c_block_where_a_gate_reads_c():
    """lstm_peephole_full's gates read c_(t-1) through full H x H peepholes: its c-c block is
    dense, and the check that passes for lnlstm says so."""
    M.check_block_diagonal("lnlstm", "c")((0, 3, 2, 1.0))          # examples/lnlstm.toml
    with pytest.raises(PropertyFailure, match="off-diagonal"):
        M.check_block_diagonal("lstm_peephole_full", "c")((0, 3, 2, 1.0))
