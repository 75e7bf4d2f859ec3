"""The article's sections: conventions, one section per cell (forward step, Jacobian,
backward step, BPTT, bounds), the figure and the seed note; ``latex/<cell>.tex`` snippets."""
from __future__ import annotations

from derive.document.bounds import bound_eqs, bptt_sum_eqs, pascanu_eqs, recursion_eqs
from derive.document.equations import (Ctx, backward_step_eqs, chain_eqs, forward_eqs,
                                       jacobian_eqs, param_grad_eqs, scan_eqs)
from derive.document.model import Code, Display, Heading, Math, Para, Ref, para
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
    out += scan_blocks(ctx)
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
    "app.1b": "Recent recurrent cells are derived by the same rules: the minGRU and minLSTM of "
              "Feng et al. (2024), whose gates do not see the state; the sLSTM of xLSTM with "
              "exponential gates (Beck et al. 2024); the LRU (Orvieto et al. 2023), a "
              "diagonal linear recurrence whose complex state is written as its real and "
              "imaginary parts; the layer-normalised LSTM of Ba et al. (2016), whose step "
              "Jacobian is no longer diagonal; and two cells with a matrix-valued state, "
              "held as its row-major vectorisation: the mLSTM of xLSTM and Gated DeltaNet "
              "(Yang et al. 2024):",
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
from derive.document import prose_zh  # noqa: E402
APPENDIX_PROSE["zh"] = prose_zh.APPENDIX


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
        rows.append([Code(c.name), cell_what(c, lang),
                     [Math(pr.p(sympy.Add(*terms, evaluate=False)))],
                     [Math(", ".join(ctx.state(s) for s in c.states))]])
    return Table([P["tab.cell"], P["tab.what"], P["tab.params"], P["tab.states"]], rows,
                 ["l", "p{2.7cm}", "l", "l"])


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
    "minlstm": "minLSTM (Feng et al. 2024): normalised gates that do not see the state",
    "slstm": "sLSTM (xLSTM, Beck et al. 2024): exponential gates, normaliser, stabiliser",
    "lru": "LRU (Orvieto et al. 2023): diagonal complex linear recurrence, in real form",
    "lnlstm": "layer-norm LSTM (Ba et al. 2016): layer norm of every gate's two parts and "
              "of the cell",
    "mlstm": "mLSTM (xLSTM, Beck et al. 2024): matrix memory, exponential gates, stabiliser",
    "gated_deltanet": "Gated DeltaNet (Yang et al. 2024): matrix memory, gated delta rule",
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
    "minlstm": "minLSTM（Feng 等人，2024）：归一化的门，不依赖状态",
    "slstm": "sLSTM（xLSTM，Beck 等人，2024）：指数门、归一化状态与稳定化状态",
    "lru": "LRU（Orvieto 等人，2023）：对角复数线性递推，写成实数形式",
    "lnlstm": "层归一化 LSTM（Ba 等人，2016）：每个门的两部分和细胞状态都做层归一化",
    "mlstm": "mLSTM（xLSTM，Beck 等人，2024）：矩阵记忆、指数门与稳定化状态",
    "gated_deltanet": "Gated DeltaNet（Yang 等人，2024）：矩阵记忆与带门控的 delta 规则",
}}
#: "Reference: <spec reference>." per language.
REFERENCE_LINE = {"en": "Reference: %s.", "zh": "出处：%s。"}


def cell_what(cell, lang="en") -> str:
    """The cell's short description in ``lang``; its spec's title when it has none."""
    return CELL_WHAT[lang].get(cell.name, cell.title)


def heading_case(title: str) -> str:
    """The title with a capital first letter, unless its first word is a name with capitals
    of its own (``minGRU``, ``sLSTM`` stay as they are)."""
    first = title.split(" ", 1)[0]
    if first != first.lower():
        return title
    return title[:1].upper() + title[1:]


