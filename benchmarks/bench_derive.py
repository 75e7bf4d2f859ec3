"""Benchmark: a cold ``python -m derive`` for all cells, as a ratio to ``python -c "import sympy"``.

Both are run as fresh subprocesses in the same session, alternating, ``--repeat`` times; the
report gives medians and the ratio (issue target: <= 10x). Output goes to a temporary
directory, so the committed out/ is untouched.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_derive.py
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def timed(cmd) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cells", default=None, help="comma-separated subset (default: all)")
    args = ap.parse_args()
    base_cmd = [sys.executable, "-c", "import sympy"]
    derive_extra = ["--cells", args.cells] if args.cells else []
    base, full = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            base.append(timed(base_cmd))
            # a fresh directory each time: every file is really written
            with tempfile.TemporaryDirectory(dir=tmp) as out:
                full.append(timed([sys.executable, "-m", "derive", "--out", out, *derive_extra]))
    b, f = statistics.median(base), statistics.median(full)
    print("| run | median s | runs |")
    print("|---|---|---|")
    print(f"| python -c 'import sympy' | {b:.3f} | {len(base)} |")
    print(f"| python -m derive (all exporters) | {f:.3f} | {len(full)} |")
    print(f"\nratio derive / import sympy = {f / b:.2f}x (target <= 10x)")


if __name__ == "__main__":
    main()
