"""Derived parallel scans (issue 17): cells affine in their state, s_t = A_t s_{t-1} + b_t.

* detection from the derived step Jacobian (derive.core.affine): mingru, minlstm, lru are
  affine, A_t equal to their Jacobian blocks and b_t = s_t at s_{t-1} = 0, checked against
  SymPy's explicit expansion (s_t - A_t s_{t-1} - b_t = 0 entry by entry); every other
  built-in cell is refused with the state and the term that depends on it;
* forward(method="scan") equals the loop (float64: relative 1e-10 up to T = 4096; float32:
  relative 2e-5, about log2(T) + 2 roundings of 6e-8), and its backward (a reverse scan of the
  adjoint recursion) equals the loop's backward and central differences, from either cache;
* stability at T = 10^5 with coefficients near 1 and near 0 against a float64 loop;
* a Hypothesis property over random affine specs (gates of x only, one or two coupled states).
"""
import numpy
import pytest
import sympy
from hypothesis import given, settings, strategies as st

import derive
from conftest import states_like
from derive.core.affine import NotAffine, affine_form
from verify import oracles
from verify.explicit import expand

AFFINE = ["mingru", "minlstm", "lru"]


def _case(name, T, seed=0, dtype=numpy.float64, B=2, D=3, H=4):
    k = derive.kernels(name)
    rng = numpy.random.default_rng(seed)
    p = k.init_params(D, H, rng=rng, dtype=dtype)
    xs = rng.standard_normal((T, B, D)).astype(dtype)
    s0 = states_like(k, B, H, lambda shape: rng.standard_normal(shape).astype(dtype))
    return k, p, xs, s0


@pytest.mark.parametrize("name", AFFINE)
def test_affine_form_is_the_step_exactly(name):
    """s_t - (sum_r A_sr r_(t-1) + b_s) = 0 for the explicit H = 2 expansion (SymPy), with
    A_sr the derived coefficient, and A free of every previous state."""
    c = derive.cell(name)
    form = affine_form(c)
    ex = expand(name, 2)
    prev = {s: sympy.Matrix(ex.prev_symbols(s)) for s in c.states}
    for s in c.states:
        total = sympy.Matrix(ex.explicit(form.b(s)))
        for r in c.states:
            a = form.a(s, r)
            if a is not None:
                av = sympy.Matrix(ex.explicit(a))
                assert not (av.free_symbols & set().union(*(set(ex.prev_symbols(q)) for q in c.states)))
                total += sympy.Matrix([av[i] * prev[r][i] for i in range(2)])
        assert sympy.simplify(sympy.Matrix(ex.values[s]) - total) == sympy.zeros(2, 1), s


#: affine in its matrix state S given its gates, with A_t: dS -> dS M_t (tests/kernels/test_scan_matrix.py)
MATRIX_A = {"gated_deltanet"}


@pytest.mark.parametrize("name", sorted(set(derive.cells()) - set(AFFINE) - MATRIX_A))
def test_other_cells_are_refused_with_the_state_and_the_term(name):
    why = r"depends on"
    with pytest.raises(NotAffine, match=r"is not affine in its state: d\w+_t/d\w+_\(t-1\) "
                                        r"contains .+, which depends on \w+_\(t-1\)"):
        affine_form(derive.cell(name))
    k, p, xs, s0 = _case(name, 3)
    with pytest.raises(ValueError, match=r"forward\(method='scan'\): cell .* " + why) as err:
        k.forward(p, xs, s0, method="scan")
    assert "\n" not in str(err.value)
    _, cache = k.forward(p, xs, s0)
    with pytest.raises(ValueError, match="backward\\(method='scan'\\)"):
        k.backward(p, cache, numpy.zeros((3, 2, 4)), method="scan")


