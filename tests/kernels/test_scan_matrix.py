"""The chunked scan of a matrix state (issue 17): S_t = S_{t-1} M_t + B_t.

* detection (derive.core.affine.right_affine_form): Gated DeltaNet's S with
  M_t = alpha (I - beta k k^T) and B_t = beta v k^T, checked against SymPy's explicit H = 2
  expansion (the scalar Jacobian d vec(S_t) / d vec(S_{t-1}) = I (x) M_t^T, and S_t at
  S_{t-1} = 0); cells and specs that are not of this form are refused with the reason;
* forward(method="scan", chunk=K) equals the loop (float64 relative 1e-10, float32 with a
  stated tolerance) for every chunk length, ragged last chunks included, and a float64 loop
  written here at T = 20 000 with the decay near 1 and near 0;
* its backward equals the loop's backward and central differences, from either cache;
* a Hypothesis property over random specs of the same form.
"""
import numpy
import pytest
import sympy
from hypothesis import given, settings, strategies as st
from sympy import Identity

import derive
from derive.core.affine import NotAffine, RightAffineForm, right_affine_form, scan_form
from verify import oracles
from verify.explicit import expand

NAME = "gated_deltanet"


def _case(T, seed=0, dtype=numpy.float64, B=2, D=3, H=4, k=None):
    k = k or derive.kernels(NAME)
    rng = numpy.random.default_rng(seed)
    p = k.init_params(D, H, rng=rng, dtype=dtype)
    xs = rng.standard_normal((T, B, D)).astype(dtype)
    s0 = (rng.standard_normal((B, H, H)).astype(dtype), rng.standard_normal((B, H)).astype(dtype))
    return k, p, xs, s0


def _explicit_matrix(ex, R, n):
    """R (the identity or a product of vectors and transposed vectors) as an explicit matrix."""
    if isinstance(R, Identity):
        return sympy.eye(n)
    out = None
    for f in R.args:
        m = sympy.Matrix(ex.explicit(f))
        out = m if out is None else out * m
    return out


def test_the_right_affine_form_is_the_step_jacobian_exactly():
    """d vec(S_t) / d vec(S_{t-1}) from SymPy's Matrix.jacobian of the explicit H = 2 step
    equals I (x) M_t^T (row-major vec: vec(X M) = (I (x) M^T) vec X), and S_t at S_{t-1} = 0
    equals B_t."""
    form = right_affine_form(derive.cell(NAME))
    assert form.state == "S" and form.readouts == ("o",)
    ex = expand(NAME, 2)
    S, prev = sympy.Matrix(ex.values["S"]), ex.prev_symbols("S")
    M = sympy.zeros(2, 2)
    for c, R in form.M:
        scalar = 1 if c is None else sympy.Matrix(ex.explicit(c))[0]
        M += scalar * _explicit_matrix(ex, R, 2)
    diff = S.jacobian(prev) - sympy.kronecker_product(sympy.eye(2), M.T)
    assert diff.applyfunc(sympy.simplify) == sympy.zeros(4, 4)
    assert not (M.free_symbols & set(prev))
    off = sympy.Matrix(ex.explicit(form.offset)) - S.subs({q: 0 for q in prev})
    assert off.applyfunc(sympy.simplify) == sympy.zeros(4, 1)


SPEC_HEAD = """[cell]
name = "{name}"
states = {states}

[state_shapes]
S = ["H", "H"]

[params]
W_k = ["H", "D"]
W_v = ["H", "D"]
W_q = ["H", "D"]
w_g = ["D"]
b_g = ["1"]

[equations]
k = "W_k @ x"
v = "W_v @ x"
q = "W_q @ x"
g = "sigmoid(dot(w_g, x) + b_g)"
"""


def _spec(tmp_path, name, states, lines):
    path = tmp_path / f"{name}.toml"
    path.write_text(SPEC_HEAD.format(name=name, states=states) + "\n".join(lines) + "\n")
    return derive.cell_from_spec(path)


@pytest.mark.parametrize("eq, why", [
    ('S = "g * outer(k, S_prev @ q) + outer(v, k)"',     # dS -> k (dS q)^T: acts on the rows
     "neither diagonal nor a right multiplication"),
    ('S = "outer(S_prev @ k, S_prev @ k) + outer(v, k)"', r"depends on S_\(t-1\)"),
])
def test_other_matrix_updates_are_refused_with_the_reason(tmp_path, eq, why):
    cell = _spec(tmp_path, "not_right", '["S", "o"]', [eq, 'o = "S @ q"'])
    with pytest.raises(NotAffine, match=why):
        scan_form(cell)
    k = derive.kernels(cell)
    _, p, xs, s0 = _case(3, k=k)
    with pytest.raises(ValueError, match=r"forward\(method='scan'\): .*" + why):
        k.forward(p, xs, s0, method="scan")


