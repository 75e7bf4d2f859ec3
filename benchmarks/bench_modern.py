"""The 2024-26 cells: generated kernels, forward + backward, against hand-written NumPy.

Run (the only place these variables are changed):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_modern.py

T = 256, B = 8, D = H = 64 (issue 16's setting), float32 and float64, 2 BLAS threads,
best of 5, all in one process. The baseline for sLSTM is written here from the paper (Beck et
al. 2024, eqs. 8-17): the four input projections of the whole sequence in one GEMM, one
recurrent GEMM for the four gates per step, BPTT by hand with the stabiliser held constant
(what the xLSTM kernels do), whole-sequence weight-gradient GEMMs. The generated kernels are
timed with the full backward and with ``backward(..., held=True)`` (the stabiliser m, the
cell's HOLDABLE state, held constant: ``cell.holding("m")``). For the other new cells the
generated times are reported (no baseline). A second table compares, at T = 4096, the loop
with the derived parallel scan (forward(method="scan") and its reverse-scan backward) for the
affine cells. Prints markdown tables.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

from pathlib import Path  # noqa: E402

import numpy  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))     # timing.py
import derive  # noqa: E402
from timing import best_of  # noqa: E402

T, B, D, H = 256, 8, 64, 64
GATES = "zifo"


def best(fn, repeats=5):
    return best_of(fn, repeats)


def _sig(a):
    return 1 / (1 + numpy.exp(-a))


def slstm_by_hand(p, xs, dhs):
    """Forward and BPTT of the sLSTM (exponential gates, stabiliser held constant)."""
    Wx = numpy.concatenate([p[f"W_{g}"] for g in GATES])          # (4H, D)
    R = numpy.concatenate([p[f"R_{g}"] for g in GATES])           # (4H, H)
    b = numpy.concatenate([p[f"b_{g}"] for g in GATES])
    dt = xs.dtype
    Tn, Bn, _ = xs.shape
    pre_x = xs @ Wx.T + b                                          # (T, B, 4H)
    c = numpy.zeros((Tn + 1, Bn, H), dt)
    n = numpy.ones((Tn + 1, Bn, H), dt)
    m = numpy.zeros((Tn + 1, Bn, H), dt)
    h = numpy.zeros((Tn + 1, Bn, H), dt)
    z, o, ip, fp = (numpy.empty((Tn, Bn, H), dt) for _ in range(4))
    for t in range(Tn):
        a = pre_x[t] + h[t] @ R.T
        zb, it, ft, ob = numpy.split(a, 4, axis=1)
        m[t + 1] = numpy.maximum(ft + m[t], it)
        ip[t] = numpy.exp(it - m[t + 1])
        fp[t] = numpy.exp(ft + m[t] - m[t + 1])
        z[t] = numpy.tanh(zb)
        o[t] = _sig(ob)
        c[t + 1] = fp[t] * c[t] + ip[t] * z[t]
        n[t + 1] = fp[t] * n[t] + ip[t]
        h[t + 1] = o[t] * c[t + 1] / n[t + 1]
    G = numpy.empty((Tn, Bn, 4 * H), dt)
    dh, dc, dn = (numpy.zeros((Bn, H), dt) for _ in range(3))
    for t in reversed(range(Tn)):
        dh = dh + dhs[t]
        inv = 1 / n[t + 1]
        dc = dc + dh * o[t] * inv
        dn = dn - dh * o[t] * c[t + 1] * inv * inv
        G[t, :, 3 * H:] = dh * c[t + 1] * inv * o[t] * (1 - o[t])
        G[t, :, :H] = dc * ip[t] * (1 - z[t] * z[t])
        G[t, :, H:2 * H] = (dc * z[t] + dn) * ip[t]
        G[t, :, 2 * H:3 * H] = (dc * c[t] + dn * n[t]) * fp[t]
        dc, dn = dc * fp[t], dn * fp[t]
        dh = G[t] @ R
    GW = G.reshape(-1, 4 * H).T
    dWx = GW @ xs.reshape(-1, D)
    dR = GW @ h[:-1].reshape(-1, H)
    return h[1:], dWx, dR, G.sum(axis=(0, 1))


def main():
    rows = []
    for dtype in (numpy.float32, numpy.float64):
        rng = numpy.random.default_rng(0)
        xs = rng.standard_normal((T, B, D)).astype(dtype)
        dhs = rng.standard_normal((T, B, H)).astype(dtype)
        full = derive.kernels("slstm")
        p = full.init_params(D, H, rng=rng, dtype=dtype)
        s0 = tuple(numpy.ones((B, H), dtype) if s == "n" else numpy.zeros((B, H), dtype)
                   for s in full.STATE)
        hs_gen, _ = full.forward(p, xs, s0)
        hs_ref = slstm_by_hand(p, xs, dhs)[0]
        err = float(numpy.abs(hs_gen - hs_ref).max())
        t_hand = best(lambda: slstm_by_hand(p, xs, dhs))

        def run(k, held):
            hs, cache = k.forward(p, xs, s0)
            k.backward(p, cache, dhs, held=held)
        t_full, t_held = best(lambda: run(full, False)), best(lambda: run(full, True))
        name = numpy.dtype(dtype).name
        rows.append(("slstm", name, t_held, t_hand, t_full, err))
        for cell in ("mingru", "minlstm", "lru"):
            k = derive.kernels(cell)
            pc = k.init_params(D, H, rng=rng, dtype=dtype)
            rows.append((cell, name, best(lambda: run_cell(k, pc, xs, dhs)), None, None, None))
    print(f"T={T}, B={B}, D=H={H}, best of 5, forward + backward\n")
    print("| cell | dtype | generated s | hand-written s | ratio | full backward s | max |h| diff |")
    print("|---|---|---|---|---|---|---|")
    for cell, dt, t_gen, t_hand, t_full, err in rows:
        if t_hand is None:
            print(f"| {cell} | {dt} | {t_gen:.4f} | | | | |")
        else:
            print(f"| {cell} (m held) | {dt} | {t_gen:.4f} | {t_hand:.4f} | {t_gen / t_hand:.2f}x "
                  f"| {t_full:.4f} ({t_full / t_hand:.2f}x) | {err:.1e} |")


def run_cell(k, p, xs, dhs, method="loop"):
    hs, cache = k.forward(p, xs, method=method)
    k.backward(p, cache, dhs)


def scan_table(T_long=4096):
    """forward + backward by the loop and by the derived parallel scan, T = 4096, float64."""
    print(f"\nT={T_long}, B={B}, D=H={H}, float64, forward + backward\n")
    print("| cell | loop s | scan s | loop / scan |")
    print("|---|---|---|---|")
    rng = numpy.random.default_rng(1)
    xs = rng.standard_normal((T_long, B, D))
    dhs = rng.standard_normal((T_long, B, H))
    for cell in ("mingru", "minlstm", "lru"):
        k = derive.kernels(cell)
        p = k.init_params(D, H, rng=rng)
        t_loop = best(lambda: run_cell(k, p, xs, dhs), 3)
        t_scan = best(lambda: run_cell(k, p, xs, dhs, "scan"), 3)
        print(f"| {cell} | {t_loop:.3f} | {t_scan:.3f} | {t_loop / t_scan:.2f}x |")


if __name__ == "__main__":
    main()
    scan_table()
