"""minLSTM, sLSTM and LRU (issue 16), derived from their specs in derive/cells/, against
independent oracles:

* every step-Jacobian block and every output of the backward step, expanded at H = D = 2,
  equals SymPy's ``Matrix.jacobian`` / scalar ``diff`` of the explicit forward step
  (verify.explicit);
* the generated kernels' step Jacobian and BPTT gradients equal central finite differences
  (verify.oracles), for every parameter, the initial state and the inputs;
* forward states and gradients equal PyTorch autograd of implementations written here from
  the papers' equations (complex arithmetic for the LRU; skipped without torch);
* the sLSTM backward with the stabiliser m held constant (``cell.holding("m")``) gives the
  same gradients as the full BPTT.
"""
import numpy
import pytest
import sympy

import derive
from verify import oracles
from verify.explicit import entries_equal, expand

B, T, D, H = 2, 4, 3, 3
CELLS = ["minlstm", "slstm", "lru"]


def _state0(name, rng):
    k = derive.kernels(name)
    s = [rng.standard_normal((B, H)) for _ in k.STATE]
    if name == "slstm":                       # n > 0 (h = o c / n), m any real
        s[k.STATE.index("n")] = rng.uniform(0.5, 2.0, (B, H))
    return tuple(s)


def _setup(name, seed=0):
    k = derive.kernels(name)
    rng = numpy.random.default_rng(seed)
    p = k.init_params(D, H, rng=rng)
    xs = rng.standard_normal((T, B, D))
    return k, p, xs, _state0(name, rng)


@pytest.mark.parametrize("name", CELLS)
def test_step_jacobian_blocks_equal_sympy_jacobian(name):
    """Every block d s_t / d s'_{t-1}, explicit at H = D = 2, entry by entry."""
    c = derive.cell(name)
    ex = expand(name, 2)
    for of in c.states:
        for wrt in c.states:
            bad = entries_equal(ex.derived_jacobian(of, wrt), ex.oracle_jacobian(of, wrt))
            assert not bad, (of, wrt, bad[:1])


@pytest.mark.parametrize("name", CELLS)
def test_backward_equals_sympy_gradients(name):
    """Every output of the backward step (each delta s_prev, delta x, each parameter's
    gradient) equals SymPy's gradient of L = sum_s Delta_s . s_t at H = D = 2."""
    c = derive.cell(name)
    ex = expand(name, 2)
    got = ex.derived_backward()
    wrts = [(s, f"{s}_prev") for s in c.states] + [("x", "x")] + [(p, p) for p in c.params]
    for wrt, key in wrts:
        want = ex.oracle_vjp(wrt)
        have = got.get(key, sympy.zeros(*want.shape))
        assert not entries_equal(sympy.ImmutableMatrix(have), want), key


@pytest.mark.parametrize("name", CELLS)
def test_kernel_step_jacobian_against_finite_differences(name):
    k, p, xs, s0 = _setup(name, 1)
    J = k.step_jacobian(p, xs[0], s0)
    flat = numpy.concatenate(s0, axis=1)

    def step(v):
        return numpy.concatenate(k.step(p, xs[0], tuple(numpy.split(v, len(s0), axis=1))), axis=1)
    numpy.testing.assert_allclose(J, oracles.fd_jacobian(step, flat, batch=1), atol=1e-7, rtol=0)


@pytest.mark.parametrize("name", CELLS)
def test_kernel_backward_against_finite_differences(name):
    """BPTT over T = 4 for L = sum(dhs * outputs) + sum(dS * final state), every gradient."""
    k, p, xs, s0 = _setup(name, 2)
    rng = numpy.random.default_rng(3)
    dhs = rng.standard_normal((T, B, H))
    dS = tuple(rng.standard_normal((B, H)) for _ in s0)
    hs, cache = k.forward(p, xs, s0)
    grads, dstate0, dxs = k.backward(p, cache, dhs, dS, return_dxs=True)

    def loss(params=p, x=xs, s=s0):
        out, c = k.forward(params, x, s)
        final = [c["S"][i][-1] for i in range(len(s))]
        return float((out * dhs).sum() + sum((a * b).sum() for a, b in zip(final, dS)))

    for n in p:
        fd = oracles.fd_gradient(lambda a: loss(params={**p, n: a}), p[n])
        numpy.testing.assert_allclose(grads[n], fd, atol=1e-6, rtol=1e-6, err_msg=n)
    for i in range(len(s0)):
        fd = oracles.fd_gradient(lambda a: loss(s=s0[:i] + (a,) + s0[i + 1:]), s0[i])
        numpy.testing.assert_allclose(dstate0[i], fd, atol=1e-6, rtol=1e-6, err_msg=k.STATE[i])
    numpy.testing.assert_allclose(dxs, oracles.fd_gradient(lambda a: loss(x=a), xs),
                                  atol=1e-6, rtol=1e-6)


