"""Every statement of the seed note and of the toolkit as a claim with a stable id and a verdict.

Verdicts:

* ``proved``: established symbolically (SymPy identities, the derivation engine comparing the
  seed's parsed formula with the derived result, or :mod:`verify.proofs`);
* ``checked``: no failure on ``examples`` Hypothesis-generated cases (the property functions of
  :mod:`verify.properties`), under the active profile and a printed seed;
* ``refuted``: false, with a counterexample and the correction (derived).

Toolkit claims must be ``proved`` or ``checked``: ``python -m verify`` exits 1 otherwise. The
seed's wrong statements are expected to be ``refuted``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy
from hypothesis import HealthCheck, Verbosity, given, reject, settings
from hypothesis.errors import Unsatisfiable
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

import derive
from derive.seed.claims import SEED_CLAIMS

from . import matrix_claims, modern_claims, proofs
from . import properties as P
from . import strategies as vst
from .seed_claims import seed_run

__all__ = ["Claim", "ClaimSpec", "claim_ids", "run_claims", "UnknownClaimError", "PROFILES"]

#: Examples per property and cell for each profile (the same numbers as tests/conftest.py).
PROFILES = {"dev": 20, "ci": 100, "thorough": 1000}


class UnknownClaimError(KeyError, ValueError):
    def __str__(self):
        return self.args[0]


@dataclass
class Claim:
    """One claim's outcome; ``asdict`` gives the JSON object of ``python -m verify --json``."""
    id: str
    statement: str
    source: str                 # "toolkit" or "seed"
    verdict: str                # "proved", "checked" or "refuted"
    evidence: str
    examples: int = 0
    counterexample: str | None = None
    correction: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ClaimSpec:
    id: str
    statement: str
    source: str
    run: object                 # callable(ctx) -> Claim fields (dict)


@dataclass
class Context:
    max_examples: int
    seed: int
    profile: str
    cells: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# running a property under Hypothesis
# ---------------------------------------------------------------------------------------

def _run(fn, strategy, ctx, *, label=""):
    """(examples run, None) or (examples run, (message, minimal case)) for property fn."""
    count = [0]
    last = [None]

    @hypothesis_seed(ctx.seed)
    @settings(max_examples=ctx.max_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
              print_blob=False, verbosity=Verbosity.quiet)
    @given(strategy)
    def test(case):
        last[0] = case
        try:
            fn(case)
        except P.NotApplicable:
            reject()
        count[0] += 1

    try:
        test()
    except P.PropertyFailure as exc:
        return count[0], (str(exc), _describe(last[0]))
    except Unsatisfiable:
        pass
    return count[0], None


def _describe(case):
    if isinstance(case, (vst.StepCase, vst.SequenceCase)):
        d = case.dims
        arrays = {"params": {k: v.tolist() for k, v in case.params.items()}}
        if isinstance(case, vst.StepCase):
            arrays.update(x=case.x.tolist(), state=[s.tolist() for s in case.state])
        else:
            arrays.update(xs=case.xs.tolist(), state0=[s.tolist() for s in case.state0])
        return f"cell {case.cell}, B={d.batch}, D={d.input_size}, H={d.hidden_size}, T={d.steps}: {arrays}"
    return repr(case)


def _property_claim(prop, cells, strategy_for, what):
    """A claim run by ``prop`` on every cell in ``cells(ctx)`` with ``strategy_for(cell)``."""
    def run(ctx):
        total, used = 0, []
        for c in cells(ctx):
            n, fail = _run(prop, strategy_for(c), ctx)
            if fail:
                return dict(verdict="refuted", examples=total + n, counterexample=fail[1],
                            evidence=f"{what} failed on cell {c}: {fail[0]}")
            if n:
                used.append(c)
            total += n
        if not used:
            return dict(verdict="refuted", examples=0, evidence="no applicable cell")
        return dict(verdict="checked", examples=total,
                    evidence=f"{what}: {total} Hypothesis examples over {len(used)} cell(s) "
                             f"({', '.join(used)}), no failure")
    return run


