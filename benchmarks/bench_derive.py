"""Benchmark: a cold ``python -m derive`` for all cells, as a ratio to ``python -c "import sympy"``.

Every command is run as a fresh subprocess in the same session, alternating, ``--repeat``
times; the report gives, per command, the median wall time and the median CPU time (user +
sys of the process and all its children: the forked workers, the figure process), and the
ratios of both to the baseline (issue target: wall <= 10x). On a machine with several cores
the wall ratio is below the CPU ratio by what the workers run at once (``--jobs``). Output
goes to a temporary directory, so the committed out/ is untouched.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_derive.py

``--jobs 1,2`` times ``python -m derive --jobs N`` for each N; ``--tree DIR`` (repeatable)
also times ``python -m derive`` run from another source tree (a scratch copy), alternating
with the others, for A/B comparisons.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd, cwd=ROOT) -> tuple:
    """(wall seconds, CPU seconds: user + sys of the command and all its descendants)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cells", default=None, help="comma-separated subset (default: all)")
    ap.add_argument("--jobs", default=None,
                    help="comma-separated --jobs values to time (default: derive's default)")
    ap.add_argument("--tree", action="append", default=[], metavar="DIR",
                    help="also time python -m derive run from this source tree")
    args = ap.parse_args()
    extra = ["--cells", args.cells] if args.cells else []
    runs = [("python -c 'import sympy'", [sys.executable, "-c", "import sympy"], ROOT, False)]
    jobs = args.jobs.split(",") if args.jobs else [None]
    for j in jobs:
        label = "python -m derive" + (f" --jobs {j}" if j else "")
        runs.append((label, [sys.executable, "-m", "derive", *extra,
                             *(["--jobs", j] if j else [])], ROOT, True))
    for tree in args.tree:
        runs.append((f"python -m derive (from {tree})", [sys.executable, "-m", "derive", *extra],
                     Path(tree), True))
    times = {label: [] for label, *_ in runs}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for label, cmd, cwd, writes in runs:
                # a fresh directory each time: every file is really written
                with tempfile.TemporaryDirectory(dir=tmp) as out:
                    times[label].append(timed(cmd + (["--out", os.path.join(out, "o")]
                                                     if writes else []), cwd))
    med = {label: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
           for label, t in times.items()}
    base_wall, base_cpu = med[runs[0][0]]
    print(f"cores usable: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}")
    print("| run | median wall s | median CPU s (user+sys, incl. children) | wall ratio | CPU ratio | runs |")
    print("|---|---|---|---|---|---|")
    for label, (w, c) in med.items():
        print(f"| {label} | {w:.3f} | {c:.3f} | {w / base_wall:.2f}x | {c / base_cpu:.2f}x "
              f"| {len(times[label])} |")
    for label, *_ in runs[1:]:
        w, c = med[label]
        print(f"\n{label} / import sympy: wall {w / base_wall:.2f}x (target <= 10x), "
              f"CPU {c / base_cpu:.2f}x")


if __name__ == "__main__":
    main()
