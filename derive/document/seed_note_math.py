"""Every formula of the corrected seed note, printed by the engine from derived results.

:func:`inline` gives ``{key: LaTeX}`` for the ``{key}`` slots of the prose
(:mod:`derive.seed.note_zh`), :func:`displays` ``{key: LaTeX}`` for its displays (bodies of
``$$ ... $$``). Right sides are derived expressions of the built-in cells (``rnn_sigmoid``,
``rnn_tanh``, ``lstm_peephole``) or of :data:`derive.seed.claims.SEED_CLAIMS`, printed by
:func:`derive.printing.latex.expr_latex` in the seed's notation; only scaffolding (``\\frac{
\\partial L}{\\partial W}``, ``\\sum_{t=1}^{T}``, ``J_t \\cdots J_{k+1}``) is written here.
:func:`corrections` gives each refuted claim's derived correction as ``lhs = rhs`` rows.
"""
from __future__ import annotations

from functools import lru_cache

import sympy

from derive.core.algebra import add, diag, hadamard, ones, scale
from derive.core.primitives import Sigmoid, SigmoidPrime, Tanh, TanhPrime
from derive.core.symbols import LossGradient
from derive.printing.latex import Eq, aligned_env, expr_latex
from derive.seed.claims import expand, seed_claim
from derive.spec.registry import cell

_t = sympy.Symbol("t", integer=True)
_j = sympy.Symbol("j", integer=True)
_k = sympy.Symbol("k", integer=True)
_T = sympy.Symbol("T", integer=True)
#: lambda_1 = ||W_hh||_2, the symbol of the seed claims' vanishing condition; the note prints
#: it as the spectral norm (:func:`norm_tex`: one quantity, one name, as in the article).
LAMBDA = sympy.Symbol("lambda_1", positive=True)
#: Forget-gate biases of the table in the summary, and its horizon in steps.
BIASES = (0, 1, 2, 3)
HORIZON = 40


@lru_cache(maxsize=None)
def _corrected(claim_id):
    """``seed_claim(claim_id).corrected()``, computed once (some take SymPy limits)."""
    return seed_claim(claim_id).corrected()


def _p(expr, c=None, time=_t, breaks=False):
    return expr_latex(expr, cell=c, time=time, breaks=breaks)


def _cells():
    return cell("rnn_sigmoid"), cell("rnn_tanh"), cell("lstm_peephole")


def vector_form(scalar, y, vec):
    """The elementwise vector expression of the scalar polynomial ``scalar`` in ``y``
    (a ``from_output`` form such as ``y (1 - y)``) with ``vec`` for ``y``."""
    if scalar == y:
        return vec
    if scalar.is_Integer or scalar.is_Rational:
        return scale(scalar, ones(vec.shape))
    if isinstance(scalar, sympy.Add):
        return add([vector_form(a, y, vec) for a in sympy.Add.make_args(scalar)], vec.shape)
    if isinstance(scalar, sympy.Mul):
        coeff, rest = scalar.as_coeff_mul()
        if coeff != 1:
            return scale(coeff, vector_form(sympy.Mul(*rest), y, vec))
        return hadamard([vector_form(f, y, vec) for f in rest])
    raise ValueError(f"vector_form: {scalar} is not a polynomial in {y}")


def _from_output(prim, vec):
    y = sympy.Symbol("y")
    return vector_form(prim.from_output(y), y, vec)


@lru_cache(maxsize=None)
def norm_tex() -> str:
    """The spectral norm of the seed's recurrent matrix, ``\\lVert W_{hh} \\rVert_2``."""
    rs = cell("rnn_sigmoid")
    return r"\lVert %s \rVert_2" % _p(rs.symbol("W_hh"), rs)


def _norm(rel) -> str:
    """A condition on :data:`LAMBDA` printed with the spectral norm for the symbol."""
    return sympy.latex(rel, symbol_names={LAMBDA: norm_tex()})


def _frac(s, w):
    return r"\frac{\partial %s}{\partial %s}" % (s, w)


