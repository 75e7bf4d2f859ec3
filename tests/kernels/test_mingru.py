"""minGRU (Feng, Tung, Ahmed, Bengio, Hajimirsadeghi 2024, sequential form), derived from
derive/cells/mingru.toml, against independent oracles:

* the engine's step Jacobian is exactly diag(1 - z) (the gates see x only): symbolically,
  against SymPy's ``Matrix.jacobian`` of the explicit H = 3 expansion (verify.explicit);
* the generated kernels (forward, backward, step_jacobian) against central finite
  differences (verify.oracles);
* forward and BPTT gradients against PyTorch autograd of a minGRU written here from the
  paper's equations (skipped without torch);
* Hypothesis: z in (0, 1) and every step-Jacobian entry in [0, 1) off the diagonal 0,
  on it 1 - z in (0, 1).
"""
import numpy
import pytest
import sympy
from hypothesis import given, strategies as st

import derive
from verify import oracles
from verify.explicit import expand

B, T, D, H = 2, 4, 3, 3


def _setup(seed=0, scale=1.0):
    k = derive.kernels("mingru")
    rng = numpy.random.default_rng(seed)
    p = {n: a * scale for n, a in k.init_params(D, H, rng=rng).items()}
    xs = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H))
    return k, p, xs, h0


def test_spec_has_the_papers_parameters_and_equations():
    c = derive.cell("mingru")
    assert list(c.params) == ["W_z", "b_z", "W_h", "b_h"]
    assert tuple(c.states) == ("h",)


def test_step_jacobian_is_exactly_diag_one_minus_z_symbolically():
    """dh_t/dh_{t-1} from the engine, expanded at H = 3, equals SymPy's Matrix.jacobian of
    the explicit h_t, and both are diag(1 - z_1, 1 - z_2, 1 - z_3) with z_i = sigma(W_z x + b_z)_i:
    every off-diagonal entry is 0 and no entry depends on h_{t-1}."""
    ex = expand("mingru", 3, 2)
    oracle = ex.oracle_jacobian("h", "h")
    derived = ex.explicit(derive.cell("mingru").step_jacobian()[("h", "h")])
    assert sympy.simplify(oracle - derived) == sympy.zeros(3, 3)
    z = ex.values["z"]
    want = sympy.diag(*[1 - z[i] for i in range(3)])
    assert sympy.simplify(oracle - want) == sympy.zeros(3, 3)
    assert not (oracle.free_symbols & set(ex.prev_symbols("h")))


def test_backward_matches_sympy_vjps():
    """Every BPTT output of the engine (delta h_prev, delta x, the four parameter
    gradients) equals SymPy's gradient of L = Delta_h . h_t at H = 3, D = 2."""
    ex = expand("mingru", 3, 2)
    got = ex.derived_backward()
    for wrt, name in [("h", "h_prev"), ("x", "x"), ("W_z", "W_z"), ("b_z", "b_z"),
                      ("W_h", "W_h"), ("b_h", "b_h")]:
        want = ex.oracle_vjp(wrt)
        assert sympy.simplify(sympy.Matrix(got[name]) - sympy.Matrix(want)) == \
            sympy.zeros(*want.shape), name


def test_kernel_step_jacobian_against_finite_differences():
    k, p, xs, h0 = _setup()
    J = k.step_jacobian(p, xs[0], (h0,))
    fd = oracles.fd_jacobian(lambda h: k.step(p, xs[0], (h,))[0], h0, batch=1)
    numpy.testing.assert_allclose(J, fd, atol=1e-8, rtol=0)
    z = 1 / (1 + numpy.exp(-(xs[0] @ p["W_z"].T + p["b_z"])))
    for b in range(B):
        numpy.testing.assert_allclose(J[b], numpy.diag(1 - z[b]), atol=1e-15, rtol=0)


def test_kernel_backward_against_finite_differences():
    """BPTT over T = 4 steps: dL/dtheta, dL/dh0 and dL/dxs for L = sum(dhs * hs)."""
    k, p, xs, h0 = _setup(1)
    dhs = numpy.random.default_rng(2).standard_normal((T, B, H))
    hs, cache = k.forward(p, xs, (h0,))
    grads, dstate0, dxs = k.backward(p, cache, dhs, return_dxs=True)

    def loss(params=p, x=xs, h=h0):
        return float((k.forward(params, x, (h,))[0] * dhs).sum())

    for name in p:
        fd = oracles.fd_gradient(lambda a: loss(params={**p, name: a}), p[name])
        numpy.testing.assert_allclose(grads[name], fd, atol=1e-7, rtol=0, err_msg=name)
    numpy.testing.assert_allclose(dstate0[0], oracles.fd_gradient(lambda a: loss(h=a), h0),
                                  atol=1e-7, rtol=0)
    numpy.testing.assert_allclose(dxs, oracles.fd_gradient(lambda a: loss(x=a), xs),
                                  atol=1e-7, rtol=0)


