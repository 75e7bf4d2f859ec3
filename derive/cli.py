"""``python -m derive``: derive every cell and write (or check) the generated files.

Exit status: 0 success; 1 ``--check`` found stale or missing files; 2 a user error (unknown
cell, bad spec, unknown notation, unwritable output), reported in one line without a
traceback; 3 ``--pdf`` was asked for and no TeX engine is installed or the compile failed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import registry
from .exporters import render_all
from .output import OutputError, check_tree, write_tree
from .spec import SpecError, load_spec


class UsageError(Exception):
    pass


def build_parser():
    p = argparse.ArgumentParser(prog="python -m derive", description=__doc__.split("\n\n")[0])
    p.add_argument("--list", action="store_true", help="list the built-in cells and exit")
    p.add_argument("--cells", help="comma-separated cell names (default: all built-in cells)")
    p.add_argument("--spec", action="append", default=[], metavar="FILE",
                   help="also derive a user-defined cell from a TOML spec (repeatable)")
    p.add_argument("--out", default="out", help="output directory (default: out/)")
    p.add_argument("--check", action="store_true",
                   help="compare what would be written with --out; list stale or missing files; "
                        "exit 1 if any; write nothing")
    p.add_argument("--notation", default=None, metavar="NAME",
                   help="symbol names in the LaTeX and Markdown output: "
                        + ", ".join(_notation_names()) + " (default: seed)")
    p.add_argument("--pdf", action="store_true",
                   help="also compile derivations.tex to derivations.pdf in --out (needs pdflatex)")
    return p


def _notation_names():
    from .notation import MAPS
    return list(MAPS)


def select_cells(args):
    if args.cells:
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


def run(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        for name in registry.cells():
            print(f"{name:22s} {registry.cell(name).title}")
        return 0
    if args.notation is not None and args.notation not in _notation_names():
        raise UsageError(f"unknown notation {args.notation!r}; valid notations: "
                         + ", ".join(_notation_names()))
    if args.pdf and args.check:
        raise UsageError("--pdf writes derivations.pdf; it cannot be combined with --check")
    cells = select_cells(args)
    files = render_all(cells, args)
    if args.check:
        missing, stale = check_tree(files, args.out)
        for rel in missing:
            print(f"missing: {Path(args.out) / rel}")
        for rel in stale:
            print(f"stale:   {Path(args.out) / rel}")
        if missing or stale:
            print(f"{len(missing) + len(stale)} of {len(files)} files need regenerating: "
                  f"run python -m derive --out {args.out}", file=sys.stderr)
            return 1
        print(f"{args.out}: all {len(files)} files up to date")
        return 0
    changed = write_tree(files, args.out)
    print(f"wrote {len(changed)} of {len(files)} files to {args.out}/")
    if args.pdf:
        from .export_latex import PdfError, compile_pdf
        try:
            pdf = compile_pdf(args.out)
        except PdfError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        print(f"wrote {pdf}")
    return 0


def main(argv=None) -> int:
    try:
        return run(argv)
    except (registry.UnknownCellError, SpecError, OutputError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # pragma: no cover
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
