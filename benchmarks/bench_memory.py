"""Benchmark: peak memory of an LSTM forward+backward, generated kernel vs hand-written NumPy.

Same problem as ``bench_kernels.py`` (T=50, B=32, D=H=256, float32 and float64). Peak memory is
the largest amount of NumPy array memory alive at once during one forward+backward call,
traced by ``tracemalloc`` (NumPy reports its data allocations to it), minus what was alive
before the call. Reported as ratios to the tuned hand-written LSTM of ``bench_kernels.py``,
run in the same process; the generated kernel keeps the forward values the backward pass and
the Jacobian read, plus one (T, B, 4H) buffer of slot adjoints.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_memory.py
"""
from __future__ import annotations

import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).parent))
import bench_kernels as bk  # noqa: E402


def peak_bytes(fn) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del result
    return peak - base


def main():
    T, B, D, H = bk.T, bk.B, bk.D, bk.H
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        gen = bk.load_generated(tmp)
        for dtype in (numpy.float32, numpy.float64):
            p, xs, dhs, run_gen = bk.problem(gen, dtype)
            run_gen()                                  # warm-up (lazy imports, caches)
            m_gen = peak_bytes(run_gen)
            m_tuned = peak_bytes(lambda: bk.tuned_fwd_bwd(p, xs, dhs))
            m_plain = peak_bytes(lambda: bk.plain_fwd_bwd(p, xs, dhs))
            params = sum(v.nbytes for v in p.values())
            rows.append((numpy.dtype(dtype).name, m_gen, m_tuned, m_plain, params))
    print(f"LSTM T={T}, B={B}, D={D}, H={H}, forward+backward; peak traced NumPy memory per call\n")
    print("| dtype | generated | tuned NumPy | plain NumPy | generated / tuned | parameters |")
    print("|---|---|---|---|---|---|")
    mb = 1024 * 1024
    for name, g, t, pl, prm in rows:
        print(f"| {name} | {g / mb:.1f} MiB | {t / mb:.1f} MiB | {pl / mb:.1f} MiB | "
              f"{g / t:.2f}x | {prm / mb:.1f} MiB |")


if __name__ == "__main__":
    main()
