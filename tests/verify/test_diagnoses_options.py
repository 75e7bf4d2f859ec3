"""check_cell's options and measured diagnoses on step code written here: the scale ladder
(a hand tanh that is NaN above 710), allow_upcast, skip=("dx",), upstream={"c": 0},
biases=False, an ignored upstream gradient, all-zero outputs, in-place changes of the
upstream gradient, reproducibility. Plants are first checked by central differences."""
import numpy
import pytest

from verify import CS231nLayout, check_cell
from verify.oracles import central_difference

from test_sequence_layouts import tanh_by_hand
from test_verify_conformance import lstm_step_backward, lstm_step_forward

N = 25


def rnn_step(p, x, state, act=numpy.tanh):
    return (act(x @ p["W_xh"].T + state[0] @ p["W_hh"].T + p["b_h"]),)


def rnn_step_backward(p, x, state, dstate, bug=None):
    h = rnn_step(p, x, state)[0]
    da = dstate[0] * (1 - h ** 2)
    grads = {"W_xh": da.T @ x, "W_hh": da.T @ state[0], "b_h": da.sum(0)}
    if bug == "zero_dx":
        return grads, numpy.zeros_like(x), (da @ p["W_hh"],)
    if bug == "no_dx":
        return grads, None, (da @ p["W_hh"],)
    return grads, da @ p["W_xh"], (da @ p["W_hh"],)


def test_the_rnn_plant_matches_central_differences():
    rng = numpy.random.default_rng(0)
    p = {"W_xh": rng.uniform(-1, 1, (3, 2)), "W_hh": rng.uniform(-1, 1, (3, 3)), "b_h": rng.uniform(-1, 1, 3)}
    x, h, dh = rng.uniform(-1, 1, (2, 2)), rng.uniform(-1, 1, (2, 3)), rng.uniform(-1, 1, (2, 3))
    L = lambda p2, x2, h2: numpy.array(float((rnn_step(p2, x2, (h2,))[0] * dh).sum()))  # noqa: E731
    g, dx, (dhp,) = rnn_step_backward(p, x, (h,), (dh,))
    for k in p:
        numpy.testing.assert_allclose(g[k], central_difference(lambda a, k=k: L({**p, k: a}, x, h), p[k]), atol=1e-7)
    numpy.testing.assert_allclose(dx, central_difference(lambda a: L(p, a, h), x), atol=1e-7)
    numpy.testing.assert_allclose(dhp, central_difference(lambda a: L(p, x, a), h), atol=1e-7)


def test_the_default_scale_ladder_finds_the_nan_tanh():
    fwd = lambda p, x, s: rnn_step(p, x, s, act=tanh_by_hand)  # noqa: E731
    assert check_cell("rnn_tanh", forward=fwd, max_examples=N, seed=1, scale=1.0).ok
    r = check_cell("rnn_tanh", forward=fwd, max_examples=N, seed=1)
    assert not r.ok and "nan" in str(r), str(r)


def test_allow_upcast():
    fwd = lambda p, x, s: tuple(a.astype(numpy.float64) for a in rnn_step(p, x, s))  # noqa: E731
    r = check_cell("rnn_tanh", forward=fwd, dtype=numpy.float32, max_examples=N, seed=2)
    assert not r.ok and "allow_upcast=True" in str(r)
    assert check_cell("rnn_tanh", forward=fwd, dtype=numpy.float32, max_examples=N, seed=2,
                      allow_upcast=True).ok


def test_skip_dx_for_code_that_does_not_compute_it():
    bwd = lambda *a: rnn_step_backward(*a, bug="no_dx")  # noqa: E731
    assert not check_cell("rnn_tanh", backward=bwd, max_examples=N, seed=3).ok
    assert check_cell("rnn_tanh", backward=bwd, max_examples=N, seed=3, skip=("dx",)).ok


def test_an_all_zero_dx_is_named():
    bwd = lambda *a: rnn_step_backward(*a, bug="zero_dx")  # noqa: E731
    r = check_cell("rnn_tanh", backward=bwd, max_examples=N, seed=3)
    assert "backward dx is all zeros" in r.diagnosis, str(r)


def _ignores_dc(dnext_h, dnext_c, cache):
    return lstm_step_backward(dnext_h, 0 * dnext_c, cache)


def test_an_ignored_upstream_gradient_is_named_and_upstream_c_0_accepts_it():
    r = check_cell("lstm", forward=lstm_step_forward, backward=_ignores_dc,
                   layout=CS231nLayout("lstm"), max_examples=N, seed=4)
    assert not r.ok
    assert any("ignores the upstream gradient dc_next" in d for d in r.diagnosis), str(r)
    assert check_cell("lstm", forward=lstm_step_forward, backward=_ignores_dc,
                      layout=CS231nLayout("lstm"), max_examples=N, seed=4, upstream={"c": 0}).ok


def test_biases_false_for_bias_free_code():
    def fwd(p, x, s):
        return (numpy.tanh(x @ p["W_xh"].T + s[0] @ p["W_hh"].T),)
    assert not check_cell("rnn_tanh", forward=fwd, max_examples=N, seed=5).ok
    assert check_cell("rnn_tanh", forward=fwd, max_examples=N, seed=5, biases=False).ok


def test_an_in_place_change_of_the_upstream_gradient_is_named():
    def bwd(dnext_h, dnext_c, cache):
        out = lstm_step_backward(dnext_h, dnext_c, cache)
        dnext_c += 1.0                                   # as in 3 of 4 course LSTMs
        return out
    r = check_cell("lstm", forward=lstm_step_forward, backward=bwd, layout=CS231nLayout("lstm"),
                   max_examples=N, seed=6)
    assert not r.ok and "dc_next" in str(r), str(r)


def test_same_seed_same_verdict_minimal_case_and_diagnosis():
    run = lambda: check_cell("lstm", forward=lstm_step_forward, backward=_ignores_dc,  # noqa: E731
                             layout=CS231nLayout("lstm"), max_examples=N, seed=7)
    a, b = run(), run()
    assert str(a) == str(b) and a.examples == b.examples


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match="upstream must map states of 'lstm'"):
        check_cell("lstm", forward=lstm_step_forward, layout=CS231nLayout("lstm"), upstream={"q": 0})
    with pytest.raises(TypeError, match="skip must be a tuple"):
        check_cell("rnn_tanh", forward=rnn_step, skip="dx")
    with pytest.raises(ValueError, match="scale must be a positive number"):
        check_cell("rnn_tanh", forward=rnn_step, scale=(1, -1))
