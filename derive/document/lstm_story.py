"""The teaching path, part 2: how the LSTM keeps the gradient (the cell-state path, the full
2×2 block Jacobian with its common factor, the peephole terms, the forget-gate bias and the
figure), the GRU in both conventions, the summary and the references. Prose in
:data:`PROSE`; formulas printed from derived results."""
from __future__ import annotations

import sympy
from sympy import DiagMatrix, HadamardProduct, MatAdd

from derive.document.equations import Ctx, forward_eqs
from derive.document.model import (FIGURE, Bibliography, Cite, Display, Figure, Heading, Math,
                                   Ref, prose)
from derive.printing.latex import Eq

LSTM = "lstm_peephole"
LSTM_PLAIN = "lstm"
GRUS = ("gru_cho", "gru")

PROSE = {"en": {
    "lstm.h": "How the LSTM keeps the gradient",
    "lstm.1": "The LSTM {hs} adds a second state, the cell {c}, updated additively under "
              "three gates. The seed note uses the peephole form of {graves}, eqs. (7) to "
              "(11), in which the gates also read the cell:",
    "lstm.2": "Follow the gradient along the cell alone, holding the gates fixed. The update "
              "is elementwise and adds the new content, so this direct path contributes only "
              "the forget gate, as a diagonal matrix:",
    "lstm.3": "Across the steps from {k} to t the direct path multiplies diagonal matrices, which is the "
              "diagonal of the elementwise product of the forget gates. No recurrent matrix "
              "appears and no activation derivative bounded by {quarter}: when {fone} the "
              "product stays near the identity for many steps, the constant error carousel "
              "of {hs} with the forget gate of {gers}.",
    "lstm.4": "The direct path is not the whole one-step partial. In the LSTM without "
              "peepholes the partial with respect to the previous cell is exactly {ccplain}; "
              "with peepholes the gates read the previous cell, and two terms join the forget "
              "gate:",
    "lstm.5": "Across steps the previous cell also acts through the previous output "
              "{hprev}, so the state Jacobian is a 2×2 block matrix over {state}. Its "
              "top row has a common factor, the Jacobian {D} of the output with respect to "
              "the new cell:",
    "lstm.6": "with the blocks",
    "lstm.7": "Every other path runs through a recurrent matrix and gate derivatives, as in "
              "the Elman RNN, and vanishes under the same conditions. The cell path carries "
              "the gradient only if the forget gate is close to 1. It is a sigmoid of a "
              "pre-activation that contains the bias {bf}; with the bias near 0 the gate "
              "sits near {fhalf} and the product of forget gates decays like {halfk}. Raising "
              "the bias by 1 to 3 at initialisation ({gers}; {jozefowicz}) moves the gate to "
              "{fthree} at +3.",
    "fig.1": "{fig} measures this on random networks whose recurrent matrices are scaled "
             "below, at and above the threshold of the bound. With the default forget-gate "
             "bias the LSTM's gradient vanishes about as fast as the tanh RNN's; raising the "
             "bias by 1 slows the decay by orders of magnitude, and with +3 the cell path "
             "keeps it near 1 over 40 steps.",
    "fig.cap": "Norm of the state Jacobian over k steps (median and 10th to 90th percentile "
               "over random draws; one shared vertical axis). Blue, black, orange: recurrent "
               "matrices scaled below, at and above the threshold of the bound; dashed: the "
               "bound itself (Elman RNNs). Elman RNNs and the GRU vanish below the threshold. "
               "In the two LSTM panels the black curve has the default forget-gate bias "
               "(f ≈ 1/2): the cell state's gradient vanishes about as fast as the tanh RNN's. "
               "Raising the bias by 1 (purple, f ≈ 0.73) slows the decay by several orders of "
               "magnitude; by 3 (green, f ≈ 0.95) it stays near 1 over 40 steps. Exact zeros "
               "(ReLU) are drawn as markers on the floor of the axis.",
    "gru.h": "The GRU in both conventions",
    "gru.1": "The GRU {cho} keeps one state and interpolates between the previous state and a "
             "candidate with the update gate {z}. Cho et al. apply the reset gate before the "
             "recurrent product:",
    "gru.2": "PyTorch and cuDNN apply it after the product (an extra bias, and the reset gate "
             "scales the recurrent term):",
    "gru.3": "In both the step Jacobian starts with {dz}, the GRU's direct path: where the "
             "update gate is near 1 the state is copied and the gradient passes unchanged, the "
             "role the forget gate plays in the LSTM. Colah's post writes the interpolation "
             "the other way round, with {z} weighting the candidate; only the meaning of {z} "
             "changes. The two Jacobians:",
    "sum.h": "Summary: how the LSTM solves the RNN's problem",
    "sum.1": "In an Elman RNN every step back multiplies the gradient by {J}: an activation "
             "derivative (at most {quarter} for the sigmoid, 1 for tanh) times the recurrent "
             "matrix. Unless {norm} is large, the product shrinks geometrically; if it is large, "
             "it may explode. Bounding the derivative alone proves nothing; the bound is on the "
             "product.",
    "sum.2": "The LSTM adds a path that avoids both factors: along the cell the one-step "
             "factor is {df}, with no recurrent matrix and no squashing derivative, so the "
             "gradient survives as long as the forget gates stay near 1. The gates are "
             "learned, so the network decides what to keep; the forget-gate bias decides "
             "where training starts. The peepholes and the path through the output add terms, "
             "so the cell Jacobian is not just the forget gate, but the additive cell path is "
             "what keeps the gradient. The GRU does the same with its update gate.",
    "ref.h": "References",
}}
PROSE["zh"] = __import__("derive.document.prose_zh", fromlist=["LSTM_STORY"]).LSTM_STORY

