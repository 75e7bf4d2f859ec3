"""The teaching path, part 1: the long-range dependency problem, conventions, the Elman RNN
and its step Jacobian derived step by step, BPTT (double sum, then the O(T) recursion), and
vanishing / exploding gradients (the sigma' bound with its proof, Pascanu's bound, the
counterexample at ||W_hh||_2 >= 4). Prose lives in :data:`PROSE` (one entry per language);
the builders only fill its slots with formulas printed from derived results."""
from __future__ import annotations

import sympy

from derive.core.primitives import FUNCTIONS, gamma_identity
from derive.document.bounds import bound_eqs, bptt_sum_eqs, pascanu_eqs, recursion_eqs
from derive.document.equations import Ctx, forward_eqs
from derive.document.model import Cite, Display, Heading, Math, Ref, prose
from derive.printing.latex import Eq

#: The cell the main text derives the Elman RNN with (the seed note's eq. 1).
ELMAN = "rnn_sigmoid"

PROSE = {"en": {
    "problem.h": "The long-range dependency problem",
    "problem.1": "A recurrent network reads a sequence one step at a time and keeps a state "
                 "that is meant to carry what it has seen. Many tasks need information from far "
                 "back: to guess the last word of “I grew up in France ... I speak fluent "
                 "French”, a model must still know about France many words later, as "
                 "{colah} illustrates. In principle an Elman network can keep that "
                 "information; in practice gradient descent rarely teaches it to, because the "
                 "training signal from a distant step shrinks (or blows up) geometrically on "
                 "its way back ({bengio}; {hochreiter}).",
    "problem.2": "This document follows that argument with every formula derived, not copied: "
                 "the step Jacobian of the Elman RNN, backpropagation through time, the bound "
                 "that makes the signal vanish, and the two changes that let the LSTM and the "
                 "GRU keep it. It answers the question of the seed note, how the LSTM solves the "
                 "RNN's problem, in {summary}.",
    "conv.h": "Conventions",
    "conv.1": "Each cell is defined once (a TOML spec) and every formula below is printed by "
              "the derivation engine from that definition. Vectors are columns; {odot} is the "
              "elementwise product and {diag} the diagonal matrix with {v} on its diagonal. "
              "Jacobians are in numerator layout: row {i} of {dudv} is the gradient of the "
              "component {ui}. The loss is {loss}, where {Lt} depends on step {t} only "
              "through its state.",
    "conv.2": "In a backward step, {Delta} is the gradient reaching a state {s} from outside "
              "the step (its own loss and all later steps), {delta} the gradient with respect "
              "to a quantity {z} of the step, {dprev} the part of the gradient of {sprev} that "
              "flows back through step {t}, and {nabla} the gradient of {Lt} with respect to "
              "{y} alone, a column vector. Notation map: {nm}.",
    "elman.h": "The Elman RNN",
    "elman.1": "The network {elman} computes a pre-activation {a} from the input and the "
               "previous state, applies an elementwise activation, and reads the state out "
               "linearly. The seed note uses the logistic sigmoid {sigma}; implementations "
               "usually use tanh, which changes a constant below but not the argument.",
    "jac.h": "The step Jacobian, step by step",
    "jac.1": "Split the step at the pre-activation. Its dependence on the previous state is "
             "linear, so its Jacobian is the recurrent matrix itself:",
    "jac.2": "The activation acts on each component separately: component {i} of {h} depends "
             "on component {i} of {a} only. Every off-diagonal partial is zero, and the "
             "Jacobian is the diagonal matrix of the derivative, evaluated at the current "
             "pre-activation:",
    "jac.3": "The chain rule multiplies the two in numerator layout, the outer function on "
             "the left. The diagonal factor therefore stands on the left of the recurrent "
             "matrix and is evaluated at step {t}, not at {tm1}:",
    "jac.4": "The transpose belongs to the backward pass. Backpropagation multiplies an "
             "incoming gradient (a column) by the transposed Jacobian, one factor at a "
             "time, and this is exactly the derived backward step:",
    "jac.5": "Pascanu et al. write their eq. (5) with a transposed recurrent matrix; in their "
             "parametrisation the Jacobian has no transpose either, and since the 2-norm of a "
             "matrix equals that of its transpose the bounds below are unaffected.",
    "bptt.h": "Backpropagation through time",
    "bptt.1": "The loss sums over steps, and {Whh} acts at every step. Following "
              "{pascanu} (eqs. 3 to 5), the gradient is a double sum: for each loss term "
              "{Lt} and each earlier step {k}, the path from {Lt} back to step {k}, times the "
              "immediate partial {dplus} (step {k} alone, with the previous state held "
              "fixed). The product of Jacobians is ordered {order} and equals the identity "
              "for {keqt}:",
    "bptt.2": "Evaluated this way the double sum costs {OT2} Jacobian products. The same "
              "gradient follows in {OT} operations by running the backward step for "
              "{kdown}, accumulating what reaches each state:",
    "van.h": "Vanishing and exploding gradients",
    "van.1": "Each factor of the product is a diagonal matrix of activation derivatives times "
             "{Whh}. The derivative of the sigmoid is bounded, and the proof is one line: "
             "written in terms of the activation value, the gap to the bound is a square.",
    "van.2": "For tanh the same computation gives {gtanh}; for the ReLU the derivative is 0 or "
             "1, so {grelu}. Since the 2-norm of a diagonal matrix is its largest entry in "
             "absolute value and the 2-norm is submultiplicative ({pascanu}, section 2.1), for {kt}:",
    "van.3": "Throughout this document the size of the recurrent matrix is measured by its "
             "spectral norm {norm} (its largest singular value). If {small}, every factor "
             "shrinks the gradient by at least {eta}: the contribution of step {k} to the "
             "gradient at step {t} vanishes geometrically in {tk}. This is a sufficient "
             "condition; a large norm is only necessary for exploding gradients, not "
             "sufficient.",
    "van.4": "The bound {sp} alone does not make gradients vanish. A one-unit network shows "
             "it. Take {H1}, {w} and the bias below, with zero input: the state {hstar} is a "
             "fixed point, where the derivative attains its maximum, and every factor equals "
             "{J}. For {wge} the gradient over {k} steps does not vanish; for {wgt} it "
             "explodes:",
}}
PROSE["zh"] = __import__("derive.document.prose_zh", fromlist=["TEACHING"]).TEACHING


