"""benchmarks/bench_scan.py compares equal work: its torch loops compute the generated
kernels' hidden states and weight gradients, its log-space scan computes the loop's states,
and its --quick smoke run prints both tables (untimed here)."""
import importlib.util
from pathlib import Path

import numpy
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_scan", ROOT / "benchmarks" / "bench_scan.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.parametrize("name", ["mingru", "minlstm", "lru"])
def test_torch_baseline_equals_the_generated_kernel(name):
    pytest.importorskip("torch")
    bench = _bench()
    k, p, xs, dhs = bench.case(name, 7, 3, 5, numpy.float64, seed=2)
    hs, cache = k.forward(p, xs)
    g, _ = k.backward(p, cache, dhs)
    th, tg = bench.torch_cell(name, p, xs, dhs)
    numpy.testing.assert_allclose(th, hs, rtol=1e-12, atol=1e-13)
    for n in p:
        numpy.testing.assert_allclose(tg[n], g[n], rtol=1e-11, atol=1e-12, err_msg=n)


def test_log_space_scan_equals_a_loop():
    """Positive a, b and s0 of both signs: the log-space form gives the loop's states."""
    bench = _bench()
    rng = numpy.random.default_rng(4)
    T = 50
    a, b, s0 = rng.uniform(0.05, 1.0, (T, 2, 3)), rng.standard_normal((T, 2, 3)), rng.standard_normal((2, 3))
    h, want = s0, numpy.empty((T, 2, 3))
    for t in range(T):
        h = a[t] * h + b[t]
        want[t] = h
    numpy.testing.assert_allclose(bench.log_scan(a, b, s0), want, rtol=1e-9, atol=1e-12)


def test_quick_run_prints_both_tables(capsys):
    rows = _bench().main(["--quick"])
    out = capsys.readouterr().out
    assert len(rows) == 6 and "| mingru | float32 | 64 |" in out and "| lru | float64 | 64 |" in out
    assert "log-space scan" in out and "| mixed | float64 |" in out
