"""``python -m verify`` / ``rnn-verify``: the claims report.

    python -m verify                         # every claim, dev profile, random printed seed
    python -m verify --profile ci --seed 7   # reproducible run with 100 examples per property
    python -m verify --claims seed.eq2,rnn.norm_bound.chain --json
    python -m verify --list                  # the claim ids

Exit status: 0 when every toolkit claim is proved or checked (the seed's claims may be
refuted: that is the report), 1 when a toolkit claim is refuted, 2 for a usage error or an
unwritable stdout (one line ``<prog>: error: <message>`` on stderr, no traceback), 130 when
interrupted, 141 when stdout is a closed pipe (``| head``; silent). ``--claims`` runs each id
once, in the order given; ``--seed`` takes a non-negative integer.
"""
from __future__ import annotations

import json
import os
import random
import sys
import time

from derive.cliutil import Parser, UsageError, prog_name, run_main

__all__ = ["main"]


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"argument --seed: invalid int value: {text!r}") from None
    if value < 0:
        raise UsageError(f"argument --seed: must be a non-negative integer, got {value}")
    return value


def _parser(prog="python -m verify"):
    p = Parser(prog=prog, description="Verdicts on every claim of the seed note and the toolkit.")
    p.add_argument("--json", action="store_true", help="print a JSON list of claim objects")
    p.add_argument("--claims", help="comma-separated claim ids (default: all)")
    p.add_argument("--profile", default=None,
                   help="dev (20 examples), ci (100) or thorough (1000); default: "
                        "$HYPOTHESIS_PROFILE or dev")
    p.add_argument("--seed", type=_seed, default=None, help="Hypothesis seed (default: random, printed)")
    p.add_argument("--list", action="store_true", help="list the claim ids and exit")
    return p


def _line(c) -> str:
    n = f" ({c.examples} examples)" if c.verdict == "checked" else ""
    out = [f"[{c.verdict}{n}] {c.id}: {c.statement}", f"    evidence: {c.evidence}"]
    if c.counterexample:
        out.append(f"    counterexample: {c.counterexample}")
    if c.correction:
        out.append(f"    correction: {c.correction}")
    return "\n".join(out)


def main(argv=None, prog=None) -> int:
    prog = prog or prog_name("verify", argv)
    return run_main(lambda: _run(argv, prog), prog)


def _run(argv, prog) -> int:
    args = _parser(prog).parse_args(argv)
    from .claims import PROFILES, UnknownClaimError, claim_ids, run_claims
    profile = args.profile or os.environ.get("HYPOTHESIS_PROFILE", "dev")
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
    if args.list:
        print("\n".join(claim_ids()))
        return 0
    ids = None
    if args.claims is not None:
        ids = list(dict.fromkeys(i.strip() for i in args.claims.split(",") if i.strip()))
        if not ids:
            raise UsageError("--claims needs at least one claim id")
        known = set(claim_ids())
        bad = [i for i in ids if i not in known]
        if bad:
            raise UsageError(f"unknown claim id {bad[0]!r}; list them with --list")
    seed = args.seed if args.seed is not None else random.getrandbits(31)

    header = (f"{prog}: profile {profile} ({PROFILES[profile]} examples per property and cell), "
              f"seed {seed}; reproduce with --profile {profile} --seed {seed}")
    print(header, file=sys.stderr if args.json else sys.stdout, flush=True)
    t0 = time.perf_counter()
    try:
        claims = run_claims(ids, profile=profile, seed=seed,
                            progress=None if args.json else (lambda c: print(_line(c), flush=True)))
    except UnknownClaimError as exc:
        raise UsageError(exc) from None
    elapsed = time.perf_counter() - t0
    failed = [c for c in claims if c.source == "toolkit" and c.verdict == "refuted"]
    if args.json:
        json.dump([c.to_json() for c in claims], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        counts = {v: sum(c.verdict == v for c in claims) for v in ("proved", "checked", "refuted")}
        seed_ref = sum(c.verdict == "refuted" and c.source == "seed" for c in claims)
        print(f"\n{len(claims)} claims: {counts['proved']} proved, {counts['checked']} checked, "
              f"{counts['refuted']} refuted ({seed_ref} of them the seed's); "
              f"{len(failed)} toolkit claim(s) failed; {elapsed:.1f} s")
    if failed:
        print(f"{prog}: toolkit claim(s) refuted: {', '.join(c.id for c in failed)}", file=sys.stderr)
        return 1
    return 0
