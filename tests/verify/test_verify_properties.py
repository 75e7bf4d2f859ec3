"""The cell property suites of verify.properties, run on every cell under the active
Hypothesis profile. Each property states in its docstring what it checks; here they run
against the derived kernels, and against deliberately broken inputs to show they can fail."""
import numpy
import pytest
from hypothesis import given, settings, strategies as st

import derive
from verify import properties as P
from verify import strategies as vst

CELLS = derive.cells()
RNN_CELLS = [c for c in CELLS if P.recurrence_structure(c) is not None]
DIRECT = [c for c in CELLS if P.direct_path_gate(c) is not None]
GATED = [c for c in CELLS if any(isinstance(eq.rhs, derive.core.primitives.Sigmoid)
                                 for eq in derive.cell(c).equations)]
SMALL = dict(hidden=st.integers(1, 3), batch=st.integers(1, 2), input_size=st.integers(1, 2))


def _skip_kinks(fn, case):
    try:
        return fn(case)
    except P.NotApplicable:
        return None


def test_structure_is_read_from_the_derivations():
    assert set(RNN_CELLS) == {"rnn_relu", "rnn_sigmoid", "rnn_tanh"}
    prim, W = P.recurrence_structure("rnn_sigmoid")
    assert prim is derive.core.primitives.Sigmoid and W == "W_hh"
    assert P.direct_path_gate("lstm") == "f"
    assert P.direct_path_gate("lstm_peephole") is None     # peepholes add terms (seed erratum 10)


#: Per-cell tests run a fifth of the profile's examples (5 dev, 20 ci, 200 thorough) for each of
#: the 16 cells; ``python -m verify`` runs the full count per cell.
PER_CELL = settings(max_examples=max(5, settings().max_examples // 5))


@pytest.mark.parametrize("name", CELLS)
@PER_CELL
@given(data=st.data())
def test_step_properties(name, data):
    """One drawn step, float64 or float32: kernel step == equations; every gate in (0, 1);
    derived step Jacobian == finite differences (relu kinks skipped)."""
    dtype = data.draw(st.sampled_from([numpy.float64, numpy.float32]), label="dtype")
    case = data.draw(vst.step_cases(name, dtype=dtype, scale=2.0, **SMALL))
    P.forward_matches_equations(case)
    if name in GATED:
        assert P.gates_in_unit_interval(case) > 0
    _skip_kinks(P.step_jacobian_matches_fd, case)


@pytest.mark.parametrize("name", CELLS)
@PER_CELL
@given(data=st.data())
def test_sequence_properties(name, data):
    """One drawn sequence: BPTT == finite differences for every parameter and initial state
    (relu kinks skipped); the LSTM direct path where the derived block is diag(f)."""
    case = data.draw(vst.sequence_cases(name, steps=st.integers(1, 3), **SMALL))
    _skip_kinks(P.backward_matches_fd, case)
    if name in DIRECT:
        P.lstm_direct_path(case)


@pytest.mark.parametrize("name", RNN_CELLS)
@given(data=st.data())
def test_step_norm_bound(name, data):
    case = data.draw(vst.step_cases(name, scale=3.0, recurrent_norm=st.floats(0.0, 10.0)))
    assert P.step_jacobian_norm_bound(case) <= 1 + 1e-12


@pytest.mark.parametrize("name", RNN_CELLS)
@given(data=st.data())
def test_chain_norm_bound(name, data):
    case = data.draw(vst.sequence_cases(name, steps=st.integers(1, 6), scale=2.0,
                                        recurrent_norm=st.floats(0.0, 10.0)))
    assert P.jacobian_chain_bound(case) > 0


def test_direct_path_is_not_the_whole_story():
    """Through h, c_{t-1} reaches c_t by other paths: the full dc_t/dc_k differs."""
    rng = numpy.random.default_rng(0)
    k = P.reference_kernels("lstm")
    p = {n: v * 3 for n, v in k.init_params(2, 3, rng=rng).items()}
    case = vst.SequenceCase("lstm", p, rng.standard_normal((4, 1, 2)),
                            tuple(rng.standard_normal((1, 3)) for _ in k.STATE))
    assert P.lstm_direct_path(case) > 1e-3


# ---- the properties can fail ----------------------------------------------------------------

def _rnn_case(W_scale):
    rng = numpy.random.default_rng(1)
    k = P.reference_kernels("rnn_tanh")
    p = k.init_params(2, 3, rng=rng)
    p["W_hh"] = p["W_hh"] * W_scale
    return vst.StepCase("rnn_tanh", p, rng.standard_normal((2, 2)), (rng.standard_normal((2, 3)),))


def test_norm_bound_fails_with_a_wrong_gamma(monkeypatch):
    """With gamma replaced by 1/4 (the sigmoid's) the tanh cell violates the bound."""
    monkeypatch.setattr(derive.core.primitives.Tanh, "gamma", classmethod(lambda cls: 0.25))
    with pytest.raises(P.PropertyFailure, match="gamma"):
        P.step_jacobian_norm_bound(_rnn_case(1.0))


def test_fd_property_fails_on_a_wrong_jacobian(monkeypatch):
    k = P.reference_kernels("rnn_tanh")
    real = k.step_jacobian
    monkeypatch.setattr(k, "step_jacobian", lambda p, x, s: numpy.swapaxes(real(p, x, s), 1, 2))
    with pytest.raises(P.PropertyFailure, match="finite differences"):
        P.step_jacobian_matches_fd(_rnn_case(1.0))


def test_gate_property_fails_on_a_gate_outside_the_interval(monkeypatch):
    from derive.codegen import np_primitives as npp
    monkeypatch.setattr(npp, "sigmoid", lambda x: numpy.asarray(x) * 0 + 1.0)
    with pytest.raises(P.PropertyFailure, match="not in \\(0, 1\\)"):
        P.gates_in_unit_interval(vst.StepCase("lstm", *_lstm_arrays()))


def _lstm_arrays():
    rng = numpy.random.default_rng(2)
    k = P.reference_kernels("lstm")
    return k.init_params(2, 2, rng=rng), rng.standard_normal((1, 2)), \
        tuple(rng.standard_normal((1, 2)) for _ in k.STATE)


def test_relu_kinks_are_skipped_not_failed():
    p = {"W_xh": numpy.zeros((1, 1)), "W_hh": numpy.zeros((1, 1)), "b_h": numpy.zeros(1)}
    case = vst.SequenceCase("rnn_relu", p, numpy.zeros((1, 1, 1)), (numpy.zeros((1, 1)),))
    with pytest.raises(P.NotApplicable, match="kink"):
        P.backward_matches_fd(case)