def test_mlstm_is_refused_naming_its_stabiliser():
    """mLSTM's forget factor exp(f~ + m_{t-1} - m_t) reads the stabiliser state m."""
    with pytest.raises(NotAffine, match=r"which depends on m_\(t-1\)"):
        scan_form(derive.cell("mlstm"))


@pytest.mark.parametrize("T", [1, 2, 17, 300])
@pytest.mark.parametrize("chunk", [None, 1, 5, 16, 1000])
def test_matrix_scan_equals_loop_float64(T, chunk):
    k, p, xs, s0 = _case(T, seed=T)
    h1, c1 = k.forward(p, xs, s0)
    h2, c2 = k.forward(p, xs, s0, method="scan", chunk=chunk)
    for a, b in zip(c1["S"], c2["S"]):
        assert numpy.abs(a - b).max() <= 1e-10 * max(1.0, numpy.abs(a).max())
    for name, v in c1["V"].items():
        numpy.testing.assert_allclose(c2["V"][name], v, rtol=1e-10, atol=1e-12, err_msg=name)
    numpy.testing.assert_array_equal(h2, c2["S"][1][1:])


@pytest.mark.parametrize("chunk", [None, 64])
def test_matrix_scan_equals_loop_float64_at_4096_steps(chunk):
    k, p, xs, s0 = _case(4096, seed=5, B=1, D=2, H=3)
    h1, _ = k.forward(p, xs, s0)
    h2, _ = k.forward(p, xs, s0, method="scan", chunk=chunk)
    assert numpy.abs(h1 - h2).max() <= 1e-10 * max(1.0, numpy.abs(h1).max())


def test_matrix_scan_equals_loop_float32():
    """float32, T = 1024: within 1e-4 of the largest state (the loop and the scan round in
    different orders; each state is reached through about 3 sqrt(T) compositions)."""
    k, p, xs, s0 = _case(1024, dtype=numpy.float32)
    h1, _ = k.forward(p, xs, s0)
    h2, c2 = k.forward(p, xs, s0, method="scan")
    assert h2.dtype == numpy.float32 and c2["S"][0].dtype == numpy.float32
    assert numpy.abs(h1 - h2).max() <= 1e-4 * max(1.0, float(numpy.abs(h1).max()))


def _reference_loop(p, xs, S):
    """Gated DeltaNet's recurrence written here from the paper (Yang et al. 2024), float64."""
    def unit(u):
        return u / numpy.sqrt((u * u).sum(-1, keepdims=True) + 1e-6)
    out = []
    for x in xs:
        k, q, v = unit(x @ p["W_k"].T), unit(x @ p["W_q"].T), x @ p["W_v"].T
        alpha = numpy.exp(-numpy.exp(p["a"]) * numpy.logaddexp(0, x @ p["w_alpha"] + p["b_alpha"]))
        beta = 1 / (1 + numpy.exp(-(x @ p["w_beta"] + p["b_beta"])))
        Sk = numpy.einsum("bij,bj->bi", S, k)
        S = alpha[:, None, None] * (S - beta[:, None, None] * Sk[:, :, None] * k[:, None, :]) \
            + beta[:, None, None] * v[:, :, None] * k[:, None, :]
        out.append(numpy.einsum("bij,bj->bi", S, q))
    return numpy.array(out)


@pytest.mark.parametrize("decay", [-9.0, 3.0])
def test_long_matrix_sequences_are_stable(decay):
    """T = 20 000: a = -9 puts alpha within 1e-4 of 1 (a long memory), a = 3 makes it about
    e^-14 (almost none); both methods agree with the loop above to 1e-8 relative."""
    T = 20_000
    k, p, xs, s0 = _case(T, seed=3, B=1, D=2, H=3)
    p["a"] = numpy.array([decay])
    want = _reference_loop(p, xs, s0[0])
    scale = max(1.0, numpy.abs(want).max())
    for method in ("loop", "scan"):
        got, _ = k.forward(p, xs, s0, method=method)
        assert numpy.abs(got - want).max() <= 1e-8 * scale, method


