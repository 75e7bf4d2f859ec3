"""Hypothesis properties of the modern cells' generated kernels, read from the forward cache
(``cache["V"]``: the kept intermediate values, each (T, B, ...)), in float64:

* minLSTM: the normalised gates f' = f/(f+i), i' = i/(f+i) sum to 1;
* sLSTM / mLSTM: the stabilised exponential gates i' = exp(i~ - m), f' = exp(f~ + m_prev - m)
  lie in (0, 1], and one of them is 1 (m is the larger of their exponents);
* Gated DeltaNet: the decay alpha = exp(-exp(a) softplus(.)) and the writing strength
  beta = sigmoid(.) lie in (0, 1).

The data are bounded (entries uniform in [-scale, scale], scale <= 2, D = 3) so that no
pre-activation leaves about [-15, 15]: beyond that float64 rounds sigmoid to 1 or
softplus(z) below the ulp of 1, and the open intervals would fail by rounding, not by the
cells.
"""
import numpy
from hypothesis import given, settings
from hypothesis import strategies as st

import derive
from conftest import state_shapes

T, B, D, H = 5, 2, 3, 4
SETTINGS = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2 ** 32 - 1)
scales = st.floats(0.05, 2.0)


def _run(name, seed, scale, state=None):
    """forward of the named kernel on data uniform in [-scale, scale] (the states by
    ``state(name, shape, rng)`` when given): (K, params, xs, state0, cache)."""
    K = derive.kernels(name)
    rng = numpy.random.default_rng(seed)
    p = {k: rng.uniform(-scale, scale, v.shape) for k, v in K.init_params(D, H, rng=rng).items()}
    xs = rng.uniform(-scale, scale, (T, B, D))
    s0 = tuple((state or (lambda s, sh, r: r.uniform(-scale, scale, sh)))(s, sh, rng)
               for s, sh in zip(K.STATE, state_shapes(K, B, H)))
    _, cache = K.forward(p, xs, s0)
    return K, p, xs, s0, cache


@SETTINGS
@given(seed=seeds, scale=scales)
def test_minlstm_normalised_gates_sum_to_one(seed, scale):
    """minLSTM: f'_t + i'_t = 1 entry by entry, within 1e-15 relative (a few ulps of 1), for
    the kernel's stored f', i' and for f/(f+i) + i/(f+i) recomputed from its stored f, i;
    both gates in (0, 1)."""
    _, _, _, _, cache = _run("minlstm", seed, scale)
    V = cache["V"]
    for fp, ip in ((V["fprime"], V["iprime"]),
                   (V["f"] / (V["f"] + V["i"]), V["i"] / (V["f"] + V["i"]))):
        numpy.testing.assert_allclose(fp + ip, 1.0, rtol=1e-15, atol=0)
        assert ((fp > 0) & (fp < 1) & (ip > 0) & (ip < 1)).all()


def _xlstm_state(name, shape, rng):
    """C, n, h: uniform in [-1, 1]; m: the stabiliser, uniform in [-3, 3]."""
    return rng.uniform(-3, 3, shape) if name == "m" else rng.uniform(-1, 1, shape)


@SETTINGS
@given(seed=seeds, scale=scales, name=st.sampled_from(["slstm", "mlstm"]))
def test_xlstm_stabilised_gates_lie_in_unit_interval(seed, scale, name):
    """sLSTM / mLSTM: the stored i' = exp(i~ - m_t) and f' = exp(f~ + m_{t-1} - m_t) lie in
    (0, 1] at every step (m_t = max(f~ + m_{t-1}, i~) is at least both exponents), and their
    maximum is 1 within 1e-15 (m_t equals one of the two); i' is also recomputed from the
    stored i~ and the cached states m_t."""
    K, _, _, _, cache = _run(name, seed, scale, _xlstm_state)
    V = cache["V"]
    ip, fp = V["iprime"], V["fprime"]
    for g in (ip, fp):
        assert ((g > 0) & (g <= 1)).all()
    numpy.testing.assert_allclose(numpy.maximum(ip, fp), 1.0, rtol=0, atol=1e-15)
    m = cache["S"][K.STATE.index("m")]                       # (T + 1, B, ...): m_0 .. m_T
    numpy.testing.assert_allclose(numpy.exp(V["itilde"] - m[1:]), ip, rtol=1e-15, atol=0)


@SETTINGS
@given(seed=seeds, scale=scales)
def test_gated_deltanet_alpha_and_beta_lie_in_open_unit_interval(seed, scale):
    """Gated DeltaNet: the stored decay alpha_t and writing strength beta_t lie in (0, 1) at
    every step and batch row."""
    _, _, _, _, cache = _run("gated_deltanet", seed, scale)
    V = cache["V"]
    for g in ("alpha", "beta"):
        a = V[g]
        assert a.shape == (T, B, 1), (g, a.shape)
        assert ((a > 0) & (a < 1)).all(), g
