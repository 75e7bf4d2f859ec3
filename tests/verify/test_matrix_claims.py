"""The matrix-state cells' claims (verify.matrix_claims): each proof holds for its cell and
fails for a variant where its statement is false (a delta rule with I + beta k k^T; an mLSTM
whose normaliser is clamped at 1 instead of exp(-m), so that m leaks into h), and the kernel
checks find a counterexample there."""
from collections import namedtuple
from pathlib import Path

import pytest
from hypothesis import given, settings

import derive
from verify import matrix_claims as M
from verify.scalar_properties import PropertyFailure

CELLS = Path(derive.__file__).resolve().parent / "cells"


def _variant(tmp_path, name, old, new):
    text = (CELLS / f"{name}.toml").read_text(encoding="utf-8")
    assert old in text
    text = text.replace(old, new).replace(f'name = "{name}"', f'name = "{name}_wrong"')
    path = tmp_path / f"{name}_wrong.toml"
    path.write_text(text, encoding="utf-8")
    return derive.cell_from_spec(path)


@pytest.fixture
def plus_delta_rule(tmp_path):
    """S = alpha (S_prev + beta (S_prev k) k^T) + ...: eigenvalue 1 + beta, outside [1 - beta, 1]."""
    return _variant(tmp_path, "gated_deltanet", "S_prev - beta * outer", "S_prev + beta * outer")


@pytest.fixture
def leaky_mlstm(tmp_path):
    """The paper's unstabilised clamp max(|n^T q|, 1) on stabilised states: h depends on m."""
    return _variant(tmp_path, "mlstm", '"max(abs(dot(n, q)), exp(-m))"', '"max(abs(dot(n, q)), 1)"')


@pytest.mark.parametrize("claim", M.MATRIX_CLAIMS, ids=lambda c: c[0])
def test_every_proof_holds(claim):
    ok, how = claim[2]()
    assert ok, how


def test_the_eigenvalue_proof_fails_for_i_plus_beta_kkT(plus_delta_rule):
    ok, _ = M._proof_eigenvalues(plus_delta_rule)
    assert not ok


def test_the_stabiliser_proof_fails_when_m_leaks_into_h(leaky_mlstm):
    ok, _ = M._proof_stabiliser(leaky_mlstm)
    assert not ok


@settings(max_examples=20, deadline=None)
@given(M.CASES)
def test_delta_rule_jvp_eigenvalues(case):
    """Property: for a drawn unit k and beta in (0.01, 0.99) the kernel's step_jvp scales
    ΔS = u k^T by alpha (1 - beta) and ΔS = u w^T (w ⊥ k) by alpha."""
    M.eigenvalue_check()(case)


@settings(max_examples=10, deadline=None)
@given(M.CASES)
def test_mlstm_held_stabiliser_backward_equals_full(case):
    """Property: the mLSTM backward with m held equals the full BPTT for every parameter."""
    M.stabiliser_check()(case)


def test_the_eigenvalue_check_finds_the_plus_rule(plus_delta_rule):
    with pytest.raises(PropertyFailure, match="outside"):
        M.eigenvalue_check(plus_delta_rule)((0, 3, 0.5, 1.0))


def test_the_stabiliser_check_finds_the_leak(leaky_mlstm):
    """Scale 3 so that exp(-m) and 1 are far apart and the clamp is active somewhere."""
    with pytest.raises(PropertyFailure):
        for seed in range(5):
            M.stabiliser_check(leaky_mlstm)((seed, 3, 0.5, 3.0))


def test_claim_specs_report_proved():
    """claim_specs with a minimal runner (5 Hypothesis examples) gives "proved" for both."""
    Spec = namedtuple("Spec", "id statement source run")

    def run_property(check, strategy, ctx):
        try:
            settings(max_examples=5, deadline=None)(given(strategy)(lambda c: check(c)))()
        except PropertyFailure as exc:
            return 5, (str(exc), "")
        return 5, None

    got = {s.id: s.run(None)["verdict"] for s in M.claim_specs(Spec, run_property)}
    assert got == {c[0]: "proved" for c in M.MATRIX_CLAIMS}