@lru_cache(maxsize=None)
def inline() -> dict:
    """The inline formulas of the prose and the footnotes, by key."""
    rs, rt, L = _cells()
    P = lambda e, time=_t: _p(e, rs, time)             # noqa: E731
    Q = lambda e, time=_t: _p(e, L, time)               # noqa: E731
    h, a, x, W = rs.symbol("h"), rs.symbol("a"), rs.symbol("x"), rs.symbol("W_hh")
    gs, gt = Sigmoid.gamma(), Tanh.gamma()
    sp = SigmoidPrime(a)
    m = {
        "a_t": P(a), "h_t": P(h), "y_t": P(rs.symbol("y")), "x_t": P(x), "x_1": P(x, 1),
        "h_prev": P(rs.prev["h"]), "h_0": P(h, 0), "h_m1": P(rs.prev["h"], 0),
        "h_prev_k": P(rs.prev["h"], _k), "W_hh": P(W), "W_xh": P(rs.symbol("W_xh")),
        "sigma_a": P(Sigmoid(a)), "sp_a": P(sp), "tp_a": P(TanhPrime(rt.symbol("a"))),
        "seq": r"x = (%s, \ldots, %s)" % (P(x, 1), P(x, _T)),
        "Delta_h": P(rs.backward().incoming["h"]),
        "J_range": r"J_t J_{t-1} \cdots J_{k+1}", "partial_plus": r"\partial^{+}",
        "outer_t": P(rs.backward().params["W_hh"]),
        "J_j_def": r"J_j = %s" % _frac(P(h, _j), P(rs.prev["h"], _j)),
        "grad_y": r"\nabla_{%s} L_t" % P(rs.symbol("y")),
        "grad_h": "%s = %s" % (P(LossGradient.of(h)), P(rs.readout_backward()[0]["h"])),
        "J_j": r"J_j = %s = %s" % (_frac(P(h, _j), P(rs.prev["h"], _j)), P(rs.jacobian("h", "h"), _j)),
        "immediate": r"\frac{\partial^{+} %s}{\partial %s}" % (P(h, _k), P(W)),
        "Delta_h_sum": r"%s = \sum_{t=k}^{T} \bigl(J_t J_{t-1} \cdots J_{k+1}\bigr)^{\top} %s"
                       % (P(rs.backward().incoming["h"], _k), P(LossGradient.of(h))),
        "gamma_sigmoid": sympy.latex(gs), "gamma_tanh": sympy.latex(gt),
        "gamma_def": r"\gamma = \sup \phi'", "phi": r"\phi", "a_zero": "%s = 0" % P(a),
        "x_zero": "x = 0", "sp_x": r"%s(x)" % SigmoidPrime.latex,
        "sp_le": r"%s \le %s" % (SigmoidPrime.latex, sympy.latex(gs)),
        "sp_identity": r"%s = %s" % (P(sp), P(_from_output(Sigmoid, Sigmoid(a)))),
        "sp_out": r"%s = %s" % (P(sp), P(_from_output(Sigmoid, h))),
        "norm": norm_tex(),
        "vanish": _norm(_corrected("seed.vanishing")),
        "vanish_tanh": _norm(sympy.StrictLessThan(LAMBDA, 1 / gt)),
        "explode": _norm(sympy.StrictGreaterThan(LAMBDA, 1 / gs)),
        "W_hh_counter": r"%s = %s" % (P(W), sympy.latex(2 / gs)),
        "counter_factor": r"%s \cdot %s = %s" % (sympy.latex(2 / gs), sympy.latex(gs),
                                                 sympy.latex(2 / gs * gs)),
        "L_t": "L_t", "L_total": r"L = \sum_{t=1}^{T} L_t",
        "total_grad": r"%s = \sum_{t=1}^{T} %s" % (_frac("L", P(W)), _frac("L_t", P(W))),
        "dLt_dhk": _frac("L_t", P(h, _k)), "k_range": r"1 \le k \le t \le T",
        "W_h_seed": "W^{h}", "eq2_as_written": seed_claim("seed.eq2").quote_latex.split("=", 1)[1],
        "h_t_1": "h_{t_1}",
        "W_ci_seed": "W_{ci}", "W_cf_seed": "W_{cf}", "W_co_seed": "W_{co}",
        "sigma_of_x": r"\sigma\left(x\right)",
        "state_pair": "(%s, %s)" % (Q(L.symbol("h")), Q(L.symbol("c"))),
        "dc_dc": _frac(Q(L.symbol("c")), Q(L.prev["c"])), "diag_f": Q(diag(L.symbol("f"))),
        "f_c_prev": Q(hadamard([L.symbol("f"), L.prev["c"]])),
        "i_g": Q(hadamard([L.symbol("i"), L.symbol("g")])), "o_tanh_c": Q(L.definition("h")),
        "f_const": r"f_j \equiv \sigma(%s)" % Q(L.symbol("b_f")), "b_f": Q(L.symbol("b_f")),
        "sigma_zero": r"\sigma(0) = %s" % sympy.latex(Sigmoid.scalar(sympy.Integer(0))),
        "fbar_t": Q(L.symbol("fbar")),
        "Delta_hc": "%s, %s" % (Q(L.backward().incoming["h"]), Q(L.backward().incoming["c"])),
        "dprev_c": r"\delta^{(t)} %s" % Q(L.prev["c"]),
    }
    for name in ("i", "f", "o", "g", "c"):
        m[name + "_t"] = Q(L.symbol(name))
    m["c_prev"] = Q(L.prev["c"])
    for name in ("w_ci", "w_cf", "w_co"):
        m[name] = Q(L.symbol("W_" + name[2:]))
    for name in ("W_hi", "W_hf"):
        m[name] = Q(L.symbol(name))
    return m


