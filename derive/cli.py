"""``python -m derive`` / ``rnn-derive``: derive every cell and write (or check) the generated files.

Exit status: 0 success; 1 ``--check`` found stale, missing or stray files; 2 a user error
(unknown cell, bad spec, unknown notation, unusable output directory, unwritable stdout),
reported in one line ``<prog>: error: <message>`` without a traceback; 3 ``--pdf`` was asked
for and no TeX engine is installed (said before deriving) or the compile failed; 130
interrupted (Ctrl-C). Progress goes to stderr (``--quiet``: none), the outcome to stdout.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from derive.spec import registry
from derive.cliutil import Parser, UsageError, prog_name, run_main, say_error
from derive.export.cellpool import MAX_JOBS
from derive.export.registry import render_all
from derive.export.output import OutputError, check_out_dir, check_tree, stray_files, write_tree
from derive.export.progress import Progress
from derive.spec.tables import SpecError, load_spec


def build_parser(prog="python -m derive"):
    p = Parser(prog=prog, description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--list", action="store_true", help="list the built-in cells and exit")
    p.add_argument("--cells", help="comma-separated cell names (default: all built-in cells)")
    p.add_argument("--spec", action="append", default=[], metavar="FILE",
                   help="also derive a user-defined cell from a TOML spec (repeatable)")
    p.add_argument("--out", default="out", help="output directory (default: out/)")
    p.add_argument("--check", action="store_true",
                   help="compare what would be written with --out; list stale, missing or "
                        "stray files; exit 1 if any; write nothing")
    p.add_argument("--notation", default=None, metavar="NAME",
                   help="symbol names in the LaTeX and Markdown output: "
                        + ", ".join(_notation_names()) + " (default: seed)")
    p.add_argument("--pdf", action="store_true",
                   help="also compile derivations.tex to derivations.pdf in --out (needs "
                        "pdflatex) and derivations.zh.tex to derivations.zh.pdf (needs xelatex)")
    p.add_argument("--lang", default="all", choices=("en", "zh", "all"),
                   help="which editions of the article to write: en (derivations.tex/.md), "
                        "zh (derivations.zh.tex/.md, Chinese) or all (default: all)")
    p.add_argument("--no-figure", dest="figure", action="store_false",
                   help="leave the gradient-flow figure out of the article "
                        "(no PNG/SVG; matplotlib not needed)")
    p.add_argument("--jobs", "-j", type=_jobs, default=None, metavar="N",
                   help="processes deriving at once: the kernels and the gradient-flow "
                        "experiment of the cells are shared out over N - 1 forked workers "
                        "and this process (default: the usable cores, at most "
                        f"{MAX_JOBS}; 1: everything in this process); the files are the "
                        "same for every N")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    return p


def _jobs(text):
    """``--jobs``'s value: a whole number >= 1."""
    try:
        n = int(text, 10)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"needs a whole number of processes >= 1, not {text!r}")
    return n


def _notation_names():
    from derive.printing.notation import MAPS
    return list(MAPS)


def select_cells(args):
    if args.cells is not None:
        names = [n.strip() for n in args.cells.split(",") if n.strip()]
        if not names:
            raise UsageError("--cells needs at least one cell name")
    else:
        names = [] if args.spec else registry.cells()
    cells = [registry.cell(n) for n in names]
    for path in args.spec:
        cells.append(load_spec(path))
    seen = set()
    for c in cells:
        if c.name in seen:
            raise UsageError(f"cell {c.name!r} is given twice")
        seen.add(c.name)
    return cells


def _validate(args):
    """Everything that can be said before deriving."""
    if args.notation is not None and args.notation not in _notation_names():
        raise UsageError(f"unknown notation {args.notation!r}; valid notations: "
                         + ", ".join(_notation_names()))
    if args.pdf and args.check:
        raise UsageError("--pdf writes derivations.pdf; it cannot be combined with --check")
    if args.out == "":
        raise UsageError("--out needs a directory name")
    check_out_dir(args.out)


def run(argv=None, prog="python -m derive") -> int:
    args = build_parser(prog).parse_args(argv)
    if args.list:
        for name in registry.cells():
            print(f"{name:22s} {registry.cell(name).title}")
        return 0
    _validate(args)
    if args.pdf:
        from derive.document.pdf import missing_engine
        missing = missing_engine(args.lang)
        if missing is not None:
            say_error(prog, f"--pdf needs {missing[0]}, which is not on PATH; {missing[1]}")
            return 3
    cells = select_cells(args)
    progress = Progress(quiet=args.quiet)
    real_stderr = sys.stderr
    sys.stderr = progress.stderr()
    try:
        args.progress = progress
        files = render_all(cells, args)
        if args.check:
            progress.clear()
            return _check(files, args, prog)
        progress(f"writing {Path(args.out)}/")
        changed = write_tree(files, args.out)
    finally:
        progress.clear()
        sys.stderr = real_stderr
    if changed:
        print(f"wrote {len(changed)} of {len(files)} files to {Path(args.out)}/")
    else:
        print(f"{Path(args.out)}/ is up to date: {len(files)} files")
    if args.pdf:
        from derive.document.pdf import PdfError, compile_all
        try:
            pdfs = compile_all(args.out, args.lang)
        except PdfError as exc:
            say_error(prog, exc)
            return 3
        for pdf in pdfs:
            print(f"wrote {pdf}")
    return 0


def _check(files, args, prog) -> int:
    missing, stale = check_tree(files, args.out)
    stray = stray_files(files, args.out)
    for rel in missing:
        print(f"missing: {Path(args.out) / rel}")
    for rel in stale:
        print(f"stale:   {Path(args.out) / rel}")
    for path in stray:
        print(f"stray:   {path}")
    if missing or stale:
        print(f"{len(missing) + len(stale)} of {len(files)} files need regenerating: "
              f"run {prog} --out {args.out}", file=sys.stderr)
    if stray:
        print(f"{len(stray)} stray file(s): not generated by this run (a run removes the "
              f"leftovers of interrupted runs; remove the others by hand)", file=sys.stderr)
    if missing or stale or stray:
        return 1
    print(f"{args.out}: all {len(files)} files up to date")
    return 0


def main(argv=None, prog=None) -> int:
    prog = prog or prog_name("derive", argv)
    return run_main(lambda: run(argv, prog), prog,
                    user_errors=(registry.UnknownCellError, SpecError, OutputError))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
