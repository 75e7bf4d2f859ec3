"""LSTM forward+backward: generated kernel vs hand-written NumPy vs torch.nn.LSTM (ratios, one run).

Run (the only place these variables are changed):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_kernels.py

T=50, B=32, D=H=256, float32 and float64, 2 threads. Baselines, all in this process:

* tuned NumPy: one GEMM for the input projections of all gates over the whole sequence, one
  recurrent GEMM per step for all gates, whole-sequence weight-gradient GEMMs; it uses the
  same stable primitives (derive.codegen.np_primitives) as the generated kernel;
* plain NumPy: a matrix product per gate per step, forward and backward;
* torch.nn.LSTM on CPU with autograd (if torch is installed), as PyTorch runs it (in float32
  it dispatches to oneDNN's fused LSTM primitive) and with oneDNN switched off
  (``torch.backends.mkldnn.flags(enabled=False)``: ATen's own cell loop on MKL GEMMs);
* the GEMM floor: the LSTM's matrix products alone, same shapes and layouts, back to back
  (no elementwise work at all), the fastest any NumPy LSTM built on these products can be.

GEMM-rate fraction: FLOPs of the LSTM's matrix products (forward: input and recurrent
projections; backward: dh_{t-1}, dW_x, dW_h) / time, divided by the rate of a large
numpy.matmul measured in the same run. Prints a markdown table.
"""
from __future__ import annotations

import os

import sys  # noqa: E402

# --cpu-time: one BLAS thread, timed by process CPU time (robust when other processes load the
# machine); the default run is the setting, 2 threads and wall-clock time.
CPU_MODE = "--cpu-time" in sys.argv
THREADS = "1" if CPU_MODE else "2"
os.environ["OPENBLAS_NUM_THREADS"] = THREADS
os.environ["OMP_NUM_THREADS"] = THREADS
os.environ["MKL_NUM_THREADS"] = THREADS

import importlib.util  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import derive  # noqa: E402
from derive.codegen.module import generate  # noqa: E402
from derive.codegen.source import module_source  # noqa: E402
from derive.codegen.np_primitives import sigmoid, tanh  # noqa: E402

T, B, D, H = 50, 32, 256, 256
REPEATS = 7
clock = time.process_time if CPU_MODE else time.perf_counter


def best_time(fn, repeats=REPEATS):
    fn()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


SETTLE = 0.25      # seconds of idleness before each timed call (see interleaved)


def interleaved(fns, repeats=REPEATS):
    """Best wall time of each function, timed in turn (round robin) so that a change in
    machine load hits every contender alike. Before each timed call the process sleeps
    SETTLE seconds: worker threads of the previous contender's thread pool (torch's OpenMP
    threads, OpenBLAS's) keep spinning for a while after it returns, and on two cores they
    would take the next contender's second core. Without the pause whichever contender runs
    right after torch measured about 30% slower."""
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            time.sleep(SETTLE)
            t0 = clock()
            fn()
            best[k] = min(best[k], clock() - t0)
    return best


def blas_info():
    try:
        cfg = numpy.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        name = f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # pragma: no cover
        name = "unknown"
    try:
        from threadpoolctl import threadpool_info
        info = threadpool_info()
        name += " | " + ", ".join(f"{i['internal_api']} {i.get('version')} {i.get('architecture')} "
                                  f"threads={i['num_threads']}" for i in info)
    except ImportError:
        name += f" | threads: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"
    return name


# ---------------------------------------------------------------------------------------
# hand-written baselines (PyTorch gate order i, f, g, o)
# ---------------------------------------------------------------------------------------

def stack(p):
    Wx = numpy.concatenate([p[f"W_x{g}"] for g in "ifco"])
    Wh = numpy.concatenate([p[f"W_h{g}"] for g in "ifco"])
    b = numpy.concatenate([p[f"b_{g}"] for g in "ifco"])
    return Wx, Wh, b


