"""Benchmark: the gradient-flow analysis is linear in T.

LSTM, H = 128 (S = 256), D = 32, one sequence (B = 1): time of
``derive.analysis.gradient_flow.gradient_flow`` at T = 100 and T = 1000, their ratio (the claim: near
10), and where the time goes per step (step Jacobian, the S x S product, the three SVD
norms). For contrast, the quadratic method that rebuilds ``J_T ... J_{T-k+1}`` for every k,
at T = 100 only.

Run with the machine's OpenBLAS overrides removed (see tooling-findings.md)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_gradient_flow.py
"""
from __future__ import annotations

import argparse
import io
import os
import time
from contextlib import redirect_stdout

import numpy

import derive
from derive.analysis import gradient_flow as gf


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
        return "; ".join(f"{i.get('internal_api')} {i.get('version')} "
                         f"{i.get('architecture', '')} threads={i.get('num_threads')}"
                         for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:
        buf = io.StringIO()
        with redirect_stdout(buf):
            numpy.show_config()
        lines = [ln.strip() for ln in buf.getvalue().splitlines()]
        keep = [ln for ln in lines if ln.startswith(("name:", "version:", "openblas configuration"))]
        return " | ".join(keep[:6]) + " (threadpoolctl not installed; from numpy.show_config)"


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def quadratic(kern, params, xs):
    """Rebuild every product from scratch: O(T^2) matrix products."""
    states = gf.states_along(kern, params, xs)
    T = xs.shape[0]
    Js = [kern.step_jacobian(params, xs[j], states[j])[0] for j in range(T)]
    out = []
    for k in range(1, T + 1):
        P = Js[T - 1]
        for j in range(T - 2, T - k - 1, -1):
            P = P @ Js[j]
        out.append(numpy.linalg.norm(P, 2))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--input", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-quadratic", action="store_true")
    args = ap.parse_args(argv)

    print(f"BLAS: {blas_info()}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}")
    H, D = args.hidden, args.input
    kern = derive.kernels("lstm")
    rng = numpy.random.default_rng(0)
    params = kern.init_params(D, H, rng=rng)
    xs = rng.standard_normal((1000, 1, D))

    gf.gradient_flow(kern, params, xs[:10])                 # warm up
    t100 = best_of(lambda: gf.gradient_flow(kern, params, xs[:100]), args.repeat)
    t1000 = best_of(lambda: gf.gradient_flow(kern, params, xs), 1)
    print(f"lstm H={H} D={D} B=1 (S={2 * H})")
    print(f"  T=100 : {t100:8.3f} s  ({t100 / 100 * 1e3:.2f} ms per step)")
    print(f"  T=1000: {t1000:8.3f} s  ({t1000 / 1000 * 1e3:.2f} ms per step)")
    print(f"  ratio T=1000 / T=100: {t1000 / t100:.2f}  (linear cost: 10)")

    # where one step's time goes
    states = gf.states_along(kern, params, xs[:2])
    S = 2 * H
    J = kern.step_jacobian(params, xs[1], states[1])
    Q = rng.standard_normal((1, S, S)) / S
    parts = {
        "step (forward)": lambda: kern.step(params, xs[1], states[1]),
        "step_jacobian": lambda: kern.step_jacobian(params, xs[1], states[1]),
        "S x S product": lambda: Q @ J,
        "spectral norm, full (S x S)": lambda: gf._norm2(Q),
        "spectral norms, h and c blocks": lambda: (gf._norm2(Q[:, :H, :H]), gf._norm2(Q[:, H:, H:])),
    }
    print("  per step:")
    for name, fn in parts.items():
        t = best_of(lambda: [fn() for _ in range(20)], 3) / 20
        print(f"    {name:26s} {t * 1e3:7.3f} ms")

    if not args.no_quadratic:
        tq = best_of(lambda: quadratic(kern, params, xs[:100]), 1)
        print(f"  quadratic method (rebuild per k), T=100: {tq:.3f} s = {tq / t100:.1f}x the "
              f"accumulated analysis (which also computes the two block norms)")


if __name__ == "__main__":
    main()
