"""The article's sections: conventions, one section per cell (forward step, Jacobian,
backward step, BPTT, bounds), the figure and the seed note; ``latex/<cell>.tex`` snippets."""
from __future__ import annotations

from derive.document.bounds import bound_eqs, bptt_sum_eqs, pascanu_eqs, recursion_eqs
from derive.document.equations import (Ctx, backward_step_eqs, chain_eqs, forward_eqs,
                                       jacobian_eqs, param_grad_eqs)
from derive.document.model import FIGURE, Display, Figure, Heading, Math, para
from derive.document.seed_sections import seed_blocks
from derive.printing.latex import align_env, strip_breaks
from derive.printing.notation import notation_map

TITLE = "Recurrent cells: equations, Jacobians, backpropagation through time and bounds"


def cell_blocks(cell, notation=None) -> list:
    """Every block of one cell's section."""
    ctx = Ctx.of(cell, notation)
    states = ", ".join(ctx.state(s) for s in cell.states)
    prevs = ", ".join(ctx.prev(s) for s in cell.states)
    out = [Heading(1, cell.title, "sec:%s" % cell.name)]
    meta = []
    if cell.reference:
        meta.append("Reference: %s." % cell.reference.rstrip("."))
    if cell.description:
        meta.append(cell.description)
    if meta:
        out.append(para(" ".join(meta)))
    out.append(Heading(2, "Forward step"))
    out.append(para("Cell ", cell.name, ": one step maps the previous state ", Math(prevs),
                    " and the input ", Math(ctx.var("x")), " to ", Math(states), "."))
    out.append(Display(forward_eqs(cell, notation), "forward step"))
    out.append(Heading(2, "Step Jacobian"))
    out.append(para("The blocks of the state-transition Jacobian in numerator layout; ",
                    Math(r"\operatorname{diag}(v)"), " is the diagonal matrix of ",
                    Math("v"), " and ", Math(r"\odot"), " the elementwise product."))
    out.append(Display(jacobian_eqs(ctx), "step Jacobian blocks"))
    out.append(Heading(2, "Backward step (BPTT)"))
    inc = ", ".join(strip_breaks(ctx.p(cell.backward().incoming[s])) for s in cell.states)
    out.append(para("The gradient of the loss reaching the new state from outside the step is ",
                    Math(inc), "; the step computes the deltas in this order and passes ",
                    Math(", ".join(strip_breaks(ctx.p(ctx.prev_adjoint(s)))
                                   for s in cell.states)),
                    " back to the previous state."))
    out.append(Display(backward_step_eqs(ctx), "backward step"))
    out.append(para("Chaining the steps (for ", Math("t = T"), " the term from step ",
                    Math("t+1"), " is absent):"))
    out.append(Display(chain_eqs(ctx), "gradient reaching each state"))
    out.append(para("The parameter gradients sum the contribution of every step:"))
    out.append(Display(param_grad_eqs(ctx), "parameter gradients"))
    bptt = bptt_sum_eqs(ctx)
    if bptt is not None:
        out.append(Heading(2, "BPTT as a double sum"))
        out.append(para("Pascanu, Mikolov and Bengio (2013), eqs. (3)-(5), with the immediate "
                        "partial derivative ", Math(r"\partial^{+}"), " (step ", Math("k"),
                        " alone, the previous state held fixed); the product is ordered ",
                        Math(r"J_t J_{t-1} \cdots J_{k+1}"), ", and is the identity for ",
                        Math("k = t"), ":"))
        out.append(Display(bptt, "BPTT double sum"))
        rec = recursion_eqs(ctx)
        out.append(para("The same gradient in ", Math("O(T)"), " operations: the backward "
                        "step above, run for ", Math("k = T, T-1, \\dots, 1"), ":"))
        out.append(Display(rec, "BPTT recursion"))
    out.append(Heading(2, "Bounds"))
    bounds = bound_eqs(ctx)
    if bounds:
        out.append(para("The derivatives of the activations in the Jacobian are bounded by ",
                        Math(r"\gamma"), " (computed by SymPy from the registered derivative); "
                        "where the derivative is a polynomial in the activation, the gap to ",
                        Math(r"\gamma"), " is a square:"))
        out.append(Display(bounds, "activation bounds"))
    pas = pascanu_eqs(ctx)
    if pas is not None:
        rows, prim, gamma, W = pas
        out.append(para("Since ", Math(r"\lVert\operatorname{diag}(v)\rVert_2 = \max_i |v_i|"),
                        " and the 2-norm is submultiplicative (Pascanu et al. 2013, section "
                        "2.1), for ", Math("k < t"), " (the product ordered as above):"))
        out.append(Display(rows, "Pascanu bound"))
        out.append(para("So ", Math(r"\lVert %s \rVert_2 < %s" % (ctx.param(W.name),
                                                                    Ctx.of(None, None).p(1 / gamma))),
                        " is sufficient for the gradient to vanish geometrically in ",
                        Math("t-k"), "; a larger norm is necessary (not sufficient) for it to "
                        "explode."))
    return out