def tuned_fwd_bwd(p, xs, dhs):
    Wx, Wh, b = stack(p)
    T_, B_, _ = xs.shape
    H_ = Wh.shape[1]
    dt = xs.dtype
    XP = (xs.reshape(T_ * B_, -1) @ Wx.T).reshape(T_, B_, 4 * H_)
    XP += b
    Hs = numpy.zeros((T_ + 1, B_, H_), dt)
    Cs = numpy.zeros((T_ + 1, B_, H_), dt)
    A = numpy.empty((T_, B_, 4 * H_), dt)          # activations i, f, g, o
    TC = numpy.empty((T_, B_, H_), dt)
    for t in range(T_):
        z = Hs[t] @ Wh.T
        z += XP[t]
        a = A[t]
        a[:, :2 * H_] = sigmoid(z[:, :2 * H_])
        a[:, 2 * H_:3 * H_] = tanh(z[:, 2 * H_:3 * H_])
        a[:, 3 * H_:] = sigmoid(z[:, 3 * H_:])
        c = a[:, H_:2 * H_] * Cs[t]
        c += a[:, :H_] * a[:, 2 * H_:3 * H_]
        Cs[t + 1] = c
        TC[t] = tanh(c)
        Hs[t + 1] = a[:, 3 * H_:] * TC[t]
    G = numpy.empty((T_, B_, 4 * H_), dt)
    dh = numpy.zeros((B_, H_), dt)
    dc = numpy.zeros((B_, H_), dt)
    for t in range(T_ - 1, -1, -1):
        a, tc = A[t], TC[t]
        i, f, g, o = a[:, :H_], a[:, H_:2 * H_], a[:, 2 * H_:3 * H_], a[:, 3 * H_:]
        dh = dh + dhs[t]
        gt = G[t]
        gt[:, 3 * H_:] = dh * tc * o * (1 - o)
        dc = dc + dh * o * (1 - tc * tc)
        gt[:, 2 * H_:3 * H_] = dc * i * (1 - g * g)
        gt[:, H_:2 * H_] = dc * Cs[t] * f * (1 - f)
        gt[:, :H_] = dc * g * i * (1 - i)
        dc = dc * f
        dh = gt @ Wh
    Gf = G.reshape(T_ * B_, 4 * H_)
    dWx = Gf.T @ xs.reshape(T_ * B_, -1)
    dWh = Gf.T @ Hs[:T_].reshape(T_ * B_, H_)
    db = Gf.sum(axis=0)
    return Hs[1:], dWx, dWh, db


def plain_fwd_bwd(p, xs, dhs):
    T_, B_, _ = xs.shape
    H_ = p["W_hi"].shape[0]
    dt = xs.dtype
    h = numpy.zeros((B_, H_), dt)
    c = numpy.zeros((B_, H_), dt)
    cache = []
    hs = []
    for t in range(T_):
        x = xs[t]
        i = sigmoid(x @ p["W_xi"].T + h @ p["W_hi"].T + p["b_i"])
        f = sigmoid(x @ p["W_xf"].T + h @ p["W_hf"].T + p["b_f"])
        g = tanh(x @ p["W_xc"].T + h @ p["W_hc"].T + p["b_c"])
        o = sigmoid(x @ p["W_xo"].T + h @ p["W_ho"].T + p["b_o"])
        cache.append((x, h, c, i, f, g, o))
        c = f * c + i * g
        h = o * tanh(c)
        hs.append(h)
    grads = {n: numpy.zeros_like(v) for n, v in p.items()}
    dh = numpy.zeros((B_, H_), dt)
    dc = numpy.zeros((B_, H_), dt)
    for t in range(T_ - 1, -1, -1):
        x, hp, cp, i, f, g, o = cache[t]
        c = f * cp + i * g
        tc = tanh(c)
        dh = dh + dhs[t]
        do = dh * tc * o * (1 - o)
        dc = dc + dh * o * (1 - tc * tc)
        dg = dc * i * (1 - g * g)
        df = dc * cp * f * (1 - f)
        di = dc * g * i * (1 - i)
        dh = numpy.zeros_like(dh)
        for gate, d in zip("ifco", (di, df, dg, do)):
            grads[f"W_x{gate}"] += d.T @ x
            grads[f"W_h{gate}"] += d.T @ hp
            grads[f"b_{gate}"] += d.sum(axis=0)
            dh += d @ p[f"W_h{gate}"]
        dc = dc * f
    return numpy.stack(hs), grads


