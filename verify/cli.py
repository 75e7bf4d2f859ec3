"""``python -m verify`` / ``rnn-verify``: the claims report.

    python -m verify                         # every claim, dev profile, random printed seed
    python -m verify --profile ci --seed 7   # reproducible run with 100 examples per property
    python -m verify --claims seed.eq2,rnn.norm_bound.chain --json
    python -m verify --list                  # the claim ids

Exit status: 0 when every toolkit claim is proved or checked (the seed's claims may be
refuted: that is the report), 1 when a toolkit claim is refuted, 2 for a usage error (one
line on stderr, no traceback).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _parser():
    p = _Parser(prog="rnn-verify", description="Verdicts on every claim of the seed note and the toolkit.")
    p.add_argument("--json", action="store_true", help="print a JSON list of claim objects")
    p.add_argument("--claims", help="comma-separated claim ids (default: all)")
    p.add_argument("--profile", default=None,
                   help="dev (20 examples), ci (100) or thorough (1000); default: "
                        "$HYPOTHESIS_PROFILE or dev")
    p.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: random, printed)")
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


def main(argv=None) -> int:
    try:
        args = _parser().parse_args(argv)
        from .claims import PROFILES, UnknownClaimError, claim_ids, run_claims
        profile = args.profile or os.environ.get("HYPOTHESIS_PROFILE", "dev")
        if profile not in PROFILES:
            raise _UsageError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
        if args.list:
            print("\n".join(claim_ids()))
            return 0
        ids = None
        if args.claims is not None:
            ids = [i.strip() for i in args.claims.split(",") if i.strip()]
            if not ids:
                raise _UsageError("--claims needs at least one claim id")
            known = set(claim_ids())
            bad = [i for i in ids if i not in known]
            if bad:
                raise _UsageError(f"unknown claim id {bad[0]!r}; list them with --list")
        seed = args.seed if args.seed is not None else random.getrandbits(31)
    except _UsageError as exc:
        print(f"rnn-verify: error: {exc}", file=sys.stderr)
        return 2

    header = (f"rnn-verify: profile {profile} ({PROFILES[profile]} examples per property and cell), "
              f"seed {seed}; reproduce with --profile {profile} --seed {seed}")
    print(header, file=sys.stderr if args.json else sys.stdout, flush=True)
    t0 = time.perf_counter()
    try:
        claims = run_claims(ids, profile=profile, seed=seed,
                            progress=None if args.json else (lambda c: print(_line(c), flush=True)))
    except UnknownClaimError as exc:
        print(f"rnn-verify: error: {exc}", file=sys.stderr)
        return 2
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
        print(f"rnn-verify: toolkit claim(s) refuted: {', '.join(c.id for c in failed)}", file=sys.stderr)
        return 1
    return 0
