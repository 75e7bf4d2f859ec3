"""The seed note's claims in the report of ``python -m verify``: how each verdict was reached,
the counterexamples (computed here, from the kernels and finite differences) and the corrections
(derived, printed as text).

Where a verdict comes from (:func:`verdict_basis`):

* ``derived``: ``derive.seed`` decides it by comparing the seed's formula with a derived result;
* ``stated``: the verdict is written down in ``derive.seed``, not derived
  (``holds_from == "stated"``, with ``stated_because`` saying why no derivation decides it:
  a typo, a statement about shapes); the report says so, and the counterexample is computed.
"""
from __future__ import annotations

import numpy
import sympy

import derive
from derive.printing.text import text

from . import properties as P
from .oracles import fd_jacobian

__all__ = ["verdict_basis", "seed_run"]

def verdict_basis(sc) -> str:
    """``"derived"`` when derive.seed computes the verdict from a derivation, else ``"stated"``."""
    return sc.holds_from

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
    from derive.codegen.np_primitives import sigmoid, sigmoid_prime
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
    from derive.core.primitives import Sigmoid
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
    fd = fd_jacobian(two_steps, s[0])
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
    from derive.seed.claims import seed_rnn_error
    return f"the seed's eq. (2) parsed as written: {seed_rnn_error()}"


def _cx_activation(ctx):
    from derive.core.primitives import Sigmoid, Tanh
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
    """Unicode text of a derived expression (matrices via derive.printing.text; intervals as (a, b])."""
    if isinstance(e, sympy.Interval):
        return (f"{'(' if e.left_open else '['}{e.start}, {e.end}{')' if e.right_open else ']'}")
    return text(e) if hasattr(e, "shape") else str(e)


def seed_run(sc):
    """The claim runner of one ``derive.seed`` claim: ``ctx -> Claim fields``. A derived true
    verdict is ``proved``, a stated one ``checked``; a false one is ``refuted`` with the
    computed counterexample and the derived correction."""
    def run(ctx):
        basis = verdict_basis(sc)
        if basis == "derived":
            how = "verdict computed by derive.seed from the derivations"
        elif sc.stated_because:
            how = f"verdict stated, not derived: {sc.stated_because}; the counterexample is computed"
        else:
            how = "verdict stated in derive.seed; the counterexample is computed"
        if sc.holds:
            return dict(verdict="proved" if basis == "derived" else "checked",
                        evidence=f"{sc.explanation} ({how})")
        cx = _SEED_COUNTEREXAMPLES.get(sc.id)
        return dict(verdict="refuted", evidence=f"{sc.explanation} ({how})",
                    counterexample=cx(ctx) if cx else None, correction=_correction_text(sc))
    return run
