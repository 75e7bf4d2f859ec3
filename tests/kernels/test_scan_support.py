"""The affine scans of derive.codegen.support and how the generated scan kernels use them.

* _affine_scan / _affine_scan_reverse equal a plain Python loop over t (an oracle written
  here) for random S x S blocks (S = 1, 2, 3, any sparsity, A varying in time or constant),
  T from 0 (not a power of two, shorter and longer than a chunk) and any chunk size;
* the two-level scan's error stays at the loop's level for long sequences (T = 10^5);
* the scan kernels: the sequence pass runs on (T B, n) rows (one GEMM, not T batched ones),
  the backward reads the state-free values from a scan cache (checked: a bad entry is refused
  naming it) instead of recomputing them, and dL/dxs is computed only on request;
* T = 0 and T = 1 through both methods.
"""
import numpy
import pytest
from hypothesis import given, settings, strategies as st

import derive
from derive.codegen.scan_support import _affine_scan, _affine_scan_reverse


def _loop(A, b, s0, T, shape):
    """s_t = sum_k A_ik,t s_k,t-1 + b_i,t by a plain loop (the oracle)."""
    S = len(b)
    full = lambda a: numpy.broadcast_to(a, (T,) + shape)    # noqa: E731
    s, out = [x.copy() for x in s0], [numpy.empty((T,) + shape) for _ in range(S)]
    for t in range(T):
        s = [full(b[i])[t] + sum((full(A[i, k])[t] * s[k] for k in range(S) if (i, k) in A),
                                 numpy.zeros(shape)) for i in range(S)]
        for i in range(S):
            out[i][t] = s[i]
    return out


def _loop_reverse(A, g, ds, T, shape):
    """Delta_t = g_t + A_(t+1)^T Delta_(t+1), Delta_(T-1) = g_(T-1) + ds, by a loop."""
    S = len(g)
    full = lambda a: numpy.broadcast_to(a, (T,) + shape)    # noqa: E731
    out = [numpy.empty((T,) + shape) for _ in range(S)]
    d = None
    for t in range(T - 1, -1, -1):
        if d is None:
            d = [g[i][t] + ds[i] for i in range(S)]
        else:
            d = [g[i][t] + sum((full(A[k, i])[t + 1] * d[k] for k in range(S) if (k, i) in A),
                               numpy.zeros(shape)) for i in range(S)]
        for i in range(S):
            out[i][t] = d[i]
    return out


@st.composite
def scans(draw):
    S = draw(st.integers(1, 3))
    T = draw(st.integers(0, 70))
    entries = [(i, k) for i in range(S) for k in range(S)]
    keys = draw(st.lists(st.sampled_from(entries), min_size=1, unique=True))
    const = draw(st.booleans())
    chunk = draw(st.one_of(st.none(), st.integers(1, 12)))
    rng = numpy.random.default_rng(draw(st.integers(0, 2 ** 31 - 1)))
    shape = (2, 3)
    A = {k: rng.uniform(-1, 1, (3,) if const else (T,) + shape) / S for k in keys}
    zero_b = draw(st.booleans()) and S > 1
    b = [rng.standard_normal((T,) + shape) for _ in range(S)]
    if zero_b:
        b[-1] = 0                         # a state with no offset (a printed constant 0)
    s0 = [rng.standard_normal(shape) for _ in range(S)]
    return A, b, s0, T, shape, chunk


@settings(max_examples=60, deadline=None)
@given(scans())
def test_affine_scan_equals_a_loop(case):
    """Property: the two-level scan and its reverse equal a plain loop to 1e-12 for random
    S x S blocks (any pattern of nonzero entries, A varying or constant in time, an offset
    that is a constant 0), T in 0..70 and chunk sizes 1..12 or the default."""
    A, b, s0, T, shape, chunk = case
    got = _affine_scan(A, b, s0, [numpy.empty((T,) + shape) for _ in b], chunk)
    for x, y in zip(got, _loop(A, b, s0, T, shape)):
        numpy.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
    g = [numpy.broadcast_to(bi, (T,) + shape) for bi in b]
    got = _affine_scan_reverse(A, g, s0, [numpy.empty((T,) + shape) for _ in b], chunk)
    for x, y in zip(got, _loop_reverse(A, g, s0, T, shape)):
        numpy.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)


