"""mLSTM forward + backward: the generated kernel against a hand-written NumPy mLSTM.

Run (the only place these variables are changed):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_mlstm.py [--quick]

T = 256, B = 8, D = H = 64 (issue 16), float32 and float64, 2 BLAS threads, median of 5
repeats, all in one process. The baseline (tests/kernels/refs_matrix_state.py, checked there
against PyTorch autograd) is written from Beck et al. 2024, eqs. (19)-(27), stabilised: the
projections of the whole sequence in one GEMM, the (B, H, H) memory updated in place per step,
full BPTT (the stabiliser's path included), whole-sequence weight-gradient GEMMs. Also reports
the generated fwd+bwd times of slstm and gated_deltanet. ``--quick``: T = 16, 1 repeat.
Prints a markdown table; the target is generated / hand-written <= 1.2.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

from pathlib import Path  # noqa: E402

import numpy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "kernels"))
sys.path.insert(0, str(Path(__file__).resolve().parent))     # timing.py
import derive  # noqa: E402
from timing import median_of  # noqa: E402
import refs_matrix_state as R  # noqa: E402

T, B, D, H = 256, 8, 64, 64


def median(fn, repeats):
    return median_of(fn, repeats)


def zero_state(name, dtype, b=B, h=H):
    if name == "mlstm":
        return (numpy.zeros((b, h, h), dtype), numpy.zeros((b, h), dtype),
                numpy.zeros((b, 1), dtype), numpy.zeros((b, h), dtype))
    if name == "gated_deltanet":
        return numpy.zeros((b, h, h), dtype), numpy.zeros((b, h), dtype)
    k = derive.kernels(derive.cell(name))
    return tuple(numpy.ones((b, h), dtype) if s == "n" else numpy.zeros((b, h), dtype)
                 for s in k.STATE)


def generated(k, p, xs, s0, dhs):
    _, cache = k.forward(p, xs, s0)
    return k.backward(p, cache, dhs)


def by_hand(p, xs, s0, dhs):
    _, cache = R.numpy_mlstm(p, xs, s0)
    return R.numpy_mlstm_backward(p, cache, dhs)


def run(steps, repeats):
    rows = []
    for dtype in (numpy.float32, numpy.float64):
        rng = numpy.random.default_rng(0)
        xs = rng.standard_normal((steps, B, D)).astype(dtype)
        dhs = rng.standard_normal((steps, B, H)).astype(dtype)
        k = derive.kernels(derive.cell("mlstm"))
        p = k.init_params(D, H, rng=rng, dtype=dtype)
        s0 = zero_state("mlstm", dtype)
        g1, _ = generated(k, p, xs, s0, dhs)
        g2, _ = by_hand(p, xs, s0, dhs)
        err = max(float(numpy.abs(g1[n] - g2[n]).max() / max(1e-30, numpy.abs(g2[n]).max()))
                  for n in p)
        t_gen = median(lambda: generated(k, p, xs, s0, dhs), repeats)
        t_hand = median(lambda: by_hand(p, xs, s0, dhs), repeats)
        name = numpy.dtype(dtype).name
        rows.append(("mlstm", name, t_gen, t_hand, err))
        for cell in ("slstm", "gated_deltanet"):
            kc = derive.kernels(derive.cell(cell))
            pc = kc.init_params(D, H, rng=rng, dtype=dtype)
            sc = zero_state(cell, dtype)
            rows.append((cell, name, median(lambda: generated(kc, pc, xs, sc, dhs), repeats),
                         None, None))
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    steps, repeats = (16, 1) if quick else (T, 5)
    rows = run(steps, repeats)
    print(f"T={steps}, B={B}, D=H={H}, median of {repeats}, forward + backward\n")
    print("| cell | dtype | generated s | hand-written s | ratio | max rel. grad diff |")
    print("|---|---|---|---|---|---|")
    for cell, dt, t_gen, t_hand, err in rows:
        if t_hand is None:
            print(f"| {cell} | {dt} | {t_gen:.4f} | | | |")
        else:
            print(f"| {cell} | {dt} | {t_gen:.4f} | {t_hand:.4f} | {t_gen / t_hand:.2f}x | {err:.1e} |")
    return rows


if __name__ == "__main__":
    main()
