"""Symbolic proofs of the facts the seed note and the papers state (verify.proofs).

Each proof is a sequence of SymPy computations; a test asserts the proof holds and, where
a statement is false in a nearby form, that the proof machinery rejects it.
* sigma' = sigma (1 - sigma), proved against SymPy's diff of 1/(1 + e^-x);
* 0 < sigma' <= 1/4, maximum only at 0 (via 1/4 - s(1-s) = (s - 1/2)^2);
* 0 < tanh' <= 1, maximum only at 0;
* every gate of every cell lies in (0, 1);
* ||dh_t/dh_{t-1}||_2 <= gamma ||W_hh||_2 from the derived form diag(phi'(a)) W_hh, gamma
  1/4 (sigmoid), 1 (tanh, relu); the chain version with the ordered product;
* LSTM without peepholes: dc_t/dc_{t-1} = diag(f_t), derived and by the explicit oracle.
The float behaviour near the bounds (one ulp above 1/4 at 0, underflow) is not claimed
here; see tooling-findings.md and the float-kernel property tests.
"""
import numpy
import pytest
import sympy

import derive
from derive.codegen import np_primitives as numpy_primitives
from derive.core.primitives import Relu, Sigmoid, Tanh
from verify import proofs


def _check(proof):
    assert proof, str(proof)
    assert proof.steps and not any(s.startswith("FAILED") for s in proof.steps)
    return proof


def test_sigmoid_derivative_identity():
    p = _check(proofs.sigmoid_derivative())
    assert "sigma (1 - sigma)" in p.claim


def test_sigmoid_prime_bounds():
    p = _check(proofs.sigmoid_prime_bounds())
    text = str(p)
    assert "(s - 1/2)^2" in text and "[0]" in text


def test_tanh_prime_bounds():
    _check(proofs.tanh_prime_bounds())


def test_relu_prime_bounds():
    _check(proofs.relu_prime_bounds())


def test_bound_is_exact_not_just_an_upper_bound():
    """sigma'(x) < 1/4 strictly away from 0, and = 1/4 at 0 (exact arithmetic)."""
    x = sympy.Symbol("x", real=True)
    d = Sigmoid.derivative.scalar(x)
    for v in (sympy.Rational(1, 10**6), -sympy.Rational(1, 10**6), 3, -40):
        val = d.subs(x, v)
        assert 0 < val < sympy.Rational(1, 4)
    assert sympy.nsimplify(d.subs(x, 0)) == sympy.Rational(1, 4)


def test_proof_object_reports_a_failed_step():
    p = proofs.Proof("a false claim")
    p.step("1 = 1", True)
    p.step("1 = 2", False)
    assert not p and "NOT proved" in str(p) and "FAILED" in str(p)


@pytest.mark.parametrize("name", derive.cells())
def test_gates_in_unit_interval(name):
    cell = derive.cell(name)
    p = _check(proofs.gates_in_unit_interval(cell))
    if name.startswith("lstm") or name.startswith("gru"):
        assert proofs.gate_names(cell), f"{name}: no gates found"


def test_lstm_gates_are_i_f_o():
    assert proofs.gate_names(derive.cell("lstm_peephole")) == ["i", "f", "o"]
    assert proofs.gate_names(derive.cell("rnn_sigmoid")) == []   # h is a state, not a gate


@pytest.mark.parametrize("name,gamma", [("rnn_sigmoid", sympy.Rational(1, 4)), ("rnn_tanh", 1)])
def test_norm_bound_for_the_seed_rnns(name, gamma):
    p = _check(proofs.jacobian_norm_bound(derive.cell(name)))
    assert p.claim.endswith(f"<= {gamma} ||W_hh||_2")


@pytest.mark.parametrize("name", proofs.elman_cells())
def test_norm_bound_for_every_elman_cell(name):
    _check(proofs.jacobian_norm_bound(derive.cell(name)))


def test_elman_cells_include_the_seed_cells():
    assert {"rnn_sigmoid", "rnn_tanh"} <= set(proofs.elman_cells())


def test_norm_bound_is_refused_for_a_non_diagonal_block():
    """The GRU's dh/dh is not diag(phi') W; the proof must not claim the Elman bound."""
    assert not proofs.jacobian_norm_bound(derive.cell("gru"))
    assert not proofs.jacobian_norm_bound(derive.cell("lstm_peephole"))


def test_chain_bound():
    _check(proofs.chain_bound())
    _check(proofs.norm_bound())


@pytest.mark.parametrize("name", ["rnn_sigmoid", "rnn_tanh"])
def test_norm_bound_numerically(name):
    """Sanity check of the proved bound on random draws: ||diag(phi'(a)) W||_2 <= gamma ||W||_2
    (float64; the margin 1e-12 covers rounding in the SVD)."""
    cell = derive.cell(name)
    phi = cell.definition("h")
    fprime = getattr(numpy_primitives, phi.derivative.numpy)
    gamma = float(phi.gamma())
    rng = numpy.random.default_rng(7)
    for _ in range(50):
        n = int(rng.integers(1, 9))
        W = rng.normal(size=(n, n)) * rng.uniform(0.1, 5)
        a = rng.normal(size=n) * rng.uniform(0.01, 3)
        J = fprime(a)[:, None] * W
        assert numpy.linalg.norm(J, 2) <= gamma * numpy.linalg.norm(W, 2) * (1 + 1e-12)


def test_lstm_direct_path():
    p = _check(proofs.lstm_direct_path("lstm"))
    assert "DiagMatrix(f)" in str(p)


def test_direct_path_claim_fails_for_the_peephole_lstm():
    """Seed erratum 10: with peepholes, dc_t/dc_{t-1} is not diag(f_t)."""
    assert not proofs.lstm_direct_path("lstm_peephole", sizes=(1,))


def test_gamma_values():
    assert Sigmoid.gamma() == sympy.Rational(1, 4)
    assert Tanh.gamma() == 1 and Relu.gamma() == 1