def gemm_floor(p, xs, hs, G):
    """Only the matrix products of tuned_fwd_bwd, same shapes and operand layouts: hs (T, B, H)
    stands for the states, G (T, B, 4H) for the gate adjoints."""
    Wx, Wh, b = stack(p)
    T_, B_, _ = xs.shape
    H_ = Wh.shape[1]
    xs.reshape(T_ * B_, -1) @ Wx.T
    for t in range(T_):
        hs[t] @ Wh.T
    for t in range(T_ - 1, -1, -1):
        G[t] @ Wh
    Gf = G.reshape(T_ * B_, 4 * H_)
    Gf.T @ xs.reshape(T_ * B_, -1)
    Gf.T @ hs.reshape(T_ * B_, H_)


def jacobian_by_hand(p, x, h, c):
    Wx, Wh, b = stack(p)
    z = x @ Wx.T + h @ Wh.T + b
    i, f, g, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), tanh(z[:, 2 * H:3 * H]), sigmoid(z[:, 3 * H:])
    cn = f * c + i * g
    tc = tanh(cn)
    dtc = 1 - tc * tc
    vc = [g * i * (1 - i), c * f * (1 - f), i * (1 - g * g)]
    J = numpy.zeros((x.shape[0], 2 * H, 2 * H), x.dtype)
    Wg = [p["W_hi"], p["W_hf"], p["W_hc"]]
    for v, W in zip(vc, Wg):
        J[:, H:, :H] += v[:, :, None] * W
    J[:, :H, :H] = (o * dtc)[:, :, None] * J[:, H:, :H] + (tc * o * (1 - o))[:, :, None] * p["W_ho"]
    ar = numpy.arange(H)
    J[:, H:, H:][:, ar, ar] = f
    J[:, :H, H:][:, ar, ar] = o * dtc * f
    return J


# ---------------------------------------------------------------------------------------

def load_generated(tmp):
    path = Path(tmp) / "lstm_generated.py"
    path.write_text(module_source(generate(derive.cell("lstm"))))
    spec = importlib.util.spec_from_file_location("lstm_generated", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def problem(gen, dtype):
    """(params, xs, dhs, run_gen): the benchmark's LSTM problem in ``dtype`` and the generated
    kernel's forward+backward on it."""
    rng = numpy.random.default_rng(0)
    p = gen.init_params(D, H, rng=rng, dtype=dtype)
    xs = rng.standard_normal((T, B, D)).astype(dtype)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)

    def run_gen():
        hs, cache = gen.forward(p, xs)
        return hs, gen.backward(p, cache, dhs)
    return p, xs, dhs, run_gen


def gemm_rate(dtype, n=2048):
    a = numpy.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    bm = numpy.random.default_rng(1).standard_normal((n, n)).astype(dtype)
    t = best_time(lambda: a @ bm, repeats=5)
    return 2 * n ** 3 / t


