"""A one-page cheat sheet: the Elman step Jacobian, the BPTT recursion, the sigma' bound and
Pascanu's bound, the LSTM cell path and the LSTM backward step, all printed from the derived
results (the same rows as in the main text, without equation numbers). Prose in
:data:`PROSE`."""
from __future__ import annotations

from sympy import DiagMatrix, Symbol

from derive.document.bounds import bound_eqs, pascanu_eqs, recursion_eqs
from derive.document.equations import Ctx, backward_step_eqs
from derive.document.model import Display, Heading, Math, NewPage, prose
from derive.printing.latex import Eq

#: The LSTM of the cheat sheet: PyTorch's, without peepholes (its cell path is exact).
LSTM = "lstm"

PROSE = {
    "en": {
        "h": "Cheat sheet",
        "elman": "Elman RNN: the step Jacobian (numerator layout, the diagonal on the left), "
                 "then BPTT in {OT}, run for {kdown} (the term from step {T1} is absent at "
                 "{kT}):",
        "bound": "The sigmoid's derivative is at most {quarter}; for {kt}, Pascanu's bound:",
        "bound.2": "Vanishing is guaranteed when {small}; a larger norm is necessary, not "
                   "sufficient, for exploding.",
        "lstm": "LSTM (no peepholes), the cell path over {k} steps: no recurrent matrix and no "
                "squashing derivative:",
        "lstm.bw": "LSTM backward step, in this order (the input's gradient omitted):",
    },
    "zh": {
        "h": "速查表",
        "elman": "Elman RNN：单步雅可比矩阵（分子布局，对角矩阵在左边），然后是 {OT} 的反向传播，"
                 "对 {kdown} 依次运行（{kT} 时没有来自第 {T1} 步的项）：",
        "bound": "sigmoid 的导数不超过 {quarter}；对 {kt}，Pascanu 的界：",
        "bound.2": "当 {small} 时梯度必然消失；范数更大只是梯度爆炸的必要条件，而非充分条件。",
        "lstm": "LSTM（无窥视孔）沿细胞状态向后 {k} 步的通路：既没有循环权重矩阵，也没有压缩函数的导数：",
        "lstm.bw": "LSTM 的反向一步，按此顺序计算（省略输入的梯度）：",
    },
}


def _bare(rows) -> list:
    """The rows without labels (the main text numbers them)."""
    return [Eq(e.lhs, e.rhs, None, e.rel) for e in rows]


#: The subscript of the cell-path product, per language.
CELL_PATH = {"en": "cell path", "zh": "细胞状态路径"}


def cheatsheet_blocks(notation=None, lang="en") -> list:
    """The cheat sheet, on a page of its own."""
    from derive.spec.registry import cell as builtin
    from derive.document.teaching import ELMAN
    P = PROSE[lang]
    e = builtin(ELMAN)
    ectx = Ctx.of(e, notation)
    pr = Ctx.of(None, None)
    h = e.elman_form().state
    rows, prim, gamma, W = pascanu_eqs(ectx)
    norm = r"\lVert %s \rVert_2" % ectx.param(W.name)
    lstm = builtin(LSTM)
    lctx = Ctx.of(lstm, notation)
    f = lstm.symbol("f")
    j, k = Symbol("j", integer=True), Symbol("k", integer=True)
    cs = lctx.state("c")
    elman = [Eq(r"\frac{\partial %s}{\partial %s}" % (ectx.state(h), ectx.prev(h)),
                ectx.rhs(e.step_jacobian()[(h, h)]), None)]
    cell_path = [
        Eq(r"\frac{\partial %s}{\partial %s}\Big|_{\text{%s}}" % (cs, lctx.state("c", k),
                                                              CELL_PATH[lang]),
           r"\prod_{j=k+1}^{t} %s" % lctx.p(DiagMatrix(f), j), None)]
    return [
        NewPage(), Heading(1, P["h"], "sec:cheatsheet"),
        prose(P["elman"], {"OT": Math("O(T)"), "kdown": Math(r"k = T, T-1, \dots, 1"),
                           "T1": Math("T+1"), "kT": Math("k = T")}),
        Display(elman + _bare(recursion_eqs(ectx)), "cheat sheet: Elman RNN and BPTT"),
        prose(P["bound"], {"quarter": Math(pr.p(gamma)), "kt": Math("k < t")}),
        Display(_bare(bound_eqs(ectx)[-1:] + [rows[0], rows[-1]]), "cheat sheet: bounds"),
        prose(P["bound.2"], {"small": Math(r"%s < %s" % (norm, pr.p(1 / gamma)))}),
        prose(P["lstm"], {"k": Math("t-k")}),
        Display(cell_path, "cheat sheet: LSTM cell path"),
        prose(P["lstm.bw"]),
        Display(_bare(r for r in backward_step_eqs(lctx) if not r.lhs.startswith(r"\delta x")),
                "cheat sheet: LSTM backward step"),
        NewPage(),
    ]