def _rows(eqs, c):
    """``aligned`` rows ``(lhs, expr, time)`` with the expression printed by the engine."""
    return aligned_env([Eq(lhs, _p(e, c, time, breaks=True) if not isinstance(e, str) else e)
                        for lhs, e, time in eqs])


@lru_cache(maxsize=None)
def displays() -> dict:
    """The displayed formulas, by key (bodies of ``$$ ... $$``, KaTeX-compatible)."""
    rs, rt, L = _cells()
    m = inline()
    P = lambda e, time=_t: _p(e, rs, time)             # noqa: E731
    Q = lambda e, time=_t: _p(e, L, time)               # noqa: E731
    h, a = rs.symbol("h"), rs.symbol("a")
    bw = rs.backward()
    grad_h = rs.readout_backward()[0]["h"]
    d = {
        "eq1": r"%s = %s \tag{1}" % (m["h_t"], P(expand(rs, "h"))),
        "a_def": r"%s = %s" % (m["a_t"], P(rs.definition("a"))),
        "eq2": r"%s = %s \tag{2}" % (m["y_t"], P(rs.definition("y"))),
        "bptt_sum": aligned_env([
            Eq(_frac("L", m["W_hh"]), r"\sum_{t=1}^{T} %s" % _frac("L_t", m["W_hh"])),
            Eq(_frac("L_t", m["W_hh"]), r"\sum_{k=1}^{t} %s \, J_t J_{t-1} \cdots J_{k+1} \, %s"
               % (_frac("L_t", m["h_t"]), m["immediate"]))]),
        "bptt_rec": aligned_env([
            Eq(m["Delta_h"], "%s + %s" % (P(grad_h), P(bw.prev_states["h"], _t + 1))),
            Eq(P(bw.assignments[0][0]), P(bw.assignments[0][1])),
            Eq(_frac("L", m["W_hh"]), r"\sum_{t=1}^{T} %s" % P(bw.params["W_hh"]))]),
        "J_h": r"%s = %s" % (_frac(m["h_t"], m["h_prev"]), P(rs.jacobian("h", "h"))),
        "sp_forms": r"%s = %s = %s" % (P(SigmoidPrime(a)), P(_from_output(Sigmoid, Sigmoid(a))),
                                       P(_from_output(Sigmoid, h))),
        "sp_range": r"%s = %s" % (seed_claim("seed.sigmoid_range").corrected_lhs_latex,
                                  P(_corrected("seed.sigmoid_range"))),
        "pascanu": r"\Bigl\lVert %s \Bigr\rVert_2 = \bigl\lVert J_t J_{t-1} \cdots J_{k+1} "
                   r"\bigr\rVert_2 \le \prod_{j=k+1}^{t} \bigl\lVert %s \bigr\rVert_2 \, "
                   r"\lVert %s \rVert_2 \le (\gamma %s)^{t-k}, \qquad \gamma = %s"
                   % (_frac(m["h_t"], P(h, _k)), P(diag(SigmoidPrime(a)), _j), m["W_hh"],
                      norm_tex(), m["gamma_sigmoid"]),
        "lstm5": _rows([(Q(L.symbol(n)), expand(L, n, keep=keep), _t) for n, keep in (
            ("i", ()), ("f", ()), ("c", ("f", "i")), ("o", ("c",)), ("h", ("o", "c")))], L),
        "lstm_parts": _rows([(Q(eq.lhs), eq.rhs, _t) for eq in L.equations
                             if eq.lhs.name not in ("c", "h")], L),
        "c_update": r"%s = %s = %s" % (m["c_t"], Q(L.definition("c")),
                                       Q(expand(L, "c", keep=("f", "i")))),
        "direct": r"\frac{\partial^{+} %s}{\partial %s} = %s" % (m["c_t"], m["c_prev"], m["diag_f"]),
        "J_cc": r"%s = %s" % (m["dc_dc"], Q(L.jacobian("c", "c"))),
        "blocks": _rows([(_frac(Q(L.symbol(s)), Q(L.prev[r])), blk, _t)
                         for (s, r), blk in L.step_jacobian().items()], L),
        "f_def": _rows([(m["f_t"], L.definition("f"), _t), (m["fbar_t"], L.definition("fbar"), _t)], L),
        "c_back": _lstm_backward_rows(L),
        "carousel": r"\frac{\partial^{+} %s}{\partial %s} = \prod_{j=k+1}^{t} %s = "
                    r"\operatorname{diag}(%s \odot %s \odot \cdots \odot %s)"
                    % (m["c_t"], Q(L.symbol("c"), _k), Q(diag(L.symbol("f")), _j),
                       Q(L.symbol("f")), Q(L.symbol("f"), _t - 1), Q(L.symbol("f"), _k + 1)),
    }
    return d


