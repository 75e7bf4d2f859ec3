"""Derived parallel scans (issue 17): forward + backward, loop vs scan, against a torch loop.

Run (the only place these variables are changed):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_scan.py [--quick]

T in {256, 1024, 4096}, B = 8, D = H = 256, float32 and float64, for mingru, minlstm and lru,
all in one process on the same inputs: the generated kernel's forward + backward with
method="loop" and with method="scan" (median of the repeats), their ratio, a torch loop of
the same cell written here from the papers' equations (whole-sequence input projections, a
Python loop over t, autograd backward of sum(hs * dhs); the faster of 1 and 2 torch threads)
and jax.lax.associative_scan when jax is installed. ``shared`` is the time of the two GEMMs
every method does (input projections, weight gradients): scan / loop cannot go below
shared / loop. A second table compares the
linear scan with a log-space scan (positive A_t only) for accuracy against a long-double loop.
A third table times Gated DeltaNet's chunked matrix scan against its loop, a fourth the
recurrence alone by three algorithms (a loop, the kernels' two-level scan, Blelloch's).
``--quick`` runs T = 64, B = 2, H = 16 once (a smoke run); ``--cpu-time`` measures process CPU
time with one thread everywhere (for a loaded machine). Prints markdown tables.
"""
from __future__ import annotations

import os
import sys

#: --cpu-time: one thread everywhere and process CPU time (robust when other processes load
#: the machine); by default 2 BLAS threads and wall-clock time.
CPU_TIME = "--cpu-time" in sys.argv[1:]
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1" if CPU_TIME else "2")
os.environ.setdefault("OMP_NUM_THREADS", "1" if CPU_TIME else "2")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import derive  # noqa: E402
from derive.codegen.scan_support import _affine_scan  # noqa: E402

CELLS = ("mingru", "minlstm", "lru")


def median_time(fn, repeats):
    """Median wall time of ``repeats`` calls after one warm-up call."""
    clock = time.process_time if CPU_TIME else time.perf_counter
    fn()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return float(numpy.median(times))


def case(name, T, B, H, dtype, seed=0):
    k = derive.kernels(name)
    rng = numpy.random.default_rng(seed)
    p = k.init_params(H, H, rng=rng, dtype=dtype)
    xs = rng.standard_normal((T, B, H)).astype(dtype)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    return k, p, xs, dhs


def fwd_bwd(k, p, xs, dhs, method):
    _, cache = k.forward(p, xs, method=method)
    return k.backward(p, cache, dhs)


# -- a torch loop of each cell, from the papers' equations ----------------------------------

def torch_cell(name, p, xs, dhs):
    """Forward by a Python loop over t, backward by autograd of sum(hs * dhs):
    (hs, {param: grad}) as NumPy arrays. The per-step slices come from ``unbind`` (indexing
    z[t] would make autograd add a full (T, B, H) zero gradient per step: O(T^2))."""
    import torch
    P = {n: torch.tensor(a, requires_grad=True) for n, a in p.items()}
    x, T = torch.from_numpy(xs), xs.shape[0]
    h = torch.zeros(xs.shape[1], dhs.shape[2], dtype=x.dtype)
    hs = []
    if name == "mingru":                      # Feng et al. 2024: h = (1 - z) h + z htilde
        z = torch.sigmoid(x @ P["W_z"].T + P["b_z"]).unbind(0)
        ht = (x @ P["W_h"].T + P["b_h"]).unbind(0)
        for t in range(T):
            h = (1 - z[t]) * h + z[t] * ht[t]
            hs.append(h)
    elif name == "minlstm":                   # f' = f / (f + i), i' = i / (f + i)
        f = torch.sigmoid(x @ P["W_f"].T + P["b_f"])
        i = torch.sigmoid(x @ P["W_i"].T + P["b_i"])
        ht = x @ P["W_h"].T + P["b_h"]
        fp, ip, ht = (f / (f + i)).unbind(0), (i / (f + i)).unbind(0), ht.unbind(0)
        for t in range(T):
            h = fp[t] * h + ip[t] * ht[t]
            hs.append(h)
    elif name == "lru":                       # Orvieto et al. 2023, real form; output Re x
        mod = torch.exp(-torch.exp(P["nu"]))
        ang = torch.exp(P["theta"])
        lr, li = mod * torch.cos(ang), mod * torch.sin(ang)
        gam = torch.sqrt(1 - mod * mod)
        ur, ui = (gam * (x @ P["B_re"].T)).unbind(0), (gam * (x @ P["B_im"].T)).unbind(0)
        hi = torch.zeros_like(h)
        for t in range(T):
            h, hi = lr * h - li * hi + ur[t], lr * hi + li * h + ui[t]
            hs.append(h)
    else:                                                       # pragma: no cover
        raise ValueError(f"no torch baseline for cell {name!r}")
    out = torch.stack(hs)
    (out * torch.from_numpy(dhs)).sum().backward()
    return out.detach().numpy(), {n: t.grad.numpy() for n, t in P.items()}