def test_slstm_backward_with_the_stabiliser_held_equals_the_full_backward():
    """cell.holding("m") drops every path through m (no delta m at all) and yields the same
    parameter, initial-state (c, n, h) and input gradients as the full BPTT, in float64 to
    1e-12 relative. Its gradient for m_0 is 0; the true one is not (moving m_0 with c_0, n_0
    fixed moves the unstabilised state c_0 e^{m_0}), and the invariance gives it from the
    others: dL/dm_0 = dL/dc_0 * c_0 + dL/dn_0 * n_0 (a shift of m_0 by eps acts as scaling
    c_0 and n_0 by e^eps)."""
    full = derive.kernels("slstm")
    held = derive.kernels(derive.cell("slstm").holding("m"))
    _, p, xs, s0 = _setup("slstm", 4)
    dhs = numpy.random.default_rng(5).standard_normal((T, B, H))
    _, cache = full.forward(p, xs, s0)
    g1, d1, x1 = full.backward(p, cache, dhs, return_dxs=True)
    _, cache = held.forward(p, xs, s0)
    g2, d2, x2 = held.backward(p, cache, dhs, return_dxs=True)
    for n in p:
        numpy.testing.assert_allclose(g2[n], g1[n], rtol=1e-12, atol=1e-13, err_msg=n)
    m = full.STATE.index("m")
    for i, s in enumerate(full.STATE):
        want = numpy.zeros_like(d1[i]) if i == m else d1[i]
        numpy.testing.assert_allclose(d2[i], want, rtol=1e-12, atol=1e-13, err_msg=s)
    c, n = full.STATE.index("c"), full.STATE.index("n")
    numpy.testing.assert_allclose(d1[m], d1[c] * s0[c] + d1[n] * s0[n], rtol=1e-12, atol=1e-13)
    numpy.testing.assert_allclose(x2, x1, rtol=1e-12, atol=1e-13)
    held_names = {d.name for d, _ in derive.cell("slstm").holding("m").backward().assignments}
    assert "delta_m" not in held_names and "delta_m" in {
        d.name for d, _ in derive.cell("slstm").backward().assignments}


def test_holding_an_unknown_state_is_refused():
    with pytest.raises(ValueError, match="no state 'q'"):
        derive.cell("slstm").holding("q")


# ---------------------------------------------------------------------------------------
# PyTorch autograd of the papers' equations, written here
# ---------------------------------------------------------------------------------------

def _torch_run(name, p, xs, s0, dhs):
    """(states (T, B, H) per state name, grads dict, d state0 tuple, dxs) by torch autograd of
    L = sum(dhs * output), the recurrences typed from the papers."""
    torch = pytest.importorskip("torch")
    tp = {n: torch.tensor(a, requires_grad=True) for n, a in p.items()}
    x = torch.tensor(xs, requires_grad=True)
    st = [torch.tensor(a, requires_grad=True) for a in s0]
    lin = lambda W, v: v @ W.T                                               # noqa: E731
    seq = {s: [] for s in derive.kernels(name).STATE}
    if name == "minlstm":          # Feng et al. 2024, section 3.2, sequential mode
        h, = st
        for t in range(T):
            f = torch.sigmoid(lin(tp["W_f"], x[t]) + tp["b_f"])
            i = torch.sigmoid(lin(tp["W_i"], x[t]) + tp["b_i"])
            h = f / (f + i) * h + i / (f + i) * (lin(tp["W_h"], x[t]) + tp["b_h"])
            seq["h"].append(h)
    elif name == "slstm":          # Beck et al. 2024, eqs. (8)-(17), exponential forget gate
        c, n, m, h = st
        for t in range(T):
            pre = {g: lin(tp[f"W_{g}"], x[t]) + lin(tp[f"R_{g}"], h) + tp[f"b_{g}"] for g in "zifo"}
            m_new = torch.maximum(pre["f"] + m, pre["i"])
            i_s = torch.exp(pre["i"] - m_new)
            f_s = torch.exp(pre["f"] + m - m_new)
            c = f_s * c + i_s * torch.tanh(pre["z"])
            n = f_s * n + i_s
            h = torch.sigmoid(pre["o"]) * c / n
            m = m_new
            for s, v in zip("cnmh", (c, n, m, h)):
                seq[s].append(v)
    else:                          # Orvieto et al. 2023: complex diagonal recurrence
        lam = torch.exp(torch.complex(-torch.exp(tp["nu"]), torch.exp(tp["theta"])))
        gamma = torch.sqrt(1 - torch.abs(lam) ** 2)
        Bc = torch.complex(tp["B_re"], tp["B_im"])
        xc = torch.complex(st[0], st[1])
        for t in range(T):
            xc = lam * xc + gamma * (x[t].to(Bc.dtype) @ Bc.T)
            seq["xre"].append(xc.real)
            seq["xim"].append(xc.imag)
    out_name = derive.kernels(name).OUTPUT
    states = {s: torch.stack(v) for s, v in seq.items()}
    (states[out_name] * torch.tensor(dhs)).sum().backward()
    grads = {n: a.grad.numpy() for n, a in tp.items()}
    return ({s: v.detach().numpy() for s, v in states.items()}, grads,
            tuple(a.grad.numpy() if a.grad is not None else numpy.zeros_like(a.detach().numpy())
                  for a in st), x.grad.numpy())


@pytest.mark.parametrize("name", CELLS)
def test_against_torch_autograd_of_the_papers_equations(name):
    k, p, xs, s0 = _setup(name, 6)
    dhs = numpy.random.default_rng(7).standard_normal((T, B, H))
    states, tg, ts0, tdx = _torch_run(name, p, xs, s0, dhs)
    hs, cache = k.forward(p, xs, s0)
    tol = dict(rtol=1e-11, atol=1e-12)
    for i, s in enumerate(k.STATE):
        numpy.testing.assert_allclose(cache["S"][i][1:], states[s], **tol, err_msg=s)
    grads, dstate0, dxs = k.backward(p, cache, dhs, return_dxs=True)
    for n in p:
        numpy.testing.assert_allclose(grads[n], tg[n], **tol, err_msg=n)
    for i, s in enumerate(k.STATE):
        numpy.testing.assert_allclose(dstate0[i], ts0[i], **tol, err_msg=s)
    numpy.testing.assert_allclose(dxs, tdx, **tol)