def cell_snippet(cell, notation=None, blocks=None) -> str:
    """``latex/<cell>.tex``: the cell's displays as amsmath ``align`` environments with
    ``\\label{eq:<cell>:<name>}``, for ``\\input`` (preamble: amsmath)."""
    if blocks is None:
        blocks = cell_blocks(cell, notation)
    lines = ["%% %s: %s" % (cell.name, cell.title),
             "% Generated by python -m derive (rnn-calculus) from derive/cells; do not edit.",
             "%% Needs \\usepackage{amsmath}. Notation: %s." % notation_map(notation).name, ""]
    for b in blocks:
        if isinstance(b, Display):
            lines.append("%% %s" % b.comment)
            lines.append(align_env(b.eqs))
    return "\n".join(lines)




def intro_blocks(cells, notation) -> list:
    nm = notation_map(notation)
    return [
        Heading(1, "Conventions", "sec:conventions"),
        para("Every formula in this document is printed from the derivation engine: each cell "
             "is defined once (a TOML spec), and its Jacobians, backward step and bounds are "
             "derived from that definition. Vectors are columns; ", Math(r"\odot"),
             " is the elementwise product and ", Math(r"\operatorname{diag}(v)"),
             " the diagonal matrix with ", Math("v"), " on its diagonal; Jacobians are in "
             "numerator layout. The loss is ", Math(r"L = \sum_{t=1}^{T} L_t"), " with ",
             Math("L_t"), " depending on step ", Math("t"), " only through its state."),
        para("In a backward step, ", Math(r"\Delta s_t"), " is the gradient reaching a state ",
             Math("s_t"), " from outside the step (its own loss and all later steps), ",
             Math(r"\delta z_t"), " the gradient with respect to a quantity ", Math("z_t"),
             " of the step, and ", Math(r"\delta^{(t)} s_{t-1}"), " the part of the gradient "
             "of ", Math("s_{t-1}"), " that flows back through step ", Math("t"), "."),
        para("Notation map: ", nm.name, " (", nm.description, ")."),
    ]




READING_ORDER = ("rnn_sigmoid", "rnn_tanh", "lstm_peephole", "lstm_peephole_full", "lstm")


def reading_order(cells) -> list:
    rank = {name: k for k, name in enumerate(READING_ORDER)}
    return sorted(cells, key=lambda c: (rank.get(c.name, len(rank)), c.name))


def document_blocks(cells, notation=None, figure=True, per_cell=None) -> list:
    """The article: conventions, one section per cell, the figure (when ``figure``: the
    gradient-flow figure is part of the article), the seed note."""
    blocks = intro_blocks(cells, notation)
    for c in reading_order(cells):
        blocks += per_cell[c.name] if per_cell else cell_blocks(c, notation)
    if figure:
        blocks += [Figure(FIGURE, "Norm of the state Jacobian over k steps for random weights "
                                  "below, at and above the threshold of the bound "
                                  "(figures/gradient_flow.csv).")]
    blocks += seed_blocks(cells, notation)
    return blocks


# -- renderers ---------------------------------------------------------------------------