REFERENCES = (
    ("bengio1994", "Y. Bengio, P. Simard and P. Frasconi. Learning long-term dependencies with "
                   "gradient descent is difficult. IEEE Transactions on Neural Networks 5(2), 1994."),
    ("hochreiter1991", "S. Hochreiter. Untersuchungen zu dynamischen neuronalen Netzen. Diploma "
                       "thesis, TU Munich, 1991."),
    ("hochreiter1997", "S. Hochreiter and J. Schmidhuber. Long short-term memory. Neural "
                       "Computation 9(8), 1997."),
    ("gers2000", "F. A. Gers, J. Schmidhuber and F. Cummins. Learning to forget: continual "
                 "prediction with LSTM. Neural Computation 12(10), 2000."),
    ("elman1990", "J. L. Elman. Finding structure in time. Cognitive Science 14(2), 1990."),
    ("pascanu2013", "R. Pascanu, T. Mikolov and Y. Bengio. On the difficulty of training "
                    "recurrent neural networks. ICML 2013, PMLR 28."),
    ("graves2013", "A. Graves. Generating sequences with recurrent neural networks. "
                   "arXiv:1308.0850, 2013."),
    ("greff2017", "K. Greff, R. K. Srivastava, J. Koutnik, B. R. Steunebrink and J. Schmidhuber. "
                  "LSTM: a search space odyssey. IEEE TNNLS 28(10), 2017."),
    ("cho2014", "K. Cho et al. Learning phrase representations using RNN encoder-decoder for "
                "statistical machine translation. arXiv:1406.1078, 2014."),
    ("jozefowicz2015", "R. Jozefowicz, W. Zaremba and I. Sutskever. An empirical exploration of "
                       "recurrent network architectures. ICML 2015."),
    ("colah2015", "C. Olah. Understanding LSTM networks. Blog post, "
                  "colah.github.io/posts/2015-08-Understanding-LSTMs, 2015."),
    ("cs231n", "Stanford CS231n. Convolutional neural networks for visual recognition, "
               "lecture notes and assignment 3 (RNN, LSTM), cs231n.github.io."),
)


#: The subscript of the direct cell path's partial, per language (text inside a formula).
GATES_FIXED = {"en": "gates fixed", "zh": "各门固定"}


def _builtin(name):
    from derive.spec.registry import cell
    return cell(name)