def appendix_cell_blocks(cell, notation=None, lang="en") -> list:
    """One cell in the appendix: forward step, step Jacobian, backward step, the gradient
    reaching each state (parameter gradients by the shared rule, bounds in the main text)."""
    ctx = Ctx.of(cell, notation)
    title = cell_what(cell, lang)
    out = [Heading(2, heading_case(title), "app:%s" % cell.name)]
    if cell.reference:
        ref = prose_zh.reference_line(cell) if lang == "zh" else cell.reference
        out.append(para(REFERENCE_LINE[lang] % ref.rstrip(".")))
    out += notes_blocks(cell, ctx, lang)
    out.append(Display(forward_eqs(cell, notation), "forward step"))
    out.append(Display(jacobian_eqs(ctx), "step Jacobian blocks"))
    out.append(Display(backward_step_eqs(ctx), "backward step"))
    out.append(Display(chain_eqs(ctx), "gradient reaching each state"))
    out += held_blocks(ctx, lang)
    out += scan_blocks(ctx, lang)
    return out


HELD_PROSE = {
    "en": "The outputs do not depend on {m}: it only keeps the exponentials in range "
          "(python -m verify proves the invariance from the equations). So the backward pass "
          "may hold {m} constant: the kernels' backward(..., held=True) drops every path through "
          "it, which is what the xLSTM kernels do, and gives the same gradient of every "
          "parameter and input for a loss of the outputs.",
    "zh": "输出不依赖于 {m}：它只让指数保持在可表示的范围内（python -m verify 由方程证明了这一不变性）。"
          "因此反向传播可以把 {m} 当作常数：核函数的 backward(..., held=True) 去掉经过它的所有路径，"
          "这正是 xLSTM 的核函数所做的；对只依赖输出的损失，每个参数和输入的梯度都不变。",
}


def held_blocks(ctx, lang="en") -> list:
    """The states the outputs do not depend on (the spec's holdable), and the cheaper backward."""
    from derive.document.model import prose
    if not ctx.cell.holdable:
        return []
    from derive.core.symbols import Var
    names = ", ".join(ctx.p(Var(s, *ctx.cell.state_shapes[s])) for s in ctx.cell.holdable)
    return [prose(HELD_PROSE[lang], {"m": Math(names)})]


SCAN_PROSE = {
    "en": "The update is affine in the state: {form} with {A} and {b} free of every state "
          "(the step Jacobian does not depend on the state), so the whole sequence is a "
          "parallel scan. A step (A, b) followed by a step (A', b') composes as {comb}, an "
          "associative operation, and the "
          "gradients follow the adjoint recursion {adj}, a scan run backwards in time ({g}: the "
          "loss gradient at step {tm1}); the kernels run both with forward(method=\"scan\").",
    "zh": "这个更新对状态是仿射的：{form}，其中 {A} 和 {b} 不依赖任何状态（单步雅可比矩阵与状态"
          "无关），所以整个序列可以用并行扫描计算。先做一步 (A, b) 再做一步 (A', b') 的复合是 {comb}，满足结合律；梯度满足伴随递推 "
          "{adj}，也就是沿时间反向的扫描（{g} 是第 {tm1} 步的损失梯度）；核函数用 "
          "forward(method=\"scan\") 运行这两者。",
}


MATRIX_SCAN_PROSE = {
    "en": "The update is affine in the matrix state: {form}. The step Jacobian is {A}, a "
          "multiplication from the right, and {M}, {B} are free of every state (the step "
          "Jacobian does not depend on the state){rest}. Two steps compose as {comb}, an associative "
          "operation, so the sequence is a scan; the kernels run it in chunks "
          "(forward(method=\"scan\", chunk=K): the ordinary step inside each chunk of K steps, "
          "all chunks at once, then the chunks' compositions across them). The gradients "
          "follow the adjoint recursion {adj}, run the same way backwards in time ({g}: what the "
          "step adds locally at step {tm1}).",
    "zh": "这个更新对矩阵状态是仿射的：{form}。单步雅可比矩阵是 {A}，即从右边相乘，{M} 和 {B} "
          "不依赖任何状态（单步雅可比矩阵与状态无关）{rest}。两步的复合是 {comb}，满足结合律，所以整个序列是一次扫描；"
          "核函数按块运行（forward(method=\"scan\", chunk=K)：每块 K 步内用普通的单步递推，所有块同时"
          "计算，然后在块之间组合）。梯度满足伴随递推 {adj}，以同样的方式沿时间反向运行（{g} 是第 "
          "{tm1} 步在本步内产生的梯度）。",
}