def _text(lang):
    return PROSE[lang]


def problem_blocks(ctx_all, lang="en") -> list:
    P = _text(lang)
    return [Heading(1, P["problem.h"], "sec:problem"),
            prose(P["problem.1"], {"colah": Cite("colah2015", "Olah"),
                                   "bengio": Cite("bengio1994", "Bengio et al."),
                                   "hochreiter": Cite("hochreiter1991",
                                                      "Hochreiter")}),
            prose(P["problem.2"], {"summary": Ref("sec:summary", "the summary", "sec")})]


def conventions_blocks(notation, lang="en") -> list:
    from derive.printing.notation import notation_map
    P = _text(lang)
    nm = notation_map(notation)
    return [Heading(1, P["conv.h"], "sec:conventions"),
            prose(P["conv.1"], {"odot": Math(r"\odot"), "diag": Math(r"\operatorname{diag}(v)"),
                                "v": Math("v"), "i": Math("i"),
                                "dudv": Math(r"\partial u / \partial v"), "ui": Math("u_i"),
                                "loss": Math(r"L = \sum_{t=1}^{T} L_t"), "Lt": Math("L_t"),
                                "t": Math("t")}),
            prose(P["conv.2"], {"Delta": Math(r"\Delta s_t"), "s": Math("s_t"),
                                "delta": Math(r"\delta z_t"), "z": Math("z_t"),
                                "dprev": Math(r"\delta^{(t)} s_{t-1}"), "sprev": Math("s_{t-1}"),
                                "t": Math("t"), "nabla": Math(r"\nabla_{y_t} L_t"),
                                "Lt": Math("L_t"), "y": Math("y_t"),
                                "nm": notation_desc(nm, lang)})]


