"""The section "The seed note, checked": for each claim of :mod:`derive.seed` the quotation,
the verdict and the derived correction, named as the derived results above are."""
from __future__ import annotations

import sympy

from derive.document.equations import Ctx, is_param_gradient
from derive.document.model import Display, Heading, Quote, Ref, para
from derive.printing.latex import Eq, strip_breaks
from derive.spec.registry import cell as builtin
from derive.spec.registry import cells as builtin_names
from derive.seed.claims import SEED_CLAIMS


def seed_blocks(cells, notation) -> list:
    """The seed note's statements: the quotation, the verdict, the derived correction."""
    names = {c.name for c in cells}
    out = [Heading(1, "The seed note, checked", "sec:seed"),
           para("Each statement of the seed note is quoted as the note writes it, then "
                "decided by the derivations; where it does not hold, the corrected form is "
                "printed from the same derived expressions as above.")]
    for k, claim in enumerate(SEED_CLAIMS, 1):
        verdict = "holds" if claim.holds else "does not hold"
        out.append(Heading(2, "%s: %s" % (claim.id, verdict)))
        out.append(para("Statement: ", claim.statement))
        out.append(Quote([r.strip() for r in claim.quote_latex.split("\n") if r.strip()]))
        if claim.quote_note:
            out.append(para(claim.quote_note))
        out.append(para(claim.explanation))
        corr = claim.corrected()
        if corr is not None:
            c = builtin(claim.cell) if claim.cell else None
            ctx = Ctx.of(c, notation)
            exprs = list(corr) if isinstance(corr, (tuple, list)) else [corr]
            rows = []
            for n, e in enumerate(exprs):
                if isinstance(e, tuple) and len(e) == 2:
                    lhs, e = e
                else:
                    lhs = (_derived_lhs(ctx, e) or _derived_lhs_anywhere(e, notation)
                           or claim.corrected_lhs_latex)
                tex = ctx.p(e)
                label = "eq:%s:%d" % (claim.id.replace(".", "_"), n)
                if lhs:
                    rows.append(Eq(lhs, tex, label))
                else:
                    rows.append(Eq("", tex, label, rel=""))
            out.append(para("Corrected (derived):"))
            out.append(Display(rows, "seed claim %s, corrected" % claim.id))
        refs = _seed_refs(claim, names)
        if refs:
            out.append(para("See ", *refs, "."))
    return out


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
            return strip_breaks(ctx.p(eq.lhs))
    for sym, e in cell.backward().outputs():
        if expr == e and not is_param_gradient(cell, sym):
            return strip_breaks(ctx.p(sym))
    return None


def _derived_lhs_anywhere(expr, notation):
    """:func:`_derived_lhs` in the first built-in cell that derives ``expr``."""
    for name in builtin_names():
        lhs = _derived_lhs(Ctx.of(builtin(name), notation), expr)
        if lhs:
            return lhs
    return None


def _seed_refs(claim, names):
    """References into the cells' sections for the claims they derive in full."""
    if claim.refs is None or claim.refs[0] not in names:
        return []
    cname, labels = claim.refs
    out = []
    for i, lab in enumerate(labels):
        if i:
            out.append(", ")
        out.append(Ref("eq:%s:%s" % (cname, lab), "%s, equation %s" % (cname, lab)))
    return out
