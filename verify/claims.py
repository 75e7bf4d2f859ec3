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
from derive.seed import SEED_CLAIMS
from derive.textprint import text

from . import proofs
from . import properties as P
from . import strategies as vst

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
    from derive.primitives import Relu, Sigmoid, Tanh
    return f"gamma from derive.primitives: sigmoid {Sigmoid.gamma()}, tanh {Tanh.gamma()}, relu {Relu.gamma()}"


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
    from derive.primitives import Sigmoid
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


# ---------------------------------------------------------------------------------------
# seed claims: verdict from derive.seed, counterexamples computed here
# ---------------------------------------------------------------------------------------

def _kernel(name):
    return P.reference_kernels(name)


def _rng(ctx):
    return numpy.random.default_rng(ctx.seed)


def _random_case(name, ctx, H=3, D=2, B=1):
    k = _kernel(name)
    rng = _rng(ctx)
    p = k.init_params(D, H, rng=rng)
    p = {n: v * 4.0 for n, v in p.items()}          # beyond init scale, well inside float range
    x = rng.standard_normal((B, D))
    s = tuple(rng.standard_normal((B, H)) * 0.5 for _ in k.STATE)
    return k, p, x, s


def _cx_rnn_jacobian(ctx):
    from derive.numpy_primitives import sigmoid, sigmoid_prime
    k, p, x, s = _random_case("rnn_sigmoid", ctx)
    J = P._fd_step_jacobian(k, p, x, s)[0]
    a = (x @ p["W_xh"].T + s[0] @ p["W_hh"].T + p["b_h"])[0]
    h = sigmoid(a)
    readings = {
        "W_hh diag(sigma'(a_t)) (multiplied from the right)": p["W_hh"] * sigmoid_prime(a)[None, :],
        "diag(sigma(h_t)(1 - sigma(h_t))) W_hh (sigma' taken at h_t)":
            (sigmoid(h) * (1 - sigmoid(h)))[:, None] * p["W_hh"],
        "(1/4) W_hh (sigma' replaced by its bound)": 0.25 * p["W_hh"],
    }
    errs = {k_: float(numpy.max(numpy.abs(v - J))) for k_, v in readings.items()}
    derived = float(numpy.max(numpy.abs(_kernel("rnn_sigmoid").step_jacobian(p, x, s)[0] - J)))
    txt = "; ".join(f"{r}: off by {e:.3g}" for r, e in errs.items())
    return (f"rnn_sigmoid, H=3, D=2, seed {ctx.seed}: readings of sigma' W_hh against finite "
            f"differences: {txt}; the derived diag(sigma'(a_t)) W_hh: {derived:.1e}")


def _cx_cell_jacobian(ctx):
    k, p, x, s = _random_case("lstm_peephole", ctx)
    J = k.step_jacobian(p, x, s)[0]
    H = s[0].shape[1]
    ci = list(k.STATE).index("c")
    f = P.cell_values("lstm_peephole", p, x, s)["f"][0]
    block = J[ci * H:(ci + 1) * H, ci * H:(ci + 1) * H]
    fd = P._fd_step_jacobian(k, p, x, s)[0][ci * H:(ci + 1) * H, ci * H:(ci + 1) * H]
    off = float(numpy.max(numpy.abs(numpy.diag(f) - fd)))
    hc = J[ci * H:(ci + 1) * H, :ci * H] if ci else J[ci * H:, :H]
    return (f"lstm_peephole, H=3, D=2, seed {ctx.seed}: diag(f_t) differs from the finite-difference "
            f"dc_t/dc_(t-1) by {off:.3g} (derived block: {float(numpy.max(numpy.abs(block - fd))):.1e}); "
            f"the cross block dc_t/dh_(t-1) has max entry {float(numpy.max(numpy.abs(hc))):.3g}, so c_(t-1) "
            f"also reaches c_t through h_(t-1) across steps")