#: The notation maps described in English prose (symbol names are shown by the crosswalk
#: table, not spelled in ASCII here); :data:`prose_zh.NOTATION_DESC` in Chinese.
NOTATION_DESC = {
    "seed": "seed (the seed note's names, as in Graves (2013); time as a subscript)",
    "greff": "greff (Greff et al. (2017): input weights W, recurrent weights R, peepholes p, "
             "block input z, block output y; time as a superscript)",
    "pytorch": "pytorch (the parameter names of PyTorch's documentation, after the quantity "
               "a weight multiplies; the LSTM candidate is g)",
}


def notation_desc(nm, lang="en") -> str:
    """The notation map in use, in the edition's language (its own description otherwise)."""
    from derive.document import prose_zh
    table = prose_zh.NOTATION_DESC if lang == "zh" else NOTATION_DESC
    return table.get(nm.name, "%s (%s)" % (nm.name, nm.description))


def elman_blocks(notation, lang="en") -> list:
    """The Elman RNN, its step Jacobian derived in two factors, and where the transpose goes."""
    from derive.spec.registry import cell as builtin
    P = _text(lang)
    c = builtin(ELMAN)
    ctx = Ctx.of(c, notation)
    form = c.elman_form()
    a = form.preactivation.name
    h = form.state
    J = c.step_jacobian()[(h, h)]
    bw = c.backward()
    back = [Eq(ctx.p(s), ctx.rhs(e), ctx.label("walk_" + s.name))
            for s, e in bw.assignments + list(
                (ctx.prev_adjoint(st), bw.prev_states[st]) for st in c.states)]
    d = lambda of, wrt: r"\frac{\partial %s}{\partial %s}" % (of, wrt)  # noqa: E731
    return [
        Heading(1, P["elman.h"], "sec:elman"),
        prose(P["elman.1"], {"elman": Cite("elman1990", "of Elman"), "a": Math(ctx.var(a)),
                             "sigma": Math(r"\sigma")}),
        Display(forward_eqs(c, notation), "Elman RNN, forward step"),
        Heading(2, P["jac.h"], "sec:step_jacobian"),
        prose(P["jac.1"]),
        Display([Eq(d(ctx.var(a), ctx.prev(h)), ctx.rhs(c.jacobian(a, h)), ctx.label("da_dh"))]),
        prose(P["jac.2"], {"i": Math("i"), "h": Math(ctx.state(h)), "a": Math(ctx.var(a))}),
        Display([Eq(d(ctx.state(h), ctx.var(a)), ctx.rhs(c.jacobian(h, a)), ctx.label("dh_da"))]),
        prose(P["jac.3"], {"t": Math("t"), "tm1": Math("t-1")}),
        Display([Eq(d(ctx.state(h), ctx.prev(h)),          # the chain rule, then its value
                    r"%s %s" % (d(ctx.state(h), ctx.var(a)), d(ctx.var(a), ctx.prev(h))), None),
                 Eq("", ctx.rhs(J), ctx.label("J_h_h"), rel="=")]),
        prose(P["jac.4"]),
        Display(back, "Elman RNN, backward step"),
        prose(P["jac.5"]),
    ]