@pytest.mark.parametrize("name", AFFINE)
@pytest.mark.parametrize("T", [1, 2, 3, 17, 256, 4096])
def test_scan_equals_loop_float64(name, T):
    k, p, xs, s0 = _case(name, T, seed=T)
    h1, c1 = k.forward(p, xs, s0)
    h2, c2 = k.forward(p, xs, s0, method="scan")
    for a, b in zip(c1["S"], c2["S"]):
        assert numpy.abs(a - b).max() <= 1e-10 * max(1.0, numpy.abs(a).max())
    numpy.testing.assert_array_equal(h2, c2["S"][k.STATE.index(k.OUTPUT)][1:])


@pytest.mark.parametrize("name", AFFINE)
def test_scan_equals_loop_float32(name):
    k, p, xs, s0 = _case(name, 1024, dtype=numpy.float32)
    h1, _ = k.forward(p, xs, s0)
    h2, _ = k.forward(p, xs, s0, method="scan")
    assert h2.dtype == numpy.float32
    assert numpy.abs(h1 - h2).max() <= 2e-5 * max(1.0, float(numpy.abs(h1).max()))


@pytest.mark.parametrize("name", AFFINE)
def test_scan_backward_equals_loop_backward_and_central_differences(name):
    T = 6
    k, p, xs, s0 = _case(name, T, seed=1)
    rng = numpy.random.default_rng(2)
    dhs = rng.standard_normal((T, 2, 4))
    ds = tuple(rng.standard_normal((2, 4)) for _ in s0)
    _, loop_cache = k.forward(p, xs, s0)
    _, scan_cache = k.forward(p, xs, s0, method="scan")
    ref = k.backward(p, loop_cache, dhs, ds, return_dxs=True)
    for cache, method in ((scan_cache, None), (loop_cache, "scan")):
        g, d0, dx = k.backward(p, cache, dhs, ds, return_dxs=True, method=method)
        for n in p:
            numpy.testing.assert_allclose(g[n], ref[0][n], rtol=1e-12, atol=1e-13, err_msg=n)
        for a, b in zip(d0, ref[1]):
            numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
        numpy.testing.assert_allclose(dx, ref[2], rtol=1e-12, atol=1e-13)

    def loss(params=p, x=xs):
        _, c = k.forward(params, x, s0, method="scan")
        return float((c["S"][k.STATE.index(k.OUTPUT)][1:] * dhs).sum()
                     + sum((c["S"][i][-1] * ds[i]).sum() for i in range(len(s0))))
    g, _ = k.backward(p, scan_cache, dhs, ds)
    for n in p:
        numpy.testing.assert_allclose(g[n], oracles.fd_gradient(lambda a: loss(params={**p, n: a}), p[n]),
                                      atol=1e-6, rtol=1e-6, err_msg=n)


def test_a_loop_backward_of_a_scan_cache_is_refused():
    k, p, xs, s0 = _case("mingru", 4)
    _, cache = k.forward(p, xs, s0, method="scan")
    with pytest.raises(ValueError, match="use method='scan'"):
        k.backward(p, cache, numpy.zeros((4, 2, 4)), method="loop")
    with pytest.raises(ValueError, match="method must be 'loop' or 'scan'"):
        k.forward(p, xs, s0, method="parallel")


@pytest.mark.parametrize("bias", [-12.0, 12.0])
def test_long_sequences_are_stable(bias):
    """T = 10^5, minGRU with the update gate near 0 (A = 1 - z near 1: a long memory) and near
    1 (A near 0): both methods agree with a float64 loop written here (relative 1e-8)."""
    T, B, D, H = 100_000, 1, 2, 3
    k = derive.kernels("mingru")
    rng = numpy.random.default_rng(7)
    p = k.init_params(D, H, rng=rng)
    p["b_z"] = numpy.full(H, bias)
    xs = rng.standard_normal((T, B, D)) * 0.1
    h, want = numpy.zeros((B, H)), numpy.empty((T, B, H))
    for t in range(T):
        z = 1 / (1 + numpy.exp(-(xs[t] @ p["W_z"].T + p["b_z"])))
        h = (1 - z) * h + z * (xs[t] @ p["W_h"].T + p["b_h"])
        want[t] = h
    scale = max(1.0, numpy.abs(want).max())
    for method in ("loop", "scan"):
        got, _ = k.forward(p, xs, method=method)
        assert numpy.abs(got - want).max() <= 1e-8 * scale, method


