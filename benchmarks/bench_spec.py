"""Cost of a user-defined cell: a spec file read, derived and exported, against a built-in.

The user cell is a byte-for-byte copy of ``derive/cells/lstm_peephole.toml`` under another
name (the same equations), written to a temporary directory and loaded with
``derive.cell_from_spec``; the baseline is the built-in ``lstm_peephole``, loaded from
``derive/cells`` the way the registry does (bypassing its cache). Both are measured in the
same process, alternating, with SymPy's cache cleared before every run so neither profits
from the other's work. Phases: parse (TOML + expression parser + checks), derive (every
step-Jacobian block and the backward step), export (every registered exporter).

Also reports the parse time of every built-in spec and the time to reject hostile specs.

Run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_spec.py [--repeat N]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sympy.core.cache import clear_cache

import derive
from derive.spec import registry
from derive.cli import build_parser
from derive.export.registry import EXPORTERS, render_all
from derive.spec.tables import SpecError, load_spec, parse_spec


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
        infos = threadpool_info()
        return "; ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('threading_layer', '')}, "
                         f"{i.get('num_threads')} threads, {i.get('architecture', '')})" for i in infos) \
            or "no BLAS loaded"
    except ImportError:
        import numpy
        cfg = numpy.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name')} {blas.get('version')} (numpy.show_config; threadpoolctl not installed)"


def run_once(path: Path, options) -> dict:
    """Seconds spent parsing, deriving and exporting the cell in ``path`` from a cold cache."""
    clear_cache()
    t0 = time.perf_counter()
    cell = load_spec(path)
    t1 = time.perf_counter()
    cell.step_jacobian()
    cell.backward()
    t2 = time.perf_counter()
    files = render_all([cell], options)
    t3 = time.perf_counter()
    return {"parse": t1 - t0, "derive": t2 - t1, "export": t3 - t2, "total": t3 - t0,
            "files": len(files)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    options = build_parser().parse_args(["--out", "/nonexistent"])
    builtin = registry.CELLS_DIR / "lstm_peephole.toml"
    print(f"BLAS: {blas_info()}")
    print(f"exporters: {', '.join(EXPORTERS)}")
    with tempfile.TemporaryDirectory() as tmp:
        user = Path(tmp) / "my_peephole_lstm.toml"
        user.write_text(builtin.read_text().replace('name = "lstm_peephole"', 'name = "my_peephole_lstm"'))
        run_once(builtin, options)            # warm up imports of every exporter
        parse_ab = {builtin: [], user: []}
        for k in range(200):                  # parsing alone, alternating, warm SymPy cache
            for path in ((builtin, user) if k % 2 == 0 else (user, builtin)):
                t0 = time.perf_counter()
                load_spec(path)
                parse_ab[path].append(time.perf_counter() - t0)
        runs = {"built-in lstm_peephole": [], "spec copy my_peephole_lstm": []}
        for k in range(args.repeat):
            order = [("built-in lstm_peephole", builtin), ("spec copy my_peephole_lstm", user)]
            for label, path in (order if k % 2 == 0 else order[::-1]):
                runs[label].append(run_once(path, options))

    print(f"\nparse + derive + export of one cell, median of {args.repeat} cold runs (s):")
    print(f"  {'':28s} {'parse':>8s} {'derive':>8s} {'export':>8s} {'total':>8s}")
    med = {}
    for label, rs in runs.items():
        med[label] = {k: statistics.median(r[k] for r in rs) for k in ("parse", "derive", "export", "total")}
        m = med[label]
        print(f"  {label:28s} {m['parse']:8.4f} {m['derive']:8.4f} {m['export']:8.4f} {m['total']:8.4f}")
    a, b = med["spec copy my_peephole_lstm"], med["built-in lstm_peephole"]
    print("  ratio spec copy / built-in (medians): " + "  ".join(f"{k} {a[k] / b[k]:.3f}" for k in a))
    mins = {label: min(r["total"] for r in rs) for label, rs in runs.items()}
    print(f"  ratio of the fastest totals: {mins['spec copy my_peephole_lstm'] / mins['built-in lstm_peephole']:.3f}")
    print(f"  parsing is {100 * b['parse'] / b['total']:.1f}% of the built-in's total")
    pb, pu = (statistics.median(parse_ab[p]) for p in (builtin, user))
    print(f"  parsing alone (median of 200, alternating): built-in {1e3 * pb:.2f} ms, "
          f"spec copy {1e3 * pu:.2f} ms, ratio {pu / pb:.3f}")

    print("\nparse time of every built-in spec (median of 20, warm SymPy cache, ms):")
    for name in derive.cells():
        path = registry.CELLS_DIR / f"{name}.toml"
        text = path.read_text()
        ts = []
        for _ in range(20):
            t0 = time.perf_counter()
            parse_spec(text, path)
            ts.append(time.perf_counter() - t0)
        print(f"  {name:22s} {1e3 * statistics.median(ts):7.2f}")

    print("\nderive + export of each new built-in cell, one cold run (s):")
    for name in ["gru", "gru_cho", "rnn_relu", "lstm_nig", "lstm_nfg", "lstm_nog", "lstm_niaf",
                 "lstm_noaf", "lstm_np", "lstm_cifg", "lstm_fgr"]:
        r = run_once(registry.CELLS_DIR / f"{name}.toml", options)
        print(f"  {name:22s} parse {r['parse']:.4f}  derive {r['derive']:.3f}  export {r['export']:.3f}")

    print("\ntime to reject a hostile spec (median of 5, ms):")
    head = '[cell]\nname = "t"\nstates = ["h"]\n[params]\nW = ["H", "H"]\n[equations]\n'
    hostile = {
        "__import__('os').system(...)": head + "h = \"__import__('os').system('x')\"\n",
        "200 kB of parentheses": head + 'h = "' + "(" * 100000 + "h_prev" + ")" * 100000 + '"\n',
        "nesting 200 deep": head + 'h = "' + "tanh(" * 200 + "h_prev" + ")" * 200 + '"\n',
        "10 MB string (parse_spec)": "x = '" + "A" * 10_000_000 + "'\n",
        "exponential derivation (40 eqs)": head + 'e0 = "tanh(W @ h_prev)"\n' + "".join(
            f'e{k} = "tanh(e{k - 1} + W @ e{k - 1})"\n' for k in range(1, 40)) + 'h = "e39"\n',
    }
    for label, text in hostile.items():
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            try:
                parse_spec(text)
                raise SystemExit(f"hostile spec accepted: {label}")
            except SpecError:
                pass
            ts.append(time.perf_counter() - t0)
        print(f"  {label:34s} {1e3 * statistics.median(ts):8.2f}")


if __name__ == "__main__":
    main()