def main():
    try:
        import torch
        torch.set_num_threads(int(THREADS))
        # switching oneDNN off warns about TF32 on Intel GPUs, which this build lacks
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
    except ImportError:
        torch = None
    lstm_flops = 2 * T * B * 4 * H * (2 * D + 3 * H)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        gen = load_generated(tmp)
        for dtype in (numpy.float32, numpy.float64):
            p, xs, dhs, run_gen = problem(gen, dtype)

            # same answers before timing anything
            hs_g, (g_g, _) = run_gen()
            hs_t, dWx, dWh, db = tuned_fwd_bwd(p, xs, dhs)
            G_floor = numpy.random.default_rng(2).standard_normal((T, B, 4 * H)).astype(dtype)
            tol = 1e-3 if dtype == numpy.float32 else 1e-9
            assert numpy.allclose(hs_g, hs_t, atol=tol)
            assert numpy.allclose(g_g["W_hf"], dWh[H:2 * H], atol=tol * 10)
            contenders = {"gen": run_gen, "tuned": lambda: tuned_fwd_bwd(p, xs, dhs),
                          "plain": lambda: plain_fwd_bwd(p, xs, dhs),
                          "floor": lambda: gemm_floor(p, xs, hs_t[:T], G_floor)}
            if torch is not None:
                tdt = torch.float32 if dtype == numpy.float32 else torch.float64
                m = torch.nn.LSTM(D, H).to(tdt)
                xt, dt_ = torch.tensor(xs), torch.tensor(dhs)

                def run_torch():
                    m.zero_grad(set_to_none=True)
                    out, _ = m(xt)
                    out.backward(dt_)
                contenders["torch"] = run_torch

                def run_torch_native():
                    with torch.backends.mkldnn.flags(enabled=False):
                        run_torch()
                contenders["torch_native"] = run_torch_native
            best = interleaved(contenders)
            rate = gemm_rate(dtype)
            rows.append((numpy.dtype(dtype).name, best, rate))
        # step_jacobian at H = 256
        jrows = []
        for dtype in (numpy.float32, numpy.float64):
            rng = numpy.random.default_rng(0)
            p = gen.init_params(D, H, rng=rng, dtype=dtype)
            x = rng.standard_normal((B, D)).astype(dtype)
            st = tuple(rng.standard_normal((B, H)).astype(dtype) * 0.5 for _ in range(2))
            J = gen.step_jacobian(p, x, st)
            Jh = jacobian_by_hand(p, x, *st)
            assert numpy.allclose(J, Jh, atol=1e-4 if dtype == numpy.float32 else 1e-12)
            best = interleaved({"gen": lambda: gen.step_jacobian(p, x, st),
                                "hand": lambda: jacobian_by_hand(p, x, *st)})
            tj, th = best["gen"], best["hand"]
            jrows.append((numpy.dtype(dtype).name, tj, th))

    print(f"BLAS: {blas_info()}")
    print(f"load average at the end (1, 5, 15 min): {os.getloadavg()} on {os.cpu_count()} CPUs "
          f"(other processes compete for the cores when it is above ~2)")
    print(f"numpy {numpy.__version__}; torch {torch.__version__ if torch else 'not installed'}; "
          f"LSTM T={T}, B={B}, D={D}, H={H}, fwd+bwd; best of {REPEATS}; {THREADS} thread(s), "
          f"{'process CPU time' if CPU_MODE else 'wall-clock time'}")
    print()
    print("| dtype | generated | tuned NumPy | plain NumPy | torch.nn.LSTM (oneDNN) "
          "| torch.nn.LSTM (oneDNN off) | GEMM floor | generated / tuned | generated / torch "
          "| generated / torch, oneDNN off | tuned / torch | plain / tuned "
          "| GEMM-rate fraction: generated (tuned, floor) | matmul rate |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, best, rate in rows:
        tg, tt, tp, tf = best["gen"], best["tuned"], best["plain"], best["floor"]
        tto, ttn = best.get("torch"), best.get("torch_native")
        ms = lambda v: f"{v * 1e3:.1f} ms" if v else "-"          # noqa: E731
        ratio = lambda a, b: f"{a / b:.2f}x" if b else "-"        # noqa: E731
        frac = lambda v: f"{lstm_flops / v / rate:.0%}"            # noqa: E731
        print(f"| {name} | {ms(tg)} | {ms(tt)} | {ms(tp)} | {ms(tto)} | {ms(ttn)} | {ms(tf)} "
              f"| {ratio(tg, tt)} | {ratio(tg, tto)} | {ratio(tg, ttn)} | {ratio(tt, tto)} "
              f"| {ratio(tp, tt)} | {frac(tg)} ({frac(tt)}, {frac(tf)}) | {rate / 1e9:.0f} GFLOP/s |")
    print()
    print(f"step_jacobian, B={B}, H={H} (J is {B} x {2 * H} x {2 * H}):")
    print()
    print("| dtype | generated | hand-written NumPy | generated / hand-written |")
    print("|---|---|---|---|")
    for name, tj, th in jrows:
        print(f"| {name} | {tj * 1e3:.2f} ms | {th * 1e3:.2f} ms | {tj / th:.2f}x |")


if __name__ == "__main__":
    main()
    if not CPU_MODE:
        print()
        sys.stdout.flush()
        subprocess.run([sys.executable, __file__, "--cpu-time"], check=True)