MATRIX_SCAN_REST = {"en": "; {o} is read off {S} at each step", "zh": "；{o} 在每一步由 {S} 算出"}


def scan_blocks(ctx, lang="en") -> list:
    """The derived affine form and its scan, for a cell affine in its state."""
    from derive.core.affine import RightAffineForm, scan_form
    from derive.document.model import prose
    rows = scan_eqs(ctx)
    if rows is None:
        return []
    form = scan_form(ctx.cell)
    if isinstance(form, RightAffineForm):
        S = ctx.namer.body(form.state)
        template = MATRIX_SCAN_PROSE[lang].replace(
            "{rest}", MATRIX_SCAN_REST[lang] if form.readouts else "")
        text = prose(template, {
            "o": Math(", ".join(ctx.namer.body(o) + "_t" for o in form.readouts)),
            "S": Math(S + "_t"),
            "form": Math(r"%s_t = %s_{t-1} M_t + B_t" % (S, S)),
            "A": Math(r"A_t\colon\ \mathrm{d}%s_{t-1} \mapsto \mathrm{d}%s_{t-1} M_t" % (S, S)),
            "M": Math("M_t"), "B": Math("B_t"),
            "comb": Math(r"(M, B) \bullet (M', B') = (M M',\; B M' + B')"),
            "adj": Math(r"\delta %s_{t-1} = \delta %s_t M_t^{\top} + g_{t-1}" % (S, S)),
            "g": Math("g_{t-1}"), "tm1": Math("t-1")})
        return [text, Display(rows, "affine form and scan")]
    text = prose(SCAN_PROSE[lang], {
        "form": Math(r"s_t = A_t s_{t-1} + b_t"), "A": Math("A_t"), "b": Math("b_t"),
        "comb": Math(r"(A, b) \bullet (A', b') = (A' A,\; A' b + b')"),
        "adj": Math(r"\delta s_{t-1} = A_t^{\top} \delta s_t + g_{t-1}"),
        "g": Math("g_{t-1}"), "tm1": Math("t-1")})
    return [text, Display(rows, "affine form and scan")]


NOTES = {"en": {
    "step": "Here {H} is the Heaviside step, applied elementwise: {H1} for {pos}, {H0} for "
            "{neg} and {Hhalf} at a tie; it is the derivative of max and min, so at a tie each "
            "argument receives half the gradient.",
    "constant": "The quantities {names} depend on the parameters only, not on the input or "
                "the state, and carry no step index.",
}, "zh": {
    "step": "这里 {H} 是逐元素的 Heaviside 阶跃函数：{pos} 时 {H1}，{neg} 时 {H0}，相等时 "
            "{Hhalf}；它是 max 和 min 的导数，所以两个自变量相等时各得一半梯度。",
    "constant": "{names} 只依赖参数，不依赖输入和状态，所以不带时间下标。",
}}


def notes_blocks(cell, ctx, lang="en") -> list:
    """What the cell's displays use beyond the conventions: the Heaviside step Θ (when a
    derived result holds one) and the equations of parameters only (printed without t)."""
    from derive.core.primitives import Step
    from derive.document.model import prose
    P, out = NOTES[lang], []
    derived = [eq.rhs for eq in cell.equations] + list(cell.step_jacobian().values()) + [
        e for _, e in cell.backward().outputs()]
    if any(e.has(Step) for e in derived):
        th = Step.latex
        out.append(prose(P["step"], {"H": Math(th), "H1": Math(th + "(u) = 1"),
                                     "pos": Math("u > 0"), "H0": Math(th + "(u) = 0"),
                                     "neg": Math("u < 0"),
                                     "Hhalf": Math(th + r"(0) = \tfrac{1}{2}")}))
    const = [eq.lhs for eq in cell.equations if eq.lhs.name in ctx.printer().constant_vars()]
    if const:
        sep = "、" if lang == "zh" else ", "       # prose between the formulas
        names = [x for k, v in enumerate(const) for x in ([sep] if k else []) + [Math(ctx.p(v))]]
        para_ = prose(P["constant"], {"names": "\0"})
        out.append(Para([y for x in para_.parts for y in (names if x == "\0" else [x])]))
    return out