def bptt_blocks(notation, lang="en") -> list:
    from derive.spec.registry import cell as builtin
    P = _text(lang)
    c = builtin(ELMAN)
    ctx = Ctx.of(c, notation)
    W = ctx.param(c.elman_form().matrix.name)
    h = c.elman_form().state
    return [
        Heading(1, P["bptt.h"], "sec:bptt"),
        prose(P["bptt.1"], {"Whh": Math(W), "pascanu": Cite("pascanu2013", "Pascanu et al."),
                            "Lt": Math("L_t"), "k": Math("k"),
                            "dplus": Math(r"\partial^{+} %s / \partial %s" % (ctx.state(h, sympy.Symbol("k")), W)),
                            "order": Math(r"J_t J_{t-1} \cdots J_{k+1}"), "keqt": Math("k = t")}),
        Display(bptt_sum_eqs(ctx), "BPTT double sum"),
        prose(P["bptt.2"], {"OT2": Math("O(T^2)"), "OT": Math("O(T)"),
                            "kdown": Math(r"k = T, T-1, \dots, 1")}),
        Display(recursion_eqs(ctx), "BPTT recursion"),
    ]


def _counterexample(ctx, prim):
    """A one-unit network at the activation value where f' attains gamma: rows printing
    a fixed point, the pre-activation, the Jacobian and its k-th power."""
    _, gamma, _, ustar = gamma_identity(prim)
    w = sympy.Symbol("w", positive=True)
    b = -w * ustar
    a = sympy.simplify(w * ustar + b)
    assert a == 0 and sympy.simplify(1 / (1 + sympy.exp(-a)) - ustar) == 0, "not a fixed point"
    k = sympy.Symbol("k", integer=True)
    pr = Ctx.of(None, None)
    J = sympy.Mul(gamma, w)
    return w, gamma, [
        Eq("b_h", pr.p(b), None), Eq(r"h_t = h_{t-1}", pr.p(ustar), None),
        Eq("a_t", pr.p(a), None),
        Eq(r"\frac{\partial h_t}{\partial h_{t-1}}", pr.p(J), ctx.label("counter_J")),
        Eq(r"\frac{\partial h_T}{\partial h_{T-k}}", pr.p(sympy.Pow(J, k)),
           ctx.label("counter_k"))]


def vanishing_blocks(notation, lang="en") -> list:
    from derive.spec.registry import cell as builtin
    P = _text(lang)
    c = builtin(ELMAN)
    ctx = Ctx.of(c, notation)
    pr = Ctx.of(None, None)
    rows, prim, gamma, W = pascanu_eqs(ctx)
    Wt = ctx.param(W.name)
    norm = r"\lVert %s \rVert_2" % Wt
    w, g, counter = _counterexample(ctx, prim)
    thr = pr.p(1 / gamma)
    return [
        Heading(1, P["van.h"], "sec:vanishing"),
        prose(P["van.1"], {"Whh": Math(Wt)}),
        Display(bound_eqs(ctx), "sigmoid derivative bound"),
        prose(P["van.2"], {"gtanh": Math(r"\gamma_{\tanh} = %s" % pr.p(FUNCTIONS["tanh"].gamma())),
                           "grelu": Math(r"\gamma_{\mathrm{ReLU}} = %s" % pr.p(FUNCTIONS["relu"].gamma())),
                           "pascanu": Cite("pascanu2013", "Pascanu et al."),
                           "kt": Math("k < t")}),
        Display(rows, "Pascanu bound"),
        prose(P["van.3"], {"norm": Math(norm), "small": Math(r"%s < %s" % (norm, thr)),
                           "eta": Math(r"%s \, %s < 1" % (pr.p(gamma), norm)),
                           "k": Math("k"), "t": Math("t"), "tk": Math("t-k")}),
        prose(P["van.4"], {"sp": Math(r"\sigma' \le %s" % pr.p(gamma)), "H1": Math("H = 1"),
                           "w": Math(r"%s = %s" % (Wt, pr.p(w))),
                           "hstar": Math(r"h_t = %s" % pr.p(gamma_identity(prim)[3])),
                           "J": Math(pr.p(sympy.Mul(g, w))), "k": Math("k"),
                           "wge": Math(r"%s = %s" % (norm, thr)),
                           "wgt": Math(r"%s > %s" % (norm, thr))}),
        Display(counter, "counterexample"),
    ]
