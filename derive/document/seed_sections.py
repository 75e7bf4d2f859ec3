"""The section "The seed note, checked": for each claim of :mod:`derive.seed` the quotation,
the verdict and the derived correction. Headings, what the note says and why it holds or
not are prose per claim (:data:`SEED_TEXT`, keyed by claim id) whose maths is printed from
the derived results; corrections that are conditions or sums are printed as complete
relations (:func:`_complete_rows`)."""
from __future__ import annotations

import re

import sympy

from derive.core.primitives import FUNCTIONS
from derive.document.bounds import pascanu_eqs, recursion_eqs
from derive.document.equations import Ctx, is_param_gradient
from derive.document.model import Display, Heading, Math, Quote, Ref, para, prose
from derive.document.seed_text import SEED_TEXT
from derive.printing.latex import Eq
from derive.spec.registry import cell as builtin
from derive.spec.registry import cells as builtin_names
from derive.seed.claims import SEED_CLAIMS


def seed_slots(notation) -> dict:
    """The maths the claims' prose refers to, each printed from the derived cells."""
    e = builtin("rnn_sigmoid")
    ctx = Ctx.of(e, notation)
    pr = Ctx.of(None, None)
    lp = builtin("lstm_peephole")
    lctx = Ctx.of(lp, notation)
    W = ctx.param("W_hh")
    norm = r"\lVert %s \rVert_2" % W
    g_sig, g_tanh = (FUNCTIONS[n].gamma() for n in ("sigmoid", "tanh"))
    h, hp, a = ctx.state("h"), ctx.prev("h"), ctx.var("a")
    sp = ctx.p(e.jacobian("h", "a"))
    k = sympy.Symbol("k", integer=True)
    return {
        "h": Math(h), "hprev": Math(hp), "a": Math(a), "Whh": Math(W), "norm": Math(norm),
        "Wh": Math("W^{h}"), "x": Math(ctx.var("x")),
        "y": Math(r"%s = %s" % (ctx.var("y"), ctx.p(e.definition("y")))),
        "yseed": Math(r"%s = %s + %s" % (ctx.var("y"), ctx.param("W_hy"), ctx.param("b_y"))),
        "HxH": Math(r"H \times H"), "row": Math(r"1 \times H"), "sigma": Math(r"\sigma"),
        "sp": Math(r"\sigma'"), "spdef": Math(r"\sigma' = \sigma\,(1 - \sigma)"),
        "gsig": Math(r"\gamma_{\sigma} = %s" % pr.p(g_sig)),
        "gtanh": Math(r"\gamma_{\tanh} = %s" % pr.p(g_tanh)),
        "thr": Math(r"%s < %s" % (norm, pr.p(1 / g_sig))),
        "thrtanh": Math(r"%s < %s" % (norm, pr.p(1 / g_tanh))),
        "quarter": Math(pr.p(g_sig)), "J": Math(ctx.p(e.step_jacobian()[("h", "h")])),
        "diagsp": Math(sp), "Lt": Math("L_t"), "L": Math(r"L = \sum_{t} L_t"),
        "dL": Math(r"\partial L / \partial %s = \sum_{t} \partial L_t / \partial %s" % (W, W)),
        "dplus": Math(r"\partial^{+} %s / \partial %s" % (ctx.state("h", k), W)),
        "order": Math(r"J_t J_{t-1} \cdots J_{k+1}"), "keqt": Math("k = t"), "k": Math("k"),
        "kzero": Math("k = 0"), "h0": Math(ctx.state("h", sympy.Integer(0))),
        "range": Math(r"1 \le k \le t \le T"), "seedrange": Math(r"0 \le k \le t \le T"),
        "srange": Math(r"%s = %s" % (r"\sigma'(\mathbb{R})",
                                     pr.p(sympy.Interval.Lopen(0, g_sig)))),
        "f": Math(lctx.var("f")), "c": Math(lctx.state("c")), "cprev": Math(lctx.prev("c")),
        "hprevl": Math(lctx.prev("h")), "diagf": Math(lctx.p(sympy.DiagMatrix(lp.symbol("f")))),
        "typo": Math("h_{t_1}"), "unit": Math("(0, 1)"),
        "peep": Math(", ".join(lctx.param(n) for n in ("W_ci", "W_cf", "W_co"))),
        "h1mh": Math(ctx.p(_one_minus(e.symbol("h")))),
    }


def _complete_rows(claim, notation):
    """Complete corrected statements for the claims whose correction is a summand (the
    gradient of W_hh, printed as the full sum with its delta) or a condition (Pascanu's
    sufficient condition with the bound it implies); None for the others."""
    ctx = Ctx.of(builtin("rnn_sigmoid"), notation)
    label = "eq:%s:%%d" % claim.id.replace(".", "_")
    if claim.id in ("seed.bptt", "seed.bptt.immediate_partial"):
        rec = recursion_eqs(ctx)
        grad = next(r for r in rec if r.label and r.label.endswith("rec_grad_W_hh"))
        delta = next(r for r in rec if r.label and r.label.endswith("rec_delta_a"))
        return [Eq(grad.lhs, grad.rhs, label % 0), Eq(delta.lhs, delta.rhs, label % 1)]
    if claim.id == "seed.vanishing":
        rows, _, gamma, W = pascanu_eqs(ctx)
        pr = Ctx.of(None, None)
        norm = r"\lVert %s \rVert_2" % ctx.param(W.name)
        return [Eq(rows[0].lhs, rows[-1].rhs, label % 0, rel=r"\le"),
                Eq(r"%s < %s" % (norm, pr.p(1 / gamma)),
                   r"%s \to 0 \quad (t - k \to \infty)" % rows[0].lhs, label % 1,
                   rel=r"\;\Longrightarrow\;")]
    return None