def test_affine_scan_writes_into_strided_views_and_leaves_its_inputs():
    """out may be a reversed, strided view; A and b are not modified."""
    rng = numpy.random.default_rng(3)
    T = 37
    A = {(0, 0): rng.uniform(0, 1, (T, 4)), (0, 1): rng.uniform(-1, 1, (T, 4)),
         (1, 1): rng.uniform(0, 1, (T, 4))}
    b = [rng.standard_normal((T, 4)) for _ in range(2)]
    keep = ({k: a.copy() for k, a in A.items()}, [x.copy() for x in b])
    base = numpy.zeros((2, 2 * T, 4))
    out = [base[0][::-2], base[1][::-2]]
    _affine_scan(A, b, [numpy.ones(4), numpy.ones(4)], out)
    want = _loop(A, b, [numpy.ones(4), numpy.ones(4)], T, (4,))
    for x, y in zip(out, want):
        numpy.testing.assert_allclose(x, y, rtol=1e-12)
    assert all((A[k] == keep[0][k]).all() for k in A) and all((x == y).all() for x, y in zip(b, keep[1]))


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("low, high", [(0.99999, 1.0), (0.0, 1e-3), (0.0, 1.0)])
def test_long_scan_error_stays_at_the_loop_level(low, high, dtype):
    """T = 10^5: the scan's error against a long-double loop over the same (rounded) a, b is
    at most twice a loop's in the same dtype (plus 4 ulps). With a near 1 in float32 this
    needs the chunk products formed by a tree: a chain of K = 633 products loses about K ulps
    of 1 - P, 40 times the loop's error."""
    rng = numpy.random.default_rng(5)
    T = 100_000
    a = rng.uniform(low, high, (T, 3)).astype(dtype)
    b = (rng.standard_normal((T, 3)) * (1 - a.astype(float))).astype(dtype)
    s0 = rng.standard_normal(3).astype(dtype)
    ref, h = numpy.empty((T, 3), numpy.longdouble), s0.astype(numpy.longdouble)
    seq, g = numpy.empty((T, 3), dtype), s0
    al, bl = a.astype(numpy.longdouble), b.astype(numpy.longdouble)
    for t in range(T):
        h = al[t] * h + bl[t]
        g = a[t] * g + b[t]
        ref[t], seq[t] = h, g
    got = _affine_scan({(0, 0): a}, [b], [s0], [numpy.empty((T, 3), dtype)])[0]
    scale = float(numpy.abs(ref).max())
    err = float(numpy.abs(got.astype(numpy.longdouble) - ref).max()) / scale
    loop = float(numpy.abs(seq.astype(numpy.longdouble) - ref).max()) / scale
    assert err <= 2 * loop + 4 * numpy.finfo(dtype).eps, (err, loop)


def _kernel_case(name, T=9, seed=0):
    k = derive.kernels(name)
    rng = numpy.random.default_rng(seed)
    p = k.init_params(3, 4, rng=rng)
    xs, dhs = rng.standard_normal((T, 2, 3)), rng.standard_normal((T, 2, 4))
    return k, p, xs, dhs


@pytest.mark.parametrize("name", ["mingru", "minlstm", "lru"])
def test_the_sequence_pass_runs_on_rows(name, monkeypatch):
    """_seq gets the inputs as (T B, D) rows: its input products are single GEMMs (a (T, B, D)
    array would make NumPy run T small batched products, 3x slower at T = 4096)."""
    k, p, xs, dhs = _kernel_case(name)
    seen, seq = [], k._seq

    def spy(x, *rest):
        seen.append(x.shape)
        return seq(x, *rest)
    monkeypatch.setattr(k, "_seq", spy)
    _, cache = k.forward(p, xs, method="scan")
    assert seen == [(9 * 2, 3)]


@pytest.mark.parametrize("name", ["mingru", "minlstm", "lru"])
def test_scan_backward_reads_the_kept_values_and_checks_them(name, monkeypatch):
    """The scan cache keeps the state-free values its backward reads: that backward does not
    rerun the sequence pass and gives the loop's gradients; without them (an older cache) it
    recomputes; a wrong entry is refused naming it; dL/dxs only on request."""
    k, p, xs, dhs = _kernel_case(name)
    ref, _ = k.backward(p, k.forward(p, xs)[1], dhs)
    _, cache = k.forward(p, xs, method="scan")
    assert cache["seq"]

    def no(*a):
        raise AssertionError("not expected to run")
    monkeypatch.setattr(k, "_sdx", no)
    with monkeypatch.context() as m:
        m.setattr(k, "_seq", no)
        g, _ = k.backward(p, cache, dhs)
    for n in p:
        numpy.testing.assert_allclose(g[n], ref[n], rtol=1e-12, atol=1e-13, err_msg=n)
    old = {key: v for key, v in cache.items() if key != "seq"}
    g, _ = k.backward(p, old, dhs)
    for n in p:
        numpy.testing.assert_allclose(g[n], ref[n], rtol=1e-12, atol=1e-13, err_msg=n)
    name0 = sorted(cache["seq"])[0]
    bad = {**cache, "seq": {**cache["seq"], name0: cache["seq"][name0][..., :1]}}
    with pytest.raises(ValueError, match=rf"cache: 'seq'\['{name0}'\] must be an array"):
        k.backward(p, bad, dhs)
    with pytest.raises(ValueError, match=r"cache: 'seq' must be a dict with the keys"):
        k.backward(p, {**cache, "seq": {}}, dhs)


@pytest.mark.parametrize("name", ["mingru", "lru"])
@pytest.mark.parametrize("T", [0, 1])
def test_empty_and_one_step_sequences(name, T):
    """T = 0 (no step: dstate0 = dstate, zero gradients) and T = 1 through both methods."""
    k, p, xs, dhs = _kernel_case(name, T=T)
    ds = tuple(numpy.random.default_rng(1).standard_normal((2, 4)) for _ in k.STATE)
    out = []
    for method in ("loop", "scan"):
        h, cache = k.forward(p, xs, method=method)
        out.append((h, k.backward(p, cache, dhs, ds, return_dxs=True)))
    (h1, (g1, d1, x1)), (h2, (g2, d2, x2)) = out
    numpy.testing.assert_allclose(h1, h2, rtol=1e-12, atol=1e-14)
    for n in p:
        numpy.testing.assert_allclose(g1[n], g2[n], rtol=1e-12, atol=1e-14, err_msg=n)
    for a, b in zip(d1, d2):
        numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(x1, x2, rtol=1e-12, atol=1e-14)
    if T == 0:
        for a, b in zip(d2, ds):
            numpy.testing.assert_array_equal(a, b)
