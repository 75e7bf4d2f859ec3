"""derive.seed: the seed note's statements as data, decided against the derivations."""
import pytest
import sympy

import derive
from derive.seed.claims import SEED_CLAIMS, seed_claim, seed_ids

WRONG = {"seed.eq2", "seed.activation", "seed.bptt", "seed.bptt.total_loss",
         "seed.bptt.immediate_partial", "seed.bptt.product_order", "seed.bptt.index_range",
         "seed.rnn_jacobian", "seed.sigmoid_range", "seed.vanishing", "seed.lstm_cell_jacobian",
         "seed.typo"}


def test_interface_and_ids():
    assert len(set(seed_ids())) == len(SEED_CLAIMS)
    for c in SEED_CLAIMS:
        assert c.id.startswith("seed.")
        assert c.quote_latex and c.explanation and c.statement
        assert isinstance(c.holds, bool)
        assert c.holds_from in ("derived", "stated")


def test_every_erratum_of_equations_md_is_covered():
    assert sorted({e for c in SEED_CLAIMS for e in c.erratum}) == list(range(1, 12))


def test_verdicts():
    assert {c.id for c in SEED_CLAIMS if not c.holds} == WRONG
    for c in SEED_CLAIMS:
        if c.holds:
            assert c.corrected() is None


def test_corrections_are_the_derived_expressions():
    assert seed_claim("seed.rnn_jacobian").corrected() == derive.cell("rnn_sigmoid").jacobian("h", "h")
    assert seed_claim("seed.lstm_cell_jacobian").corrected() == \
        derive.cell("lstm_peephole").jacobian("c", "c")
    assert seed_claim("seed.eq2").corrected() == derive.cell("rnn_sigmoid").definition("y")
    assert seed_claim("seed.sigmoid_range").corrected() == sympy.Interval.Lopen(0, sympy.Rational(1, 4))


def test_the_no_peephole_lstm_has_the_seeds_block():
    """The seed's dc_t/dc_(t-1) = f_t is right for the lstm cell (no peepholes, h fixed)."""
    from derive.core.algebra import diag
    c = derive.cell("lstm")
    assert c.jacobian("c", "c") == diag(c.symbol("f"))


def test_unknown_id():
    with pytest.raises(KeyError, match="seed.nope"):
        seed_claim("seed.nope")


# -- how the claims report labels a verdict (verify.seed_claims) ------------------------------

CONSTANT = {"seed.vanishing", "seed.typo", "seed.bptt", "seed.bptt.immediate_partial"}


def test_constant_verdicts_are_reported_as_stated_not_derived():
    """These claims' verdicts are stated in derive.seed with a reason (their old deciders only
    compared constants: 2 <= 1, 'h_t_1' in a cell's variables, (1, H) == (H, H)): python -m
    verify labels them stated; the verdicts that
    derive.seed derives keep the derived label (the old report called all of them derived)."""
    from verify.claims import run_claims
    from verify.seed_claims import verdict_basis
    assert CONSTANT <= set(seed_ids())
    assert {i for i in seed_ids() if seed_claim(i).stated_because} == CONSTANT
    derived = ["seed.rnn_jacobian", "seed.eq2", "seed.sigmoid_derivative"]
    stated = ["seed.bptt.total_loss"]
    by_id = {c.id: c for c in run_claims(sorted(CONSTANT) + derived + stated, seed=3)}
    for i in CONSTANT:
        assert verdict_basis(seed_claim(i)) == "stated"
        assert by_id[i].verdict == "refuted"
        assert "verdict stated, not derived" in by_id[i].evidence, i
        assert "verdict computed" not in by_id[i].evidence, i
    for i in derived:
        assert verdict_basis(seed_claim(i)) == "derived"
        assert by_id[i].evidence.endswith("(verdict computed by derive.seed from the derivations)"), i
    assert "verdict stated in derive.seed" in by_id["seed.bptt.total_loss"].evidence
    assert by_id["seed.sigmoid_derivative"].verdict == "proved"


def test_every_seed_claim_has_one_label():
    """Each seed claim's verdict is either derived or stated, never both, and a stated one is
    never reported as proved."""
    from verify.seed_claims import verdict_basis
    for c in SEED_CLAIMS:
        assert verdict_basis(c) in ("derived", "stated")
        if c.holds_from == "stated":
            assert verdict_basis(c) == "stated"