def seed_blocks(cells, notation, lang="en") -> list:
    """The seed note's statements: the quotation, the verdict, the derived correction, with
    the prose of :data:`SEED_TEXT` [``lang``]."""
    T = SEED_TEXT[lang]
    slots = seed_slots(notation)
    names = {c.name for c in cells}
    out = [Heading(1, T["h"], "sec:seed"), prose(T["intro"])]
    for claim in SEED_CLAIMS:
        t = T[claim.id]
        out.append(Heading(2, t["h"] + T["sep"] + (T["holds"] if claim.holds else T["not"])))
        out.append(prose(t["said"], slots))
        if t.get("words"):                      # the note says it in words; as a formula:
            out.append(prose(t["words"], slots))
        rows = [quoted_row(r.strip()) for r in claim.quote_latex.split("\n") if r.strip()]
        if not _LONE_SYMBOL.fullmatch(" ".join(rows)):   # a lone σ is no display (B.2)
            out.append(Quote(rows))
        if t.get("note"):
            out.append(prose(t["note"], slots))
        out.append(prose(t["why"], slots))
        rows = _complete_rows(claim, notation)
        if rows is None and claim.corrected() is not None:
            rows = _corrected_rows(claim, notation)
        if rows:
            out.append(prose(T["corrected"]))
            out.append(Display(rows, "seed claim %s, corrected" % claim.id))
        refs = _seed_refs(claim, names, T)
        if refs:
            out.append(para(T["see"], *refs, T["stop"]))
    return out


def _one_minus(h):
    """h ⊙ (1 - h): the sigmoid's derivative on the diagonal, written in the state."""
    from derive.core import algebra
    one = sympy.OneMatrix(*h.shape)
    return algebra.hadamard([h, algebra.add([one, algebra.scale(-1, h)], h.shape)])


_LONE_SYMBOL = re.compile(r"\\?[A-Za-z]+")
_OPEN_SUM = re.compile(r"\\sum_\{[^{}]*\}\^\{[^{}]*\}\s*$")


def quoted_row(row: str) -> str:
    """A row of a quotation as displayed: a row that ends in a bare summation sign (the
    note quotes the index range alone) gets its summand as ``\\cdots``."""
    return row + r" \cdots" if _OPEN_SUM.search(row) else row


def _corrected_rows(claim, notation):
    corr = claim.corrected()
    ctx = Ctx.of(builtin(claim.cell) if claim.cell else None, notation)
    rows = []
    for n, e in enumerate(list(corr) if isinstance(corr, (tuple, list)) else [corr]):
        if isinstance(e, tuple) and len(e) == 2:
            lhs, e = e
        else:
            lhs = (_derived_lhs(ctx, e) or _derived_lhs_anywhere(e, notation)
                   or claim.corrected_lhs_latex)
        label = "eq:%s:%d" % (claim.id.replace(".", "_"), n)
        rows.append(Eq(lhs, ctx.rhs(e), label) if lhs else Eq("", ctx.rhs(e), label, rel=""))
    return rows


def _derived_lhs(ctx, expr):
    """The left side for a corrected expression that is one of the cell's derived results
    (a Jacobian block, an equation's definition, a backward output), named in the current
    notation; None otherwise."""
    cell = ctx.cell
    if cell is None or not isinstance(expr, sympy.Basic):
        return None
    for (s, r), block in cell.step_jacobian().items():
        if expr == block:
            return r"\frac{\partial %s}{\partial %s}" % (ctx.state(s), ctx.prev(r))
    for eq in cell.equations + cell.readout:
        if expr == eq.rhs:
            return ctx.p(eq.lhs)
    for sym, e in cell.backward().outputs():
        if expr == e and not is_param_gradient(cell, sym):
            return ctx.p(sym)
    return None


def _derived_lhs_anywhere(expr, notation):
    """:func:`_derived_lhs` in the first built-in cell that derives ``expr``."""
    for name in builtin_names():
        lhs = _derived_lhs(Ctx.of(builtin(name), notation), expr)
        if lhs:
            return lhs
    return None


def _seed_refs(claim, names, T):
    """References into the article's equations that derive the claim in full."""
    if claim.refs is None or claim.refs[0] not in names:
        return []
    cname, labels = claim.refs
    out = []
    for i, lab in enumerate(labels):
        if i:
            out.append(T["comma"])
        out.append(Ref("eq:%s:%s" % (cname, lab), T["labels"].get(lab, T["eqref"])))
    return out