# ---------------------------------------------------------------------------------------
# random affine cells
# ---------------------------------------------------------------------------------------

@st.composite
def affine_specs(draw):
    """A spec whose gates see x only: one state h, or two states h, c coupled affinely."""
    fns = ["sigmoid", "tanh", "exp", "softplus"]
    g1, g2, g3 = (draw(st.sampled_from(fns)) for _ in range(3))
    two = draw(st.booleans())
    lines = ["[cell]", 'name = "affine_rand"', f'states = {["h", "c"] if two else ["h"]!r}'.replace("'", '"'),
             "[params]", 'W_a = ["H", "D"]', 'b_a = ["H"]', 'W_b = ["H", "D"]', 'W_c = ["H", "D"]', "",
             "[equations]", f'a = "{g1}(W_a @ x + b_a)"', f'bb = "{g2}(W_b @ x)"', f'cc = "{g3}(W_c @ x)"']
    if two:
        lines += ['c = "cc * c_prev + a * h_prev"', 'h = "a * h_prev - 0.5 * bb * c_prev + bb"']
    else:
        lines += ['h = "a * h_prev + bb * cc - cc"']
    return "\n".join(lines) + "\n"


@settings(max_examples=15, deadline=None)
@given(affine_specs(), st.integers(0, 2 ** 31 - 1), st.integers(1, 40))
def test_any_affine_spec_gets_a_scan_equal_to_its_loop(tmp_path_factory, text, seed, T):
    """Property: for a random affine spec (gates of x only; one state, or two coupled by an
    upper-triangular A), forward(method="scan") equals the loop to 1e-10 relative and the scan
    backward equals the loop backward to 1e-9 relative."""
    path = tmp_path_factory.mktemp("spec") / "affine_rand.toml"
    path.write_text(text)
    cell = derive.cell_from_spec(path)
    k = derive.kernels(cell)
    rng = numpy.random.default_rng(seed)
    p = {n: a * 0.5 for n, a in k.init_params(2, 3, rng=rng).items()}
    xs = rng.standard_normal((T, 2, 2))
    s0 = tuple(rng.standard_normal((2, 3)) for _ in k.STATE)
    dhs = rng.standard_normal((T, 2, 3))
    h1, c1 = k.forward(p, xs, s0)
    h2, c2 = k.forward(p, xs, s0, method="scan")
    scale = max(1.0, numpy.abs(h1).max())
    assert numpy.abs(h1 - h2).max() <= 1e-10 * scale
    g1, _ = k.backward(p, c1, dhs)
    g2, _ = k.backward(p, c2, dhs)
    for n in p:
        assert numpy.abs(g1[n] - g2[n]).max() <= 1e-9 * max(1.0, numpy.abs(g1[n]).max()), n


def test_the_derived_affine_form_is_in_the_summary_the_snippets_and_the_article():
    """The summary states A_t, b_t, the combine and the adjoint recursion (or why there is no
    scan); the LaTeX snippet and both editions of the article carry the labelled rows."""
    from derive.document.sections import cell_snippet, document_blocks
    from derive.document.render import render_tex
    from derive.export.summary import summary
    s = summary(derive.cell("mingru"))
    assert "A[h,h] = diag(1 - z)" in s and "b[h] = htilde ⊙ z" in s
    assert "(A, b) then (A', b') = (A' A, A' b + b')" in s and "A_t^T delta s_t" in s
    assert "Parallel scan: none" in summary(derive.cell("lstm"))
    assert r"\label{eq:lru:A_xre_xim}" in cell_snippet(derive.cell("lru"))
    cells = [derive.cell(n) for n in ("rnn_sigmoid", "mingru", "lru")]
    for lang in ("en", "zh"):
        tex = render_tex(document_blocks(cells, lang=lang), "t", lang=lang)
        assert r"\label{eq:mingru:A_h_h}" in tex and r"\label{eq:lru:b_xim}" in tex, lang