def test_forward_matches_the_papers_recurrence_in_numpy():
    """hs from the kernel equal the paper's three lines evaluated here in NumPy."""
    k, p, xs, h0 = _setup(3)
    hs, _ = k.forward(p, xs, (h0,))
    h = h0
    for t in range(T):
        z = 1 / (1 + numpy.exp(-(xs[t] @ p["W_z"].T + p["b_z"])))
        htilde = xs[t] @ p["W_h"].T + p["b_h"]
        h = (1 - z) * h + z * htilde
        numpy.testing.assert_allclose(hs[t], h, rtol=1e-13, atol=1e-13)


def test_against_torch_autograd():
    """A minGRU in torch written from the paper (nn.Linear for Lin_z and Lin_h), float64:
    the same hs and, by autograd, the same gradients of L = sum(dhs * hs)."""
    torch = pytest.importorskip("torch")
    k, p, xs, h0 = _setup(4)
    dhs = numpy.random.default_rng(5).standard_normal((T, B, H))
    lin_z = torch.nn.Linear(D, H, dtype=torch.float64)
    lin_h = torch.nn.Linear(D, H, dtype=torch.float64)
    with torch.no_grad():
        lin_z.weight.copy_(torch.from_numpy(p["W_z"]))
        lin_z.bias.copy_(torch.from_numpy(p["b_z"]))
        lin_h.weight.copy_(torch.from_numpy(p["W_h"]))
        lin_h.bias.copy_(torch.from_numpy(p["b_h"]))
    x = torch.from_numpy(xs).requires_grad_()
    h = torch.from_numpy(h0).requires_grad_()
    h_t, outs = h, []
    for t in range(T):
        z = torch.sigmoid(lin_z(x[t]))
        h_tilde = lin_h(x[t])
        h_t = (1 - z) * h_t + z * h_tilde
        outs.append(h_t)
    hs_t = torch.stack(outs)
    (hs_t * torch.from_numpy(dhs)).sum().backward()

    hs, cache = k.forward(p, xs, (h0,))
    grads, dstate0, dxs = k.backward(p, cache, dhs, return_dxs=True)
    tol = dict(rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(hs, hs_t.detach().numpy(), **tol)
    for name, prm in [("W_z", lin_z.weight), ("b_z", lin_z.bias), ("W_h", lin_h.weight),
                      ("b_h", lin_h.bias)]:
        numpy.testing.assert_allclose(grads[name], prm.grad.numpy(), **tol, err_msg=name)
    numpy.testing.assert_allclose(dstate0[0], h.grad.numpy(), **tol)
    numpy.testing.assert_allclose(dxs, x.grad.numpy(), **tol)


@given(seed=st.integers(0, 2 ** 32 - 1), scale=st.floats(0.1, 2.0))
def test_gates_and_jacobian_entries_are_in_the_unit_interval(seed, scale):
    """Property: for random parameters (init scaled by 0.1..2), inputs and states, the
    update gate z = sigma(W_z x + b_z) is in (0, 1) entrywise, and the step Jacobian is
    diagonal with entries 1 - z in (0, 1) (off-diagonal entries exactly 0). Pre-activations
    stay below 12 in magnitude here (|x| <= 3), where float64 sigma is strictly inside (0, 1)."""
    k, p, xs, h0 = _setup(seed % 1000, scale)
    x = numpy.clip(xs[0], -3, 3)
    pre = x @ p["W_z"].T + p["b_z"]
    assert numpy.abs(pre).max() < 30
    z = 1 / (1 + numpy.exp(-pre))
    assert ((z > 0) & (z < 1)).all()
    J = k.step_jacobian(p, x, (h0 * scale,))
    diag = numpy.diagonal(J, axis1=1, axis2=2)
    assert ((diag > 0) & (diag < 1)).all()
    off = J - numpy.stack([numpy.diag(d) for d in diag])
    assert not off.any()
    numpy.testing.assert_allclose(diag, 1 - z, atol=1e-15, rtol=0)