def _cx_vanishing(ctx):
    """H = 1, W_hh = 2/gamma, b_h = -W_hh/2, W_xh = 0, h_0 = 1/2: a_t = 0 at every step (a fixed
    point), so dh_t/dh_(t-1) = gamma * 2/gamma = 2 and dh_T/dh_0 = 2^T."""
    from derive.primitives import Sigmoid
    k = _kernel("rnn_sigmoid")
    w = float(2 / Sigmoid.gamma())
    p = {"W_xh": numpy.zeros((1, 1)), "W_hh": numpy.array([[w]]), "b_h": numpy.array([-w / 2])}
    s = (numpy.array([[0.5]]),)
    T, prod = 10, 1.0
    for _ in range(T):
        prod *= float(k.step_jacobian(p, numpy.zeros((1, 1)), s)[0, 0, 0])
        s = tuple(k.step(p, numpy.zeros((1, 1)), s))
    return (f"rnn_sigmoid, H=1, W_hh={w:g} (= 2/gamma), b_h={-w / 2:g}, W_xh=0, h_0=0.5: a_t = 0 at "
            f"every step, dh_t/dh_(t-1) = 2 and dh_{T}/dh_0 = {prod:g} (grows, although sigma' <= 1/4)")


def _cx_total_loss(ctx):
    k, p, x, s = _random_case("rnn_sigmoid", ctx)
    xs = numpy.stack([x, x * 0.5])
    dhs_all = _rng(ctx).standard_normal((2, 1, 3))
    dhs_one = dhs_all.copy()
    dhs_one[1] = 0
    _, cache = k.forward(p, xs, s)
    g_all, _ = k.backward(p, cache, dhs_all)
    g_one, _ = k.backward(p, cache, dhs_one)
    d = float(numpy.max(numpy.abs(g_all["W_hh"] - g_one["W_hh"])))
    return (f"rnn_sigmoid, T=2, H=3, seed {ctx.seed}: dL_1/dW_hh and dL/dW_hh = d(L_1 + L_2)/dW_hh "
            f"differ by {d:.3g} (max entry), so a single L_t cannot equal the sum over t")


def _cx_product_order(ctx):
    k, p, x, s = _random_case("rnn_sigmoid", ctx)
    J1 = k.step_jacobian(p, x, s)[0]
    s1 = tuple(k.step(p, x, s))
    J2 = k.step_jacobian(p, x * 0.5, s1)[0]
    d = float(numpy.max(numpy.abs(J2 @ J1 - J1 @ J2)))

    def two_steps(h0):
        return k.step(p, x * 0.5, tuple(k.step(p, x, (h0,))))[0]
    fd = numpy.zeros((3, 3))
    for j in range(3):
        e = numpy.zeros((1, 3))
        e[0, j] = 1e-6
        fd[:, j] = ((two_steps(s[0] + e) - two_steps(s[0] - e)) / 2e-6)[0]
    return (f"rnn_sigmoid, T=2, H=3, seed {ctx.seed}: J_2 J_1 and J_1 J_2 differ by {d:.3g}; "
            f"finite differences of dh_2/dh_0 match J_2 J_1 to "
            f"{float(numpy.max(numpy.abs(J2 @ J1 - fd))):.1e} and J_1 J_2 only to "
            f"{float(numpy.max(numpy.abs(J1 @ J2 - fd))):.3g}")


def _cx_immediate_partial(ctx):
    k, p, x, s = _random_case("rnn_sigmoid", ctx)
    _, cache = k.forward(p, x[None], s)
    g, _ = k.backward(p, cache, numpy.ones((1, 1, 3)))
    return (f"each summand dL_t/dy_t dy_t/dh_t prod(...) is a 1 x H row (here 1 x 3) while "
            f"dL/dW_hh is H x H (the kernel's gradient has shape {g['W_hh'].shape})")