def _scalar_claim(prop, strategy, what, proof=None):
    def run(ctx):
        n, fail = _run(prop, strategy, ctx)
        if fail:
            return dict(verdict="refuted", examples=n, counterexample=fail[1],
                        evidence=f"{what} failed: {fail[0]}")
        if proof is not None:
            ok, how = proof()
            if ok:
                return dict(verdict="proved", examples=n,
                            evidence=f"{how}; also {what} on {n} Hypothesis examples")
        return dict(verdict="checked", examples=n, evidence=f"{what} on {n} Hypothesis examples")
    return run


# ---------------------------------------------------------------------------------------
# symbolic proofs (verify.proofs)
# ---------------------------------------------------------------------------------------

def _use_proof(prove_fn):
    """``() -> (ok, how)`` from a :mod:`verify.proofs` function returning a ``Proof``."""
    def prove():
        try:
            res = prove_fn()
        except Exception as exc:  # noqa: BLE001 - a proof that errors is no proof
            return False, f"verify.proofs.{prove_fn.__name__} raised {type(exc).__name__}: {exc}"
        return bool(res.holds), f"verify.proofs.{prove_fn.__name__}: {res.statement or 'proved'}"
    return prove


def _gamma_text():
    from derive.core.primitives import Relu, Sigmoid, Tanh
    return f"gamma from derive.core.primitives: sigmoid {Sigmoid.gamma()}, tanh {Tanh.gamma()}, relu {Relu.gamma()}"


# ---------------------------------------------------------------------------------------
# strategies per claim
# ---------------------------------------------------------------------------------------

def _reals():
    """Reals of any magnitude: integers, fractions and finite floats (down to 5e-324)."""
    return st.one_of(st.integers(), st.fractions(), st.floats(allow_nan=False, allow_infinity=False),
                     st.just(0), st.floats(-1e-6, 1e-6))


def _floats(dtype):
    width = 32 if dtype == numpy.float32 else 64
    return st.floats(allow_nan=False, allow_infinity=False, width=width).map(numpy.dtype(dtype).type)


def _both_dtypes(prop):
    """Run a float-kernel property at x in float64 and, when x fits, in float32."""
    top = float(numpy.finfo(numpy.float32).max)

    def run(x):
        prop(x, numpy.float64)
        if abs(float(x)) <= top:
            prop(numpy.float32(x), numpy.float32)
    return run


def _all_cells(ctx):
    return ctx.cells


def _rnn_cells(ctx):
    return [c for c in ctx.cells if P.recurrence_structure(c) is not None]


def _direct_path_cells(ctx):
    return [c for c in ctx.cells if P.direct_path_gate(c) is not None]


def _gate_cells(ctx):
    from derive.core.primitives import Sigmoid
    return [c for c in ctx.cells if any(isinstance(eq.rhs, Sigmoid) for eq in derive.cell(c).equations)]


def _step(c):
    return vst.step_cases(c, hidden=st.integers(1, 3), batch=st.integers(1, 2), input_size=st.integers(1, 3))


def _seq(c):
    return vst.sequence_cases(c, hidden=st.integers(1, 3), batch=st.integers(1, 2),
                              input_size=st.integers(1, 2), steps=st.integers(1, 3))


def _norm_step(c):
    return vst.step_cases(c, hidden=st.integers(1, 4), batch=st.integers(1, 3), scale=2.0,
                          recurrent_norm=st.floats(0.0, 10.0))


def _norm_seq(c):
    return vst.sequence_cases(c, hidden=st.integers(1, 4), batch=st.integers(1, 2), scale=2.0,
                              steps=st.integers(1, 6), recurrent_norm=st.floats(0.0, 10.0))


# ---------------------------------------------------------------------------------------
# toolkit claims
# ---------------------------------------------------------------------------------------

