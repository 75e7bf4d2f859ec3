"""The hand-written sLSTM of benchmarks/bench_modern.py is a fair baseline: it computes the
same hidden states and weight gradients as the generated kernel (the timings compare equal
work). Central differences are not needed here: the generated kernel is checked against them
in test_modern_cells.py."""
import importlib.util
from pathlib import Path

import numpy

import derive

ROOT = Path(__file__).resolve().parents[2]


def test_slstm_baseline_equals_the_generated_kernel():
    spec = importlib.util.spec_from_file_location("bench_modern", ROOT / "benchmarks" / "bench_modern.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    T, B = 5, 3
    rng = numpy.random.default_rng(1)
    k = derive.kernels("slstm")
    p = k.init_params(bench.D, bench.H, rng=rng)
    xs, dhs = rng.standard_normal((T, B, bench.D)), rng.standard_normal((T, B, bench.H))
    s0 = tuple(numpy.ones((B, bench.H)) if s == "n" else numpy.zeros((B, bench.H)) for s in k.STATE)
    hs, cache = k.forward(p, xs, s0)
    g, _ = k.backward(p, cache, dhs)
    h, dWx, dR, db = bench.slstm_by_hand(p, xs, dhs)
    tol = dict(rtol=1e-12, atol=1e-13)
    numpy.testing.assert_allclose(h, hs, **tol)
    numpy.testing.assert_allclose(dWx, numpy.concatenate([g[f"W_{q}"] for q in "zifo"]), **tol)
    numpy.testing.assert_allclose(dR, numpy.concatenate([g[f"R_{q}"] for q in "zifo"]), **tol)
    numpy.testing.assert_allclose(db, numpy.concatenate([g[f"b_{q}"] for q in "zifo"]), **tol)