def lstm_parts(cell):
    """(D, R, J_ch, J_cc): the state Jacobian of a peephole LSTM over (h, c) as
    [[D J_ch + R, D J_cc], [J_ch, J_cc]], checked against the derived blocks."""
    J = cell.step_jacobian()
    cc, ch, hc, hh = J[("c", "c")], J[("c", "h")], J[("h", "c")], J[("h", "h")]
    A = cc.args[0]
    had = hc.args[0]
    assert isinstance(hc, DiagMatrix) and isinstance(had, HadamardProduct)
    rest = [f for f in had.args if f != A]
    assert len(rest) == 1, "the h-c block is not diag(A * v)"
    v = rest[0]
    D = DiagMatrix(v)
    # top-left: terms diag(X * v) W are D (diag(X) W); the remaining term is R
    ch_terms = {t.args[-1]: t for t in ch.args} if isinstance(ch, MatAdd) else {}
    R = []
    for t in hh.args:
        dg, W = t.args[0], t.args[-1]
        inner = dg.args[0]
        if isinstance(inner, HadamardProduct) and v in inner.args and W in ch_terms:
            X = [f for f in inner.args if f != v]
            Xe = X[0] if len(X) == 1 else HadamardProduct(*X)
            assert ch_terms[W].args[0].args[0] == Xe, "top-left block does not factor"
        else:
            R.append(t)
    assert len(R) == 1
    return D, R[0], ch, cc


def lstm_blocks(notation, lang="en", figure=True) -> list:
    P = PROSE[lang]
    c = _builtin(LSTM)
    ctx = Ctx.of(c, notation)
    pr = Ctx.of(None, None)
    f = c.symbol("f")
    j = sympy.Symbol("j", integer=True)
    k = sympy.Symbol("k", integer=True)
    D, R, ch, cc = lstm_parts(c)
    plain = _builtin(LSTM_PLAIN)
    pctx = Ctx.of(plain, notation)
    h, cs = ctx.state("h"), ctx.state("c")
    fj = ctx.p(DiagMatrix(f), j)
    bf = [a for a in c.definition("fbar").args if getattr(a, "shape", (0, 0))[1] == 1
          and a.__class__.__name__ == "Param"][0]
    def sig(x):
        """sigma(x), exact when rational, else to two decimals."""
        v = 1 / (1 + sympy.exp(-sympy.Integer(x)))
        return v if v.is_Rational else sympy.Float(round(float(v), 2), 2)
    out = [
        Heading(1, P["lstm.h"], "sec:lstm"),
        prose(P["lstm.1"], {"hs": Cite("hochreiter1997", "of Hochreiter and Schmidhuber"),
                            "c": Math(cs), "graves": Cite("graves2013", "Graves")}),
        Display(forward_eqs(c, notation), "peephole LSTM, forward step"),
        prose(P["lstm.2"]),
        Display([Eq(r"\frac{\partial %s}{\partial %s}\Big|_{\text{%s}}"
                    % (cs, ctx.prev("c"), GATES_FIXED[lang]),
                    ctx.rhs(DiagMatrix(f)), ctx.label("direct"))]),
        prose(P["lstm.3"], {"k": Math("k"), "quarter": Math(pr.p(sympy.Rational(1, 4))),
                            "fone": Math(r"%s \approx 1" % ctx.var("f")),
                            "hs": Cite("hochreiter1997", "Hochreiter and Schmidhuber"),
                            "gers": Cite("gers2000", "Gers et al.")}),
        Display([Eq(r"\prod_{j=k+1}^{t} %s" % fj,
                    r"\operatorname{diag}\bigl(%s \odot \cdots \odot %s\bigr)"
                    % (ctx.var("f"), ctx.p(f, k + 1)), ctx.label("direct_prod"))]),
        prose(P["lstm.4"], {"ccplain": Math(pctx.p(plain.step_jacobian()[("c", "c")]))}),
        Display([Eq(r"J^{cc}_t = \frac{\partial %s}{\partial %s}" % (cs, ctx.prev("c")),
                    ctx.rhs(cc), ctx.label("J_c_c"))]),
        prose(P["lstm.5"], {"hprev": Math(ctx.p(c.prev["h"])),
                            "state": Math(r"(%s, %s)" % (h, cs)),
                            "D": Math(r"D_t = \partial %s / \partial %s" % (h, cs))}),
        Display([Eq(r"\frac{\partial (%s, %s)}{\partial (%s, %s)}" % (h, cs, ctx.prev("h"), ctx.prev("c")),
                    r"\begin{pmatrix} D_t J^{ch}_t + R_t & D_t J^{cc}_t \\ J^{ch}_t & J^{cc}_t"
                    r" \end{pmatrix}", ctx.label("block"))]),
        prose(P["lstm.6"]),
        Display([Eq("D_t", ctx.rhs(D), ctx.label("D")),
                 Eq(r"J^{ch}_t = \frac{\partial %s}{\partial %s}" % (cs, ctx.prev("h")), ctx.rhs(ch),
                    ctx.label("J_c_h")),
                 Eq("R_t", ctx.rhs(R), ctx.label("R")),
                 Eq(r"\frac{\partial %s}{\partial %s}" % (h, ctx.prev("c")),
                    ctx.rhs(c.step_jacobian()[("h", "c")]), ctx.label("J_h_c"))],
                "LSTM block Jacobian"),
        prose(P["lstm.7"], {"bf": Math(ctx.param(bf.name)),
                            "fhalf": Math(r"%s \approx %s" % (ctx.var("f"), pr.p(sig(0)))),
                            "halfk": Math(r"%s^{k}" % pr.p(sig(0))),
                            "gers": Cite("gers2000", "Gers et al."),
                            "jozefowicz": Cite("jozefowicz2015", "Jozefowicz et al."),
                            "fthree": Math(r"%s \approx %s" % (ctx.var("f"), pr.p(sig(3))))}),
    ]
    if figure:
        out.append(Figure(FIGURE, P["fig.cap"],
                          intro=[prose(P["fig.1"], {"fig": Ref("fig:gradient_flow", "The figure",
                                                                "fig")})],
                          alt="gradient flow"))
    return out


