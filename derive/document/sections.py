"""The article's sections: conventions, one section per cell (forward step, Jacobian,
backward step, BPTT, bounds), the figure and the seed note; ``latex/<cell>.tex`` snippets."""
from __future__ import annotations

from derive.document.bounds import bound_eqs, bptt_sum_eqs, pascanu_eqs, recursion_eqs
from derive.document.equations import (Ctx, backward_step_eqs, chain_eqs, forward_eqs,
                                       jacobian_eqs, param_grad_eqs)
from derive.document.model import Display, Heading, Math, para
from derive.document.seed_sections import seed_blocks
from derive.document import lstm_story, teaching
from derive.document.model import Table
import sympy
from derive.printing.latex import align_env
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
        meta.append(REFERENCE_LINE["en"] % cell.reference.rstrip("."))
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
    inc = ", ".join(ctx.p(cell.backward().incoming[s]) for s in cell.states)
    out.append(para("The gradient of the loss reaching the new state from outside the step is ",
                    Math(inc), "; the step computes the deltas in this order and passes ",
                    Math(", ".join(ctx.p(ctx.prev_adjoint(s))
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




APPENDIX_PROSE = {"en": {
    "app.h": "The other cells",
    "app.1": "Greff et al. compare eight variants of the peephole LSTM, each removing or "
             "changing one part; the table lists them with the other cells of this document "
             "and the number of parameters each has for hidden size {H} and input size {D}, "
             "counted from the spec.",
    "app.2": "Every parameter gradient has the same form, written here once: a matrix that "
             "multiplies a vector {u} in a pre-activation {z} receives the sum over steps of "
             "the outer product of the delta of that pre-activation with the vector, and a "
             "bias receives the sum of the deltas. For the Elman RNN:",
    "app.3": "The sections below give, for each cell, the forward step, the step Jacobian "
             "and the backward step with the gradient reaching each state; the parameter "
             "gradients follow from the deltas by the rule above.",
    "tab.cell": "cell", "tab.what": "what it is", "tab.params": "parameters",
    "tab.states": "states",
}}
APPENDIX_PROSE["zh"] = __import__("derive.document.prose_zh", fromlist=["APPENDIX"]).APPENDIX


def comparison_table(cells, notation, lang="en") -> Table:
    from derive.document.model import Table
    P = APPENDIX_PROSE[lang]
    pr = Ctx.of(None, None)
    rows = []
    for c in cells:
        ctx = Ctx.of(c, notation)
        count = sympy.Poly(sum(sympy.Mul(*p.shape) for p in c.params.values()))
        terms = [sympy.Mul(coeff, *[g ** e for g, e in zip(count.gens, mono) if e],
                           evaluate=False) if coeff != 1 else
                 sympy.Mul(*[g ** e for g, e in zip(count.gens, mono) if e], evaluate=False)
                 for mono, coeff in sorted(count.terms(), key=lambda t: (-sum(t[0]), t[0]))]
        rows.append([c.name.replace("_", " "), cell_what(c, lang),
                     [Math(pr.p(sympy.Add(*terms, evaluate=False)))],
                     [Math(", ".join(ctx.state(s) for s in c.states))]])
    return Table([P["tab.cell"], P["tab.what"], P["tab.params"], P["tab.states"]], rows,
                 ["l", "p{3.2cm}", "l", "l"])


#: A short description of each built-in cell for the comparison table and the appendix
#: headings, per language (prose; a user-defined cell shows its spec's title).
CELL_WHAT = {"en": {
    "rnn_sigmoid": "Elman RNN, logistic sigmoid (the seed note)",
    "rnn_tanh": "Elman RNN, tanh (PyTorch default)",
    "rnn_relu": "Elman RNN, ReLU",
    "lstm": "LSTM without peepholes (PyTorch)",
    "lstm_peephole": "peephole LSTM of Graves; Greff's vanilla model",
    "lstm_peephole_full": "the seed's LSTM read literally: full cell-to-gate matrices",
    "lstm_np": "Greff NP: no peepholes",
    "lstm_nig": "Greff NIG: no input gate",
    "lstm_nfg": "Greff NFG: no forget gate",
    "lstm_nog": "Greff NOG: no output gate",
    "lstm_niaf": "Greff NIAF: no input activation",
    "lstm_noaf": "Greff NOAF: no output activation",
    "lstm_cifg": "Greff CIFG: input and forget gate coupled",
    "lstm_fgr": "Greff FGR: full gate recurrence",
    "gru": "GRU, reset after the product (PyTorch, cuDNN)",
    "gru_cho": "GRU, reset before the product (Cho et al.)",
    "lstm_np_noaf": "LSTM without peepholes and without the output activation",
    "mingru": "minGRU (Feng et al. 2024): gates that do not see the state",
}, "zh": {
    "rnn_sigmoid": "Elman RNN，logistic sigmoid（原笔记）",
    "rnn_tanh": "Elman RNN，tanh（PyTorch 默认）",
    "rnn_relu": "Elman RNN，ReLU",
    "lstm": "无窥视孔的 LSTM（PyTorch）",
    "lstm_peephole": "Graves 的带窥视孔 LSTM；Greff 的基准模型",
    "lstm_peephole_full": "按字面理解的原笔记 LSTM：细胞到门为完整矩阵",
    "lstm_np": "Greff NP：无窥视孔",
    "lstm_nig": "Greff NIG：无输入门",
    "lstm_nfg": "Greff NFG：无遗忘门",
    "lstm_nog": "Greff NOG：无输出门",
    "lstm_niaf": "Greff NIAF：输入无激活函数",
    "lstm_noaf": "Greff NOAF：输出无激活函数",
    "lstm_cifg": "Greff CIFG：输入门与遗忘门耦合",
    "lstm_fgr": "Greff FGR：门的完全循环连接",
    "gru": "GRU，重置门在乘积之后（PyTorch、cuDNN）",
    "gru_cho": "GRU，重置门在乘积之前（Cho 等人）",
    "lstm_np_noaf": "无窥视孔、输出无激活函数的 LSTM",
    "mingru": "minGRU（Feng 等人，2024）：门不依赖状态",
}}
#: "Reference: <spec reference>." per language.
REFERENCE_LINE = {"en": "Reference: %s.", "zh": "出处：%s。"}


def cell_what(cell, lang="en") -> str:
    """The cell's short description in ``lang``; its spec's title when it has none."""
    return CELL_WHAT[lang].get(cell.name, cell.title)


def appendix_cell_blocks(cell, notation=None, lang="en") -> list:
    """One cell in the appendix: forward step, step Jacobian, backward step, the gradient
    reaching each state (parameter gradients by the shared rule, bounds in the main text)."""
    ctx = Ctx.of(cell, notation)
    title = cell_what(cell, lang)
    out = [Heading(2, title[:1].upper() + title[1:], "app:%s" % cell.name)]
    if cell.reference:
        out.append(para(REFERENCE_LINE[lang] % cell.reference.rstrip(".")))
    out.append(Display(forward_eqs(cell, notation), "forward step"))
    out.append(Display(jacobian_eqs(ctx), "step Jacobian blocks"))
    out.append(Display(backward_step_eqs(ctx), "backward step"))
    out.append(Display(chain_eqs(ctx), "gradient reaching each state"))
    return out


def appendix_blocks(cells, notation, lang="en") -> list:
    from derive.document.model import Appendix, prose
    P = APPENDIX_PROSE[lang]
    e = next((c for c in cells if c.name == "rnn_sigmoid"), None)
    out = [Appendix(), Heading(1, P["app.h"], "sec:cells"),
           prose(P["app.1"], {"H": Math("H"), "D": Math("D")}),
           comparison_table(reading_order(cells), notation, lang)]
    if e is not None:
        out += [prose(P["app.2"], {"u": Math("u_t"), "z": Math("z_t")}),
                Display(param_grad_eqs(Ctx.of(e, notation)), "parameter gradients")]
    out.append(prose(P["app.3"]))
    for c in reading_order(cells):
        out += appendix_cell_blocks(c, notation, lang)
    return out


READING_ORDER = ("rnn_sigmoid", "rnn_tanh", "rnn_relu", "lstm", "lstm_peephole",
                 "lstm_peephole_full", "gru_cho", "gru")


def reading_order(cells) -> list:
    rank = {name: k for k, name in enumerate(READING_ORDER)}
    return sorted(cells, key=lambda c: (rank.get(c.name, len(rank)), c.name))


#: The main text, in order: each builder takes (notation, lang) and returns blocks. A
#: translated edition reuses this list with its own prose tables.
MAIN_SECTIONS = (
    lambda n, lang: teaching.problem_blocks(None, lang),
    teaching.conventions_blocks,
    teaching.elman_blocks,
    teaching.bptt_blocks,
    __import__("derive.document.worked_example", fromlist=["_"]).worked_example_blocks,
    teaching.vanishing_blocks,
)


def document_blocks(cells, notation=None, figure=True, per_cell=None, lang="en") -> list:
    """The article: the teaching path on the built-in cells (problem, Elman RNN, BPTT,
    vanishing gradients, the LSTM with the figure when ``figure``, the GRU, the summary),
    the references, then appendices: the seed note checked and every cell requested."""
    blocks = []
    for build in MAIN_SECTIONS:
        blocks += build(notation, lang)
    blocks += lstm_story.lstm_blocks(notation, lang, figure=figure)
    blocks += lstm_story.gru_blocks(notation, lang)
    blocks += lstm_story.summary_blocks(notation, lang)
    blocks += __import__("derive.document.crosswalk", fromlist=["_"]).crosswalk_blocks(notation, lang)
    blocks += __import__("derive.document.cheatsheet", fromlist=["_"]).cheatsheet_blocks(notation, lang)
    blocks += lstm_story.references_blocks(lang)
    blocks += appendix_blocks(cells, notation, lang)
    blocks += seed_blocks(cells, notation, lang)
    return dedupe_labels(blocks)


def dedupe_labels(blocks) -> list:
    """Drop a display row whose label an earlier row already carries (the same derived
    result of the same cell, printed in the main text), and displays left empty."""
    seen, out = set(), []
    for b in blocks:
        if isinstance(b, Display):
            eqs = [e for e in b.eqs if not e.label or e.label not in seen]
            seen.update(e.label for e in eqs if e.label)
            if not eqs:
                continue
            b = Display(eqs, b.comment)
        out.append(b)
    return out


# -- renderers ---------------------------------------------------------------------------