def _lstm_backward_rows(L):
    """delta obar_t, delta c_t, delta fbar_t, delta ibar_t and what reaches c_{t-1}."""
    bw = L.backward()
    keep = {"delta_obar", "delta_c", "delta_fbar", "delta_ibar"}
    rows = [(_p(s, L), e, _t) for s, e in bw.assignments if s.name in keep]
    prev = L.prev["c"]
    rows.append((r"\delta^{(t)} %s" % _p(prev, L), bw.prev_states["c"], _t))
    return _rows(rows, L)


def bias_rows() -> list:
    """(b_f, sigma(b_f), sigma(b_f)^HORIZON) as LaTeX, for the forget-gate bias table."""
    out = []
    for b in BIASES:
        f = Sigmoid.scalar(sympy.Integer(b))
        out.append((str(b), "%.4f" % float(f), _sci(float(f) ** HORIZON)))
    return out


def _sci(v: float) -> str:
    mant, exp = ("%.1e" % v).split("e")
    exp = int(exp)
    return mant if exp == 0 else r"%s \times 10^{%d}" % (mant, exp)


#: The left side of each refuted claim's derived correction (LaTeX) and the step at which the
#: correction is printed; the right side is ``claim.corrected()``.
_LHS = {
    "seed.eq2": lambda m: m["y_t"],
    "seed.activation": lambda m: _frac(m["h_t"], m["h_prev"]),
    "seed.bptt": lambda m: _frac("L", m["W_hh"]),
    "seed.bptt.immediate_partial": lambda m: _frac("L", m["W_hh"]),
    "seed.bptt.product_order": lambda m: r"J_t = %s" % _frac(m["h_t"], m["h_prev"]),
    "seed.rnn_jacobian": lambda m: _frac(m["h_t"], m["h_prev"]),
    "seed.sigmoid_range": lambda m: seed_claim("seed.sigmoid_range").corrected_lhs_latex,
    "seed.vanishing": None,
    "seed.lstm_cell_jacobian": lambda m: m["dc_dc"],
    "seed.typo": lambda m: m["c_t"],
}


def corrected_latex(claim) -> list:
    """The derived correction of ``claim`` as LaTeX right sides, one per expression."""
    corr = _corrected(claim.id)
    if corr is None:
        return []
    c = cell(claim.cell) if claim.cell else None
    exprs = list(corr) if isinstance(corr, (tuple, list)) else [corr]
    if claim.id == "seed.activation":
        # two cells: each Jacobian printed with its own cell's names
        return [_p(e, k) for e, k in zip(exprs, (cell("rnn_sigmoid"), cell("rnn_tanh")))]
    return [_p(e, c) for e in exprs]


def corrections(claim) -> list:
    """``lhs = rhs`` strings of ``claim``'s derived correction (``rhs`` alone without lhs)."""
    rhs = corrected_latex(claim)
    lhs = _LHS.get(claim.id)
    if claim.id == "seed.vanishing":
        return _vanishing_rows(rhs)
    if claim.id in ("seed.bptt", "seed.bptt.immediate_partial"):
        return [r"%s = \sum_{t=1}^{T} %s" % (lhs(inline()), r) for r in rhs]
    if lhs is None:
        return rhs
    return ["%s = %s" % (lhs(inline()), r) for r in rhs]


def _vanishing_rows(rhs) -> list:
    """Pascanu's bound and the sufficient condition, not a lone inequality: the bound on the
    product over ``t - k`` steps, then ``||W_hh||_2 < 1/gamma`` implying that it vanishes."""
    m = inline()
    rs = cell("rnn_sigmoid")
    lhs = r"\Bigl\lVert %s \Bigr\rVert_2" % _frac(m["h_t"], _p(rs.symbol("h"), rs, _k))
    cond = _norm(_corrected("seed.vanishing"))
    return [r"%s \le \bigl(%s \, %s\bigr)^{t-k}" % (lhs, m["gamma_sigmoid"], norm_tex()),
            r"%s \;\Rightarrow\; %s \to 0 \quad (t-k \to \infty)" % (cond, lhs)] if rhs else []


def check_keys(keys) -> None:
    """Raise ``KeyError`` naming the first key that is neither an inline nor a display."""
    known = set(inline()) | set(displays())
    for k in keys:
        if k not in known:
            raise KeyError(f"seed note: no formula {k!r}")


__all__ = ["inline", "displays", "corrections", "corrected_latex", "bias_rows", "vector_form",
           "check_keys", "HORIZON", "BIASES", "LAMBDA", "norm_tex"]