#: The GRU conventions as the Jacobians' subscripts name them (who writes it so).
CONVENTION = {"gru_cho": "Cho", "gru": "PyTorch"}


def gru_blocks(notation, lang="en") -> list:
    P = PROSE[lang]
    cho, pt = (_builtin(n) for n in GRUS)
    cctx, pctx = Ctx.of(cho, notation), Ctx.of(pt, notation)
    z = cctx.var("z")
    rows = []
    for cell, ctx in ((cho, cctx), (pt, pctx)):
        rows.append(Eq(r"\frac{\partial %s}{\partial %s}\Big|_{\text{%s}}"
                       % (ctx.state("h"), ctx.prev("h"), CONVENTION[cell.name]),
                       ctx.rhs(cell.step_jacobian()[("h", "h")]), ctx.label("J_h_h_main")))
    return [
        Heading(1, P["gru.h"], "sec:gru"),
        prose(P["gru.1"], {"cho": Cite("cho2014", "of Cho et al."), "z": Math(z)}),
        Display(forward_eqs(cho, notation), "GRU, Cho et al."),
        prose(P["gru.2"]),
        Display(forward_eqs(pt, notation), "GRU, PyTorch"),
        prose(P["gru.3"], {"dz": Math(cctx.p(DiagMatrix(cho.symbol("z")))), "z": Math(z)}),
        Display(rows, "GRU step Jacobians"),
    ]


def summary_blocks(notation, lang="en") -> list:
    from derive.document.teaching import ELMAN
    P = PROSE[lang]
    e = _builtin(ELMAN)
    ectx = Ctx.of(e, notation)
    c = _builtin(LSTM)
    ctx = Ctx.of(c, notation)
    pr = Ctx.of(None, None)
    W = ectx.param(e.elman_form().matrix.name)
    return [
        Heading(1, P["sum.h"], "sec:summary"),
        prose(P["sum.1"], {"J": Math(ectx.p(e.step_jacobian()[("h", "h")])),
                           "quarter": Math(pr.p(sympy.Rational(1, 4))),
                           "norm": Math(r"\lVert %s \rVert_2" % W)}),
        prose(P["sum.2"], {"df": Math(ctx.p(DiagMatrix(c.symbol("f"))))}),
    ]


def references_blocks(lang="en") -> list:
    return [Bibliography(list(REFERENCES), PROSE[lang]["ref.h"])]