def _toolkit_claims(cells):
    specs = [
        ClaimSpec("sigmoid.derivative.identity", "sigma'(x) = sigma(x) (1 - sigma(x)) for every real x.",
                  "toolkit", _scalar_claim(P.sigmoid_prime_exact, _reals(), "exact interval check",
                                           _use_proof(proofs.sigmoid_derivative))),
        ClaimSpec("sigmoid.derivative.bound",
                  "0 < sigma'(x) <= 1/4 for every real x, with equality only at x = 0.",
                  "toolkit", _scalar_claim(P.sigmoid_prime_exact, _reals(),
                                           "exact interval check (mpmath.iv) at reals of any magnitude",
                                           _use_proof(proofs.sigmoid_prime_bounds))),
        ClaimSpec("sigmoid.derivative.float",
                  "The float kernel numpy_primitives.sigmoid_prime is in (0, 1/4 + 1 ulp], within 4 ulp "
                  "of sigma'(x) for |x| <= 700 (float64) / 80 (float32), constant and positive beyond, "
                  "with no floating-point warnings.",
                  "toolkit", _scalar_claim(_both_dtypes(P.sigmoid_prime_float), _floats(numpy.float64),
                                           "float64 and float32 kernel check")),
        ClaimSpec("sigmoid.float",
                  "The float kernel numpy_primitives.sigmoid is in (0, 1], equal to 1 only where the "
                  "exact value rounds to 1, within 4 ulp for |x| <= 700 / 80.",
                  "toolkit", _scalar_claim(_both_dtypes(P.sigmoid_float), _floats(numpy.float64),
                                           "float64 and float32 kernel check")),
        ClaimSpec("tanh.derivative.bound", "0 < tanh'(x) <= 1 for every real x, with equality only at x = 0.",
                  "toolkit", _scalar_claim(P.tanh_prime_exact, _reals(),
                                           "exact interval check (mpmath.iv) at reals of any magnitude",
                                           _use_proof(proofs.tanh_prime_bounds))),
        ClaimSpec("tanh.derivative.float",
                  "The float kernel numpy_primitives.tanh_prime is in (0, 1 + 1 ulp], within 4 ulp of "
                  "tanh'(x) for |x| <= 350 / 40, constant and positive beyond.",
                  "toolkit", _scalar_claim(_both_dtypes(P.tanh_prime_float), _floats(numpy.float64),
                                           "float64 and float32 kernel check")),
        ClaimSpec("gates.range", "Every gate (every sigmoid equation of every cell) lies in (0, 1).",
                  "toolkit", _property_claim(P.gates_in_unit_interval, _gate_cells, _step,
                                             "gates in (0, 1)")),
        ClaimSpec("rnn.step_jacobian",
                  "For the Elman cells, dh_t/dh_{t-1} = diag(phi'(a_t)) W_hh (derived) equals the "
                  "Jacobian of the step (central finite differences).",
                  "toolkit", _with_explicit(_property_claim(P.step_jacobian_matches_fd, _rnn_cells, _step,
                                                            "derived step Jacobian vs finite differences"),
                                            _rnn_cells, lambda c: [("h", "h")])),
        ClaimSpec("rnn.norm_bound.step",
                  "||dh_t/dh_{t-1}||_2 <= gamma ||W_hh||_2, gamma = sup phi' (1/4 sigmoid, 1 tanh, 1 relu).",
                  "toolkit", _with_proof(_property_claim(P.step_jacobian_norm_bound, _rnn_cells, _norm_step,
                                                         "step norm bound"),
                                         proofs.norm_bound)),
        ClaimSpec("rnn.norm_bound.chain",
                  "||dh_t/dh_k||_2 <= (gamma ||W_hh||_2)^(t-k) for all k < t along any sequence.",
                  "toolkit", _with_proof(_property_claim(P.jacobian_chain_bound, _rnn_cells, _norm_seq,
                                                         "chain norm bound"),
                                         proofs.chain_bound)),
        ClaimSpec("lstm.cell.direct_path",
                  "LSTM without peepholes, gates held fixed: dc_t/dc_k = diag(prod_{j=k+1}^t f_j) "
                  "(the one-step block dc_t/dc_{t-1} is diag(f_t)).",
                  "toolkit", _with_proof(_with_explicit(_property_claim(P.lstm_direct_path,
                                                                        _direct_path_cells, _seq,
                                                                        "direct path"),
                                                        _direct_path_cells, lambda c: [("c", "c")]),
                                         proofs.lstm_direct_path)),
    ]
    specs += modern_claims.claim_specs(ClaimSpec, _run)
    specs += matrix_claims.claim_specs(ClaimSpec, _run)
    for c in cells:
        specs.append(ClaimSpec(f"cell.{c}.forward",
                               f"{c}: the kernel's step equals the cell's defining equations.",
                               "toolkit", _property_claim(P.forward_matches_equations, lambda ctx, c=c: [c],
                                                          _step, "kernel step vs equations")))
        specs.append(ClaimSpec(f"cell.{c}.step_jacobian",
                               f"{c}: every derived block ds_t/ds'_(t-1) equals finite differences.",
                               "toolkit", _property_claim(P.step_jacobian_matches_fd, lambda ctx, c=c: [c],
                                                          _step, "step Jacobian vs finite differences")))
        specs.append(ClaimSpec(f"cell.{c}.backward",
                               f"{c}: the derived BPTT gradients (every parameter, initial state) equal "
                               f"finite differences.",
                               "toolkit", _property_claim(P.backward_matches_fd, lambda ctx, c=c: [c],
                                                          _seq, "BPTT vs finite differences")))
    return specs