def _cx_sigmoid_range(ctx):
    import mpmath
    vals = []
    for x in (0, 40, 745, 10 ** 6):
        enc = P.sigmoid_prime_exact(x)
        vals.append(f"sigma'({x:g}) >= {mpmath.nstr(mpmath.mpf(enc.a), 4)}")
    return ("0 is never attained: sigma'(x) = e/(1+e)^2 with e = exp(-|x|) > 0; rigorous interval "
            "lower bounds: " + "; ".join(vals))


def _cx_eq2(ctx):
    from derive.seed import seed_rnn_error
    return f"the seed's eq. (2) parsed as written: {seed_rnn_error()}"


def _cx_activation(ctx):
    from derive.primitives import Sigmoid, Tanh
    return (f"gamma(sigmoid) = {Sigmoid.gamma()}, gamma(tanh) = {Tanh.gamma()}: with ||W_hh||_2 = 2 "
            f"the sigmoid bound gamma ||W_hh|| = {Sigmoid.gamma() * 2} < 1 (vanishing guaranteed) but "
            f"the tanh one is {Tanh.gamma() * 2} (not); PyTorch's nn.RNN default nonlinearity is "
            f"{(derive.cell('rnn_tanh').torch or {}).get('nonlinearity')!r}")


def _cx_index_range(ctx):
    return ("with h_0 given, the k = 0 term needs d+h_0/dW_hh, which would require an h_(-1); "
            "h_0 does not depend on W_hh, so the sums run over 1 <= k <= t <= T")


def _cx_typo(ctx):
    try:
        derive.cell("lstm_peephole").symbol("h_t_1")
    except Exception as exc:  # noqa: BLE001
        return f"{exc}"
    return "h_t_1 exists"


_SEED_COUNTEREXAMPLES = {
    "seed.eq2": _cx_eq2,
    "seed.activation": _cx_activation,
    "seed.bptt": _cx_immediate_partial,
    "seed.bptt.total_loss": _cx_total_loss,
    "seed.bptt.immediate_partial": _cx_immediate_partial,
    "seed.bptt.product_order": _cx_product_order,
    "seed.bptt.index_range": _cx_index_range,
    "seed.rnn_jacobian": _cx_rnn_jacobian,
    "seed.sigmoid_range": _cx_sigmoid_range,
    "seed.vanishing": _cx_vanishing,
    "seed.lstm_cell_jacobian": _cx_cell_jacobian,
    "seed.typo": _cx_typo,
}


def _correction_text(sc):
    v = sc.corrected()
    if v is None:
        return None
    exprs = v if isinstance(v, tuple) else (v,)
    body = " ; ".join(_plain(e) for e in exprs)
    lhs = sc.corrected_lhs_text
    where = f" [{sc.cell}]" if sc.cell else ""
    if lhs and sc.id == "seed.vanishing":
        return f"{lhs} {body}{where}"
    return f"{lhs} = {body}{where}" if lhs else f"{body}{where}"


def _plain(e):
    """Unicode text of a derived expression (matrices via derive.textprint; intervals as (a, b])."""
    import sympy
    if isinstance(e, sympy.Interval):
        return (f"{'(' if e.left_open else '['}{e.start}, {e.end}{')' if e.right_open else ']'}")
    return text(e) if hasattr(e, "shape") else str(e)


def _seed_spec(sc):
    def run(ctx):
        how = ("verdict computed by derive.seed from the derivations" if sc.holds_from == "derived"
               else "verdict stated in derive.seed; the counterexample is computed")
        if sc.holds:
            return dict(verdict="proved" if sc.holds_from == "derived" else "checked",
                        evidence=f"{sc.explanation} ({how})")
        cx = _SEED_COUNTEREXAMPLES.get(sc.id)
        return dict(verdict="refuted", evidence=f"{sc.explanation} ({how})",
                    counterexample=cx(ctx) if cx else None, correction=_correction_text(sc))
    return ClaimSpec(sc.id, sc.statement, "seed", run)


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