@pytest.mark.parametrize("T, chunk", [(1, None), (6, None), (6, 4), (9, 3), (13, 1)])
def test_matrix_scan_backward_equals_loop_backward_and_central_differences(T, chunk):
    k, p, xs, s0 = _case(T, seed=1)
    rng = numpy.random.default_rng(2)
    dhs = rng.standard_normal((T, 2, 4))
    ds = (rng.standard_normal((2, 4, 4)), rng.standard_normal((2, 4)))
    _, loop_cache = k.forward(p, xs, s0)
    _, scan_cache = k.forward(p, xs, s0, method="scan", chunk=chunk)
    ref = k.backward(p, loop_cache, dhs, ds, return_dxs=True)
    for cache, method in ((scan_cache, None), (loop_cache, "scan"), (scan_cache, "loop")):
        g, d0, dx = k.backward(p, cache, dhs, ds, return_dxs=True, method=method, chunk=chunk)
        for n in p:
            numpy.testing.assert_allclose(g[n], ref[0][n], rtol=1e-11, atol=1e-12, err_msg=n)
        for a, b in zip(d0, ref[1]):
            numpy.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
        numpy.testing.assert_allclose(dx, ref[2], rtol=1e-11, atol=1e-12)
    g, d0 = k.backward(p, scan_cache, dhs, ds)

    def loss(params, x=xs, state=s0):
        hs, c = k.forward(params, x, state, method="scan", chunk=chunk)
        return float((hs * dhs).sum() + (c["S"][0][-1].reshape(ds[0].shape) * ds[0]).sum()
                     + (c["S"][1][-1] * ds[1]).sum())
    for n in ("W_k", "a", "w_beta"):
        def f(v, n=n):
            return loss({**p, n: v})
        numpy.testing.assert_allclose(g[n], oracles.fd_gradient(f, p[n]), rtol=1e-6, atol=1e-8,
                                      err_msg=n)
    fd = oracles.fd_gradient(lambda v: loss(p, state=(v, s0[1])), s0[0])
    numpy.testing.assert_allclose(d0[0], fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", [NAME, "mingru"])
@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "4"])
def test_a_bad_chunk_is_refused_naming_it(name, bad):
    k = derive.kernels(name)
    _, p, xs, s0 = _case(4, k=k) if name == NAME else (None, *_mingru_case(k))
    with pytest.raises(ValueError, match=r"^chunk: must be a positive integer or None, got "):
        k.forward(p, xs, s0, method="scan", chunk=bad)
    _, cache = k.forward(p, xs, s0, method="scan")
    with pytest.raises(ValueError, match=r"^chunk: must be a positive integer or None"):
        k.backward(p, cache, numpy.zeros((4, 2, 4)), chunk=bad)


def _mingru_case(k):
    rng = numpy.random.default_rng(0)
    return k.init_params(3, 4, rng=rng), rng.standard_normal((4, 2, 3)), (numpy.zeros((2, 4)),)


def test_the_matrix_form_is_in_the_summary_and_the_article():
    from derive.document.sections import cell_snippet
    from derive.export.summary import summary
    s = summary(derive.cell(NAME))
    assert "S_t = S_(t-1) M_t + B_t" in s and "M_t = alpha ⊙ I - alpha ⊙ beta ⊙ (k kᵀ)" in s
    assert "B_t = beta ⊙ vec(v kᵀ)" in s and "delta S_t M_t^T" in s
    tex = cell_snippet(derive.cell(NAME))
    for label in ("M_S", "B_S", "right_affine", "combine", "adjoint_scan"):
        assert r"\label{eq:gated_deltanet:%s}" % label in tex


# ---------------------------------------------------------------------------------------
# random matrix cells of the same form
# ---------------------------------------------------------------------------------------

@st.composite
def right_affine_specs(draw):
    """S_t = g S_{t-1} + c (S_{t-1} u) k^T + v k^T, read out as o = S q or o = tanh(S q):
    scalar gates of x."""
    gate = draw(st.sampled_from(["g", "1 - g", "exp(-softplus(dot(w_g, x)))"]))
    mix = draw(st.sampled_from(["k", "q", "v"]))
    sign = draw(st.sampled_from(["+", "-"]))
    readout = draw(st.sampled_from(["S @ q", "tanh(S @ q)"]))
    return [f'S = "({gate}) * S_prev {sign} 0.25 * g * outer(S_prev @ {mix}, k) + outer(v, k)"',
            f'o = "{readout}"']


@settings(max_examples=12, deadline=None)
@given(right_affine_specs(), st.integers(0, 2 ** 31 - 1), st.integers(1, 30),
       st.sampled_from([None, 1, 4]))
def test_any_right_affine_spec_gets_a_scan_equal_to_its_loop(tmp_path_factory, spec, seed, T, chunk):
    """Property: for a random spec S_t = S_{t-1} M_t + B_t (scalar gates of x, a rank-one
    right factor, a linear or nonlinear readout), right_affine_form finds it, and the
    chunked scan equals the loop (forward 1e-10, backward 1e-9 relative)."""
    cell = _spec(tmp_path_factory.mktemp("spec"), "right_rand", '["S", "o"]', spec)
    assert isinstance(scan_form(cell), RightAffineForm)
    k = derive.kernels(cell)
    _, p, xs, s0 = _case(T, seed=seed, k=k, H=3)
    p = {n: a * 0.5 for n, a in p.items()}
    h1, c1 = k.forward(p, xs, s0)
    h2, c2 = k.forward(p, xs, s0, method="scan", chunk=chunk)
    assert numpy.abs(h1 - h2).max() <= 1e-10 * max(1.0, numpy.abs(h1).max())
    dhs = numpy.random.default_rng(seed + 1).standard_normal(h1.shape)
    g1, _ = k.backward(p, c1, dhs)
    g2, _ = k.backward(p, c2, dhs)
    for n in p:
        assert numpy.abs(g1[n] - g2[n]).max() <= 1e-9 * max(1.0, numpy.abs(g1[n]).max()), n