def _with_explicit(run_checked, cells, blocks):
    """Add to a checked claim the symbolic comparison, at H = D = 2, of the derived blocks with
    SymPy's Matrix.jacobian of the explicitly expanded cell (verify.explicit)."""
    def run(ctx):
        out = run_checked(ctx)
        if out["verdict"] != "checked":
            return out
        from .explicit import entries_equal, expand
        done = []
        for c in cells(ctx):
            ex = expand(c, 2)
            for of, wrt in blocks(c):
                bad = entries_equal(ex.derived_jacobian(of, wrt), ex.oracle_jacobian(of, wrt))
                if bad:
                    i, j, a, b = bad[0]
                    return dict(out, verdict="refuted", counterexample=f"{c}: d{of}/d{wrt}[{i},{j}]: "
                                f"derived {a} vs SymPy {b}",
                                evidence=f"explicit H = D = 2 expansion of {c} disagrees")
            done.append(c)
        out = dict(out, evidence=f"{out['evidence']}; symbolically equal to SymPy's Matrix.jacobian "
                                 f"of the explicit H = D = 2 expansion for {', '.join(done)}")
        return out
    return run


def _with_proof(run_checked, prove_fn):
    """A checked property claim upgraded to ``proved`` when verify.proofs proves it."""
    def run(ctx):
        out = run_checked(ctx)
        if out["verdict"] != "checked":
            return out
        ok, how = _use_proof(prove_fn)()
        if ok:
            out = dict(out, verdict="proved", evidence=f"{how}; also {out['evidence']}")
        return out
    return run


def _seed_spec(sc):
    return ClaimSpec(sc.id, sc.statement, "seed", seed_run(sc))


# ---------------------------------------------------------------------------------------
# the registry
# ---------------------------------------------------------------------------------------

def all_specs(cells=None) -> list:
    cells = derive.cells() if cells is None else list(cells)
    return [_seed_spec(sc) for sc in SEED_CLAIMS] + _toolkit_claims(cells)


def claim_ids() -> list:
    """Every claim id, seed claims first, in a stable order."""
    return [s.id for s in all_specs()]


def run_claims(ids=None, *, profile="dev", seed=0, max_examples=None, progress=None) -> list:
    """Run the claims (all, or the given ids) and return :class:`Claim` objects in order.
    Unknown ids raise :class:`UnknownClaimError` naming the first one."""
    specs = all_specs()
    by_id = {s.id: s for s in specs}
    if ids is not None:
        for i in ids:
            if i not in by_id:
                raise UnknownClaimError(f"unknown claim id {i!r}; see python -m verify --list")
        specs = [by_id[i] for i in ids]
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
    ctx = Context(max_examples if max_examples is not None else PROFILES[profile], int(seed), profile,
                  derive.cells())
    out = []
    for s in specs:
        t0 = time.perf_counter()
        fields = s.run(ctx)
        c = Claim(s.id, s.statement, s.source, fields["verdict"], fields["evidence"],
                  fields.get("examples", 0), fields.get("counterexample"), fields.get("correction"),
                  round(time.perf_counter() - t0, 3))
        out.append(c)
        if progress:
            progress(c)
    return out
