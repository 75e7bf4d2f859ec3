"""The one timing loop of the benchmarks: one warm-up call, then ``repeats`` timed calls."""
from __future__ import annotations

import statistics
import time


def call_times(fn, repeats, clock=time.perf_counter) -> list:
    """The times of ``repeats`` calls of ``fn`` after one untimed warm-up call (``clock``:
    ``time.perf_counter`` for wall time, ``time.process_time`` for CPU time)."""
    fn()
    out = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def best_of(fn, repeats, clock=time.perf_counter) -> float:
    return min(call_times(fn, repeats, clock))


def median_of(fn, repeats, clock=time.perf_counter) -> float:
    return statistics.median(call_times(fn, repeats, clock))
