"""The fast paths of the gradient-flow experiment give the public API's numbers and errors.

* :func:`derive.analysis.gradient_flow.bound_params` (parameters validated once) returns
  bit for bit what ``kern.step`` / ``kern.step_jacobian`` return, and the same ValueError
  for a non-finite state or a wrong input shape;
* a kernels object with only the public API (no copied checks) gets the public functions;
* the batched block norms of :func:`accumulate` equal the per-distance SVDs of a brute force
  product (an independent algorithm: ``numpy.linalg.svd`` of each block of each product);
* ``prepare`` of the flow exporter only warms caches: the experiment after it is identical.
"""
import numpy
import pytest

import derive
from derive.analysis import experiment as gx
from derive.analysis import gradient_flow as gf
from derive.export import flow as ef


def _draw(kern, seed=0, B=3, H=4, D=2):
    rng = numpy.random.default_rng(seed)
    params = kern.init_params(D, H, rng=rng)
    x = rng.standard_normal((B, D))
    state = tuple(rng.standard_normal((B, H)) for _ in kern.STATE)
    return params, x, state


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru", "lstm_peephole_full"])
def test_bound_params_equal_the_public_functions_bit_for_bit(name):
    kern = derive.kernels(name)
    params, x, state = _draw(kern)
    step, jac = gf.bound_params(kern, params)
    for got, want in zip(step(x, state), kern.step(params, x, state)):
        assert numpy.array_equal(got, want)
    assert numpy.array_equal(jac(x, state), kern.step_jacobian(params, x, state))


def test_bound_params_keep_the_public_errors():
    kern = derive.kernels("lstm")
    params, x, state = _draw(kern)
    bad = (state[0], numpy.full_like(state[1], numpy.inf))
    step, jac = gf.bound_params(kern, params)
    for fast, public in ((step, kern.step), (jac, kern.step_jacobian)):
        for args in ((x, bad), (x[:, :1], state)):
            with pytest.raises(ValueError) as want:
                public(params, *args)
            with pytest.raises(ValueError) as got:
                fast(*args)
            assert str(got.value) == str(want.value)
    with pytest.raises(ValueError, match="non-finite"):
        gf.bound_params(kern, {**params, "W_hf": params["W_hf"] * numpy.nan})


def test_a_public_only_kernels_object_is_called_through_its_api():
    kern = derive.kernels("gru")
    calls = []

    class Public:
        STATE, PARAMS = kern.STATE, kern.PARAMS

        def step(self, p, x, s):
            calls.append("step")
            return kern.step(p, x, s)

        def step_jacobian(self, p, x, s):
            calls.append("jac")
            return kern.step_jacobian(p, x, s)

    params, x, state = _draw(kern)
    step, jac = gf.bound_params(Public(), params)
    step(x, state)
    jac(x, state)
    assert calls == ["step", "jac"]


@pytest.mark.parametrize("name", ["lstm", "gru_cho"])
def test_batched_block_norms_equal_per_distance_svds(name):
    kern = derive.kernels(name)
    rng = numpy.random.default_rng(7)
    params = kern.init_params(2, 3, rng=rng)
    xs = rng.standard_normal((9, 2, 2))
    flow = gf.gradient_flow(kern, params, xs, ks=[1, 2, 5, 9])
    states = [tuple(numpy.zeros((2, 3)) for _ in kern.STATE)]
    for t in range(8):
        states.append(kern.step(params, xs[t], states[-1]))
    Js = [kern.step_jacobian(params, xs[j], states[j]) for j in range(9)]
    for row, k in enumerate([1, 2, 5, 9]):
        P = Js[8]
        for j in range(8 - 1, 9 - k - 1, -1):
            P = P @ Js[j]
        for i, s in enumerate(kern.STATE):
            block = P[:, 3 * i:3 * i + 3, 3 * i:3 * i + 3]
            want = numpy.log10(numpy.linalg.svd(block, compute_uv=False)[:, 0])
            numpy.testing.assert_allclose(flow.log10[s][row], want, rtol=1e-10, atol=1e-12)


def test_prepare_only_warms_caches():
    """``prepare`` (run in the parent before the workers fork) derives what the experiment
    shares with the symbolic exporters and generates no kernels (each worker generates the
    kernels of its own cells); the CSV equals the one of a run without ``prepare``."""
    cells = [derive.cell("lstm"), derive.cell("rnn_relu")]
    before = ef.csv_text([gx.experiment(c) for c in cells])
    from derive.codegen import runtime
    runtime._CACHE.clear()
    ef.prepare(cells, None)
    assert not runtime._CACHE
    assert ef.csv_text([gx.experiment(c) for c in cells]) == before


@pytest.mark.parametrize("name", ["lnlstm", "mlstm", "lstm"])
def test_jacobians_along_equal_the_per_step_jacobians_bit_for_bit(name):
    kern = derive.kernels(name)
    rng = numpy.random.default_rng(3)
    params = kern.init_params(3, 4, rng=rng)
    xs = rng.standard_normal((9, 2, 3))
    step, jac = gf.bound_params(kern, params)
    prev = gf.states_along(kern, params, xs, step=step)
    along = gf.jacobians_along(jac, xs, prev, first=2)
    for j in range(9, 1, -1):
        assert numpy.array_equal(along(j), jac(xs[j - 1], prev[j - 1]))


@pytest.mark.parametrize("name", ["lnlstm", "mlstm", "gru"])
def test_states_along_in_one_driver_call_equal_the_steps_bit_for_bit(name):
    kern = derive.kernels(name)
    rng = numpy.random.default_rng(5)
    params = kern.init_params(3, 4, rng=rng)
    xs = rng.standard_normal((7, 2, 3))
    step, _ = gf.bound_params(kern, params)
    fast = gf.states_along(kern, params, xs, step=step)
    slow = gf.states_along(kern, params, xs, step=lambda x, s: step(x, s))
    assert len(fast) == len(slow) == 7
    for a, b in zip(fast, slow):
        for u, v in zip(a, b):
            assert numpy.array_equal(u, v)


def test_states_along_keeps_the_step_error_for_a_state_that_overflows():
    kern = derive.kernels("rnn_relu")
    params = kern.init_params(3, 4, rng=numpy.random.default_rng(0))
    params = {**params, "W_hh": numpy.eye(4) * 1e200}
    xs = numpy.full((6, 1, 3), 1e200)
    step, _ = gf.bound_params(kern, params)
    with numpy.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(ValueError) as want:
            gf.states_along(kern, params, xs, step=lambda x, s: step(x, s))
        with pytest.raises(ValueError) as got:
            gf.states_along(kern, params, xs, step=step)
    assert str(got.value) == str(want.value)


@pytest.mark.parametrize("B,D", [(1, 3), (3, 64)])
def test_one_sequence_or_a_wide_input_goes_step_by_step_bit_for_bit(B, D):
    """Stacked rows keep their bits only for narrow products of several rows (BLAS)."""
    kern = derive.kernels("lstm")
    rng = numpy.random.default_rng(11)
    params = kern.init_params(D, 4, rng=rng)
    xs = rng.standard_normal((6, B, D))
    step, jac = gf.bound_params(kern, params)
    fast = gf.states_along(kern, params, xs, step=step)
    slow = gf.states_along(kern, params, xs, step=lambda x, s: step(x, s))
    along = gf.jacobians_along(jac, xs, fast)
    for j in range(6, 0, -1):
        assert all(numpy.array_equal(u, v) for u, v in zip(fast[j - 1], slow[j - 1]))
        assert numpy.array_equal(along(j), jac(xs[j - 1], slow[j - 1]))
