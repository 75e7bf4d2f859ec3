"""Matrix-free step products of every generated kernel (issue 16): ``step_jvp`` = J v and
``step_vjp`` = J^T u for the step map s_{t-1} -> s_t, checked against central differences of
``step`` (verify.oracles: the directional derivative (step(s + eps v) - step(s - eps v)) / 2eps
and the gradient of <u, step(s)>), never against step_jacobian; and step_jacobian's refusal
to materialise a Jacobian above its limit, naming both alternatives."""
import numpy
import pytest

import derive
from conftest import flat_states, split_states, state_shapes, states_like
from verify import oracles

B, D, H = 2, 3, 4


def _case(name, seed=0):
    k = derive.kernels(name)
    rng = numpy.random.default_rng(seed)
    p = k.init_params(D, H, rng=rng)
    x = rng.standard_normal((B, D))
    s = states_like(k, B, H, lambda shape: rng.uniform(0.5, 1.5, shape))   # n > 0 for slstm
    v = states_like(k, B, H, rng.standard_normal)
    return k, p, x, s, v


def _flat(states):
    return flat_states(states)


def _split(a, k):
    return split_states(a, state_shapes(k, B, H))


@pytest.mark.parametrize("name", derive.cells())
def test_step_jvp_is_the_directional_derivative_of_step(name):
    k, p, x, s, v = _case(name)
    got = _flat(k.step_jvp(p, x, s, v))
    fd = oracles.central_difference(
        lambda e: _flat(k.step(p, x, _split(_flat(s) + e[0] * _flat(v), k))), numpy.zeros(1))
    numpy.testing.assert_allclose(got, fd[..., 0], atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize("name", derive.cells())
def test_step_vjp_is_the_gradient_of_the_pairing_with_u(name):
    k, p, x, s, u = _case(name, 1)
    got = _flat(k.step_vjp(p, x, s, u))
    fd = oracles.fd_gradient(lambda a: float((_flat(k.step(p, x, _split(a, k))) * _flat(u)).sum()),
                             _flat(s))
    numpy.testing.assert_allclose(got, fd, atol=1e-7, rtol=1e-7)


def test_step_products_keep_float32_and_check_their_tangent():
    k, p, x, s, v = _case("lstm")
    p32 = {a: b.astype(numpy.float32) for a, b in p.items()}
    f32 = lambda t: tuple(a.astype(numpy.float32) for a in t)          # noqa: E731
    assert all(a.dtype == numpy.float32 for a in k.step_jvp(p32, x.astype(numpy.float32), f32(s), f32(v)))
    assert all(a.dtype == numpy.float32 for a in k.step_vjp(p32, x.astype(numpy.float32), f32(s), f32(v)))
    with pytest.raises(ValueError, match="dstate_prev"):
        k.step_jvp(p, x, s, (v[0],))


def test_step_jacobian_refuses_a_jacobian_above_its_limit(monkeypatch):
    """With the limit lowered below B S^2 8 bytes, step_jacobian raises one line naming the
    shape, its size and both matrix-free alternatives; they still work."""
    k, p, x, s, v = _case("lstm")
    module = k.module if hasattr(k, "module") else k
    monkeypatch.setattr(module, "JACOBIAN_LIMIT_BYTES", 100)
    with pytest.raises(ValueError) as err:
        k.step_jacobian(p, x, s)
    msg = str(err.value)
    assert "\n" not in msg and "(2, 8, 8)" in msg and "step_jvp" in msg and "step_vjp" in msg
    assert len(k.step_jvp(p, x, s, v)) == 2