def torch_time(torch, threads, name, p, xs, dhs, repeats):
    """The torch loop's median time with ``threads`` intra-op threads (the report takes the
    faster of 1 and 2: two threads speed up its GEMMs but slow its small per-step ops)."""
    torch.set_num_threads(threads)
    return median_time(lambda: torch_cell(name, p, xs, dhs), repeats)


def jax_time(name, p, xs, dhs, repeats):
    """fwd + bwd of mingru / minlstm with jax.lax.associative_scan, or None without jax."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    if name == "lru":
        return float("nan")
    jax.config.update("jax_enable_x64", True)

    def loss(P, x, g):
        if name == "mingru":
            z = jax.nn.sigmoid(x @ P["W_z"].T + P["b_z"])
            a, b = 1 - z, z * (x @ P["W_h"].T + P["b_h"])
        else:
            f, i = jax.nn.sigmoid(x @ P["W_f"].T + P["b_f"]), jax.nn.sigmoid(x @ P["W_i"].T + P["b_i"])
            a, b = f / (f + i), i / (f + i) * (x @ P["W_h"].T + P["b_h"])
        _, h = jax.lax.associative_scan(lambda l, r: (r[0] * l[0], r[0] * l[1] + r[1]), (a, b))
        return (h * g).sum()
    grad = jax.jit(jax.grad(loss))
    P = {n: jnp.asarray(a) for n, a in p.items()}
    x, g = jnp.asarray(xs), jnp.asarray(dhs)
    return median_time(lambda: jax.block_until_ready(grad(P, x, g)), repeats)


def shared_time(k, p, xs, dhs, repeats):
    """The GEMMs both methods do: input projections and weight gradients over (T B) rows."""
    W = numpy.concatenate([a for a in p.values() if a.ndim == 2])
    x2, g2 = xs.reshape(-1, xs.shape[2]), numpy.concatenate([dhs] * (W.shape[0] // dhs.shape[2]), 2)

    def run():
        x2 @ W.T
        g2.reshape(-1, W.shape[0]).T @ x2
    return median_time(run, repeats)


# -- the log-space alternative (positive A_t) -----------------------------------------------

def log_scan(a, b, s0):
    """s_t = a_t s_{t-1} + b_t for positive a, elementwise, in log space: with L_t the
    cumulative sum of log a, s_t = exp(L_t) (s0 + sum_{u<=t} exp(-L_u) b_u), the sum kept as
    two log-sum-exp accumulations (positive and negative b), the form of Heinsen (2023)."""
    L = numpy.cumsum(numpy.log(a), axis=0)
    out = []
    for sign in (1, -1):
        part = numpy.where(sign * b > 0, numpy.log(numpy.abs(b)) - L, -numpy.inf)
        first = numpy.where(sign * s0 > 0, numpy.log(numpy.abs(s0)), -numpy.inf)
        acc = numpy.logaddexp.accumulate(numpy.concatenate([first[None], part]), axis=0)[1:]
        out.append(numpy.exp(L + acc))
    return out[0] - out[1]


def blelloch_scan(a, b, s0):
    """s_t = a_t s_{t-1} + b_t (elementwise) by the work-efficient scan of Blelloch (1990):
    an up-sweep and a down-sweep of log2(T) passes each over strided views of copies of a, b,
    O(T) work, the composition (a, b) then (a', b') = (a' a, a' b + b') at every node."""
    a, b = a.copy(), b.copy()
    T = a.shape[0]
    b[0] += a[0] * s0
    tmp = numpy.empty_like(a[:max(1, T // 2)])

    def combine(first, then):
        n = len(range(then, T, 2 * d))
        if n:
            w = tmp[:n]
            numpy.multiply(a[then::2 * d], b[first::2 * d][:n], out=w)
            b[then::2 * d] += w
            a[then::2 * d] *= a[first::2 * d][:n]
    d = 1
    while d < T:                       # up-sweep: node 2d - 1 + 2dk takes its left half
        combine(d - 1, 2 * d - 1)
        d *= 2
    d //= 2
    while d >= 1:                      # down-sweep: node 3d - 1 + 2dk takes the prefix before it
        combine(2 * d - 1, 3 * d - 1)
        d //= 2
    return b


def algorithms(quick, repeats):
    """The recurrence alone, s_t = a_t s_{t-1} + b_t with B H = 2048 units: an in-place loop
    over t, the two-level scan the kernels use, and the Blelloch scan (O(log T) passes)."""
    Ts, n = ((64,), 16) if quick else ((256, 1024, 4096), 2048)
    print(f"\nThe recurrence alone (a in [0.5, 1], {n} units), seconds, median of {repeats}:\n")
    print("| dtype | T | in-place loop | two-level scan (kernels) | Blelloch scan | max abs difference |")
    print("|---|---|---|---|---|---|")
    rng = numpy.random.default_rng(0)
    for dtype in (numpy.float32, numpy.float64):
        for T in Ts:
            a = rng.uniform(0.5, 1, (T, 1, n)).astype(dtype)
            b = rng.standard_normal((T, 1, n)).astype(dtype)
            s0 = rng.standard_normal((1, n)).astype(dtype)
            out = numpy.empty_like(b)

            def loop():
                h = s0
                for t in range(T):
                    h = a[t] * h + b[t]
                    out[t] = h
            two = [numpy.empty_like(b)]
            t_loop = median_time(loop, repeats)
            t_two = median_time(lambda: _affine_scan({(0, 0): a}, [b], [s0], two), repeats)
            t_bl = median_time(lambda: blelloch_scan(a, b, s0), repeats)
            diff = max(float(numpy.abs(two[0] - out).max()),
                       float(numpy.abs(blelloch_scan(a, b, s0) - out).max()))
            print(f"| {numpy.dtype(dtype).name} | {T} | {t_loop:.4f} | {t_two:.4f} | {t_bl:.4f} | "
                  f"{diff:.1e} |", flush=True)


def accuracy(regime, dtype, T=100_000, n=3, seed=7):
    """Max relative error of a loop, the linear scan and the log-space scan of minGRU-like
    coefficients (a = 1 - z), all in ``dtype``, against a long-double loop over the same a, b:
    (loop, linear, log, linear time, log time)."""
    rng = numpy.random.default_rng(seed)
    bias = {"near 1": -12.0, "near 0": 12.0, "mixed": 0.0}[regime]
    u = rng.standard_normal((T, 1, n)) * (0.1 if regime != "mixed" else 3.0) + bias
    z = (1 / (1 + numpy.exp(-u))).astype(dtype)
    a, b = (1 - z).astype(dtype), (z * rng.standard_normal((T, 1, n))).astype(dtype)
    s0 = rng.standard_normal((1, n)).astype(dtype)
    ref, h = numpy.empty((T, 1, n), numpy.longdouble), s0.astype(numpy.longdouble)
    al, bl = a.astype(numpy.longdouble), b.astype(numpy.longdouble)
    for t in range(T):
        h = al[t] * h + bl[t]
        ref[t] = h
    scale = float(numpy.abs(ref).max())
    lin = _affine_scan({(0, 0): a}, [b], [s0], [numpy.empty_like(b)])[0]
    t0 = time.perf_counter()
    lg = log_scan(a, b, s0)
    t_log = time.perf_counter() - t0
    t0 = time.perf_counter()
    _affine_scan({(0, 0): a}, [b], [s0], [numpy.empty_like(b)])
    t_lin = time.perf_counter() - t0
    seq, h = numpy.empty_like(b), s0
    for t in range(T):
        h = a[t] * h + b[t]
        seq[t] = h
    err = [float(numpy.abs(x.astype(numpy.longdouble) - ref).max()) / scale for x in (seq, lin, lg)]
    return (*err, t_lin, t_log)


def matrix_table(quick, repeats):
    """Gated DeltaNet (a matrix state, S_t = S_{t-1} M_t + B_t): the chunked scan against the
    loop, fwd + bwd, for the default chunk and two others, float64 and float32."""
    Ts, B, H = ((32,), 2, 8) if quick else ((256, 1024), 8, 64)
    chunks = (None, 8) if quick else (None, 32, 64)
    print(f"\nGated DeltaNet, chunked matrix scan: B = {B}, D = H = {H}, fwd + bwd, median of "
          f"{repeats}\n")
    print("| dtype | T | loop | " + " | ".join(f"scan, chunk {c or 'sqrt(T)'}" for c in chunks)
          + " | best scan / loop |")
    print("|---|---|---|" + "---|" * len(chunks) + "---|")
    for dtype in (numpy.float32, numpy.float64):
        for T in Ts:
            k, p, xs, dhs = case("gated_deltanet", T, B, H, dtype)
            loop = median_time(lambda: fwd_bwd(k, p, xs, dhs, "loop"), repeats)
            scans = []
            for chunk in chunks:
                def run(chunk=chunk):
                    _, cache = k.forward(p, xs, method="scan", chunk=chunk)
                    return k.backward(p, cache, dhs)
                scans.append(median_time(run, repeats))
            print(f"| {numpy.dtype(dtype).name} | {T} | {loop:.4f} | "
                  + " | ".join(f"{t:.4f}" for t in scans) + f" | {min(scans) / loop:.2f} |", flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    Ts, B, H, repeats = ((64,), 2, 16, 1) if quick else ((256, 1024, 4096), 8, 256, 3)
    try:
        import torch
    except ImportError:                                          # pragma: no cover
        torch = None
    print(f"B = {B}, D = H = {H}, fwd + bwd, median of {repeats}, seconds of "
          + ("process CPU time, 1 thread" if CPU_TIME else "wall-clock time, 2 BLAS threads")
          + f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    print("| cell | dtype | T | loop | scan | scan/loop | shared | shared/loop | torch loop | jax assoc. scan |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    jax_note = None
    for name in CELLS:
        for dtype in (numpy.float32, numpy.float64):
            for T in Ts:
                k, p, xs, dhs = case(name, T, B, H, dtype)
                loop = median_time(lambda: fwd_bwd(k, p, xs, dhs, "loop"), repeats)
                scan = median_time(lambda: fwd_bwd(k, p, xs, dhs, "scan"), repeats)
                shared = shared_time(k, p, xs, dhs, repeats)
                tt = None if torch is None else min(torch_time(torch, n, name, p, xs, dhs, repeats)
                                                    for n in ((1,) if CPU_TIME else (1, 2)))
                jt = jax_time(name, p, xs, dhs, repeats)
                if jt is None:
                    jax_note = "skipped (jax not installed)"
                rows.append((name, dtype, T, loop, scan))
                print(f"| {name} | {numpy.dtype(dtype).name} | {T} | {loop:.4f} | {scan:.4f} | "
                      f"{scan / loop:.2f} | {shared:.4f} | {shared / loop:.2f} | "
                      + (f"{tt:.4f}" if tt is not None else "skipped (torch not installed)") + " | "
                      + (jax_note if jt is None else ("n/a (complex)" if jt != jt else f"{jt:.4f}"))
                      + " |", flush=True)
    matrix_table(quick, repeats)
    algorithms(quick, repeats)
    print("\nAccuracy of the scan of s_t = (1 - z_t) s_{t-1} + b_t, T = "
          + ("10^3" if quick else "10^5") + ", max |error| / max |s| against a long-double loop:\n")
    print("| regime (A_t) | dtype | loop | linear scan | log-space scan | linear time | log time |")
    print("|---|---|---|---|---|---|---|")
    for regime in ("near 1", "near 0", "mixed"):
        for dtype in (numpy.float32, numpy.float64):
            e_seq, e_lin, e_log, t_lin, t_log = accuracy(regime, dtype, T=1000 if quick else 100_000)
            print(f"| {regime} | {numpy.dtype(dtype).name} | {e_seq:.1e} | {e_lin:.1e} | {e_log:.1e} | "
                  f"{t_lin:.4f} | {t_log:.4f} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