def appendix_blocks(cells, notation, lang="en") -> list:
    from derive.document.model import Appendix, prose
    P = APPENDIX_PROSE[lang]
    e = next((c for c in cells if c.name == "rnn_sigmoid"), None)
    ordered = reading_order(cells)
    recent = [c for c in ordered if c.name in RECENT]
    out = [Appendix(), Heading(1, P["app.h"], "sec:cells"),
           prose(P["app.1"], {"H": Math("H"), "D": Math("D")}),
           comparison_table([c for c in ordered if c.name not in RECENT], notation, lang)]
    if recent:                                  # a second table: one would not fit a page
        out += [prose(P["app.1b"]), comparison_table(recent, notation, lang)]
    if e is not None:
        out += [prose(P["app.2"], {"u": Math("u_t"), "z": Math("z_t")}),
                Display(param_grad_eqs(Ctx.of(e, notation)), "parameter gradients")]
    out.append(prose(P["app.3"]))
    for c in reading_order(cells):
        out += appendix_cell_blocks(c, notation, lang)
    return out


READING_ORDER = ("rnn_sigmoid", "rnn_tanh", "rnn_relu", "lstm", "lstm_peephole",
                 "lstm_peephole_full", "gru_cho", "gru")
#: The recent cells (and layer norm, whose Jacobians are of the same new kinds), last, in
#: this order (after Greff's variants and user cells).
RECENT = ("mingru", "minlstm", "slstm", "lru", "lnlstm", "mlstm", "gated_deltanet")


def reading_order(cells) -> list:
    """The main-text cells first, then the rest by name, then :data:`RECENT`."""
    rank = {name: k for k, name in enumerate(READING_ORDER)}
    late = {name: k for k, name in enumerate(RECENT)}
    return sorted(cells, key=lambda c: (c.name in late, rank.get(c.name, len(rank)),
                                        late.get(c.name, 0), c.name))


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
    return dedupe_labels(blocks, lang)


#: What an appendix display shows, per language, for the line that points to the main text
#: when every row of it is already there ("The forward step is in the main text: (3).").
SHOWN = {"en": {"forward step": "forward step", "step Jacobian blocks": "step Jacobian",
                "backward step": "backward step",
                "gradient reaching each state": "gradient reaching each state"},
         "zh": {"forward step": "前向一步", "step Jacobian blocks": "一步雅可比矩阵",
                "backward step": "反向一步", "gradient reaching each state": "到达各状态的梯度"}}
SHOWN_LINE = {"en": ("The %s is in the main text: ", ".", "the main text"),
              "zh": ("%s见正文", "。", "正文")}


def dedupe_labels(blocks, lang="en") -> list:
    """Drop a display row whose label an earlier row already carries (the same derived
    result of the same cell, printed in the main text); a display left empty becomes one
    line that refers to the first of its rows in the main text."""
    seen, out = set(), []
    for b in blocks:
        if isinstance(b, Display):
            eqs = [e for e in b.eqs if not e.label or e.label not in seen]
            seen.update(e.label for e in eqs if e.label)
            if not eqs:
                what = SHOWN[lang].get(b.comment)
                first = next((e.label for e in b.eqs if e.label), None)
                if what and first:
                    head, tail, text = SHOWN_LINE[lang]
                    out.append(para(head % what, Ref(first, text), tail))
                continue
            b = Display(eqs, b.comment)
        out.append(b)
    return out


# -- renderers ---------------------------------------------------------------------------
