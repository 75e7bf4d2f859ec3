"""Exporter: ``latex/<cell>.tex`` snippets, ``derivations.tex`` (a standalone article) and
``derivations.md`` (the same content with ``$...$`` / ``$$...$$`` math).

Every formula is printed by :mod:`derive.latex_printer` from a derived expression: the cell's
equations, ``step_jacobian()``, ``backward()``, the readout's transpose rule, the activation
bounds (``gamma()`` and the identity ``gamma - f'(u) = a (f(u) - u*)^2`` found by SymPy from
the registered derivative) and the corrections of the seed note (:mod:`derive.seed`). Only
prose and scaffolding (``\\frac{\\partial L}{\\partial ...}``, ``\\sum_{t=1}^{T}``, norms) is
written here.

Document model: a list of blocks (:class:`Heading`, :class:`Para`, :class:`Display`,
:class:`Figure`) rendered twice, to LaTeX and to Markdown.
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass

import sympy
from sympy import DiagMatrix, MatMul, MatrixSymbol

from .algebra import VecPoly, matmul, transpose
from .latex_printer import Eq, LossGradient, align_env, aligned_env, mark, printer, strip_breaks
from .notation import T, Namer, index_latex, notation_map
from .primitives import FUNCTIONS, Elementwise
from .rules import pull_back, sum_cotangents
from .symbols import Adjoint, Param, Var, adjoint_name, prev_name

K = sympy.Symbol("k", integer=True)
FIGURE = "figures/gradient_flow.png"

# ---------------------------------------------------------------------------------------
# document model
# ---------------------------------------------------------------------------------------


@dataclass
class Math:
    """Inline math."""
    tex: str


@dataclass
class Ref:
    """A reference to a labelled equation: ``\\eqref`` in LaTeX, ``text`` in Markdown."""
    label: str
    text: str


@dataclass
class Heading:
    level: int
    text: str
    label: str | None = None


@dataclass
class Para:
    parts: list            # str (prose), Math, Ref


@dataclass
class Display:
    eqs: list              # [Eq]
    comment: str = ""


@dataclass
class Quote:
    """A quotation of LaTeX written by someone else, one row per line (unnumbered)."""
    rows: list


@dataclass
class Figure:
    path: str
    caption: str


def para(*parts):
    return Para(list(parts))


# ---------------------------------------------------------------------------------------
# printing helpers
# ---------------------------------------------------------------------------------------

class Ctx:
    """One cell under one notation: the printer at any step and the symbol names."""

    def __init__(self, cell, notation):
        self.cell = cell
        self.notation = notation
        self.namer = Namer(cell, notation)

    def p(self, expr, time=T) -> str:
        """LaTeX of a derived expression at step ``time``, with break marks."""
        return printer(self.cell, self.notation, time).doprint(expr)

    def var(self, name, time=T) -> str:
        return strip_breaks(self.p(self.cell.symbol(name), time))

    def state(self, s, time=T) -> str:
        return strip_breaks(self.p(Var(s, *self.cell.prev[s].shape), time))

    def prev(self, s, time=T) -> str:
        return strip_breaks(self.p(self.cell.prev[s], time))

    def param(self, name) -> str:
        return self.namer.param(name)

    def label(self, name) -> str:
        return "eq:%s:%s" % (self.cell.name, name)


def _sum_over(index, body_expr_tex, upper="T"):
    return r"\sum_{%s=1}^{%s} %s" % (index, upper, body_expr_tex)


def _wrap_if_sum(expr, tex):
    return r"\bigl(%s\bigr)" % tex if type(expr).__name__ == "MatAdd" else tex


# ---------------------------------------------------------------------------------------
# derived content of one cell
# ---------------------------------------------------------------------------------------

def forward_eqs(cell, notation=None) -> list:
    """``z_t = ...`` for every equation of the step and of the readout."""
    ctx = Ctx(cell, notation)
    return [Eq(strip_breaks(ctx.p(eq.lhs)), ctx.p(eq.rhs), ctx.label(eq.lhs.name))
            for eq in cell.equations + cell.readout]


def jacobian_eqs(ctx) -> list:
    out = []
    for (s, r), block in ctx.cell.step_jacobian().items():
        lhs = r"\frac{\partial %s}{\partial %s}" % (ctx.state(s), ctx.prev(r))
        out.append(Eq(lhs, ctx.p(block), ctx.label("J_%s_%s" % (s, r))))
    return out


def backward_step_eqs(ctx) -> list:
    """Named deltas in evaluation order, then what the step passes back."""
    bw = ctx.cell.backward()
    rows = []
    for sym, expr in bw.outputs():
        if sym.name.startswith("delta_") and sym.name[len("delta_"):] in ctx.cell.params:
            continue
        rows.append(Eq(strip_breaks(ctx.p(sym)), ctx.p(expr), ctx.label(sym.name)))
    return rows


def readout_backward(cell):
    """The readout's transpose rule: ({state: nabla_{s_t} L_t}, {readout param: gradient}),
    with ``nabla_{y_t} L_t`` a leaf for every readout output y."""
    states: dict = {}
    params: dict = {}

    def leaf(e, ct):
        if isinstance(e, Var):
            if e.name not in cell.states:
                raise ValueError(f"cell {cell.name!r}: the readout reads {e.name!r}, which is not "
                                 f"a state; its gradient cannot be printed as a state gradient")
            states[e.name] = states.get(e.name, VecPoly.zero(e.shape)) + ct
        elif isinstance(e, Param):
            params.setdefault(e.name, []).append(ct)
        else:
            raise ValueError(f"cell {cell.name!r}: the readout reads {e.name!r}")

    for eq in cell.readout:
        pull_back(eq.rhs, VecPoly.atom(LossGradient.of(eq.lhs)), leaf)
    out_params = {}
    for name, parts in params.items():
        acc = sum_cotangents(parts, cell.readout_params[name].shape)
        out_params[name] = acc.to_expr() if isinstance(acc, VecPoly) else acc
    return {s: v.to_expr() for s, v in states.items()}, out_params


def loss_gradient(cell, s):
    """nabla_{s_t} L_t: through the readout if there is one, else the loss reads the first
    state (the output h) directly; None when the loss does not read s at step t."""
    if cell.readout:
        return readout_backward(cell)[0].get(s)
    if s == cell.states[0]:
        return LossGradient.of(Var(s, *cell.prev[s].shape))
    return None


def chain_eqs(ctx, time=T) -> list:
    """Delta s_t = nabla_{s_t} L_t + delta^{(t+1)} s_t: what reaches each state from outside."""
    rows = []
    for s in ctx.cell.states:
        lhs = strip_breaks(ctx.p(ctx.cell.backward().incoming[s], time))
        grad = loss_gradient(ctx.cell, s)
        nxt = strip_breaks(ctx.p(Adjoint(adjoint_name(prev_name(s)), *ctx.cell.prev[s].shape),
                                 time + 1))
        rhs = (ctx.p(grad, time) + mark(0) + " + " + nxt) if grad is not None else nxt
        rows.append(Eq(lhs, rhs, ctx.label("Delta_" + s)))
    return rows


def param_grad_eqs(ctx, index=T) -> list:
    """dL/dtheta = sum over steps of the step's contribution, for every parameter."""
    bw = ctx.cell.backward()
    rows = []
    items = list(bw.params.items())
    if ctx.cell.readout:
        items += list(readout_backward(ctx.cell)[1].items())
    for name, expr in items:
        lhs = r"\frac{\partial L}{\partial %s}" % ctx.param(name)
        body = _wrap_if_sum(expr, ctx.p(expr, index))
        rows.append(Eq(lhs, _sum_over(index_latex(index), body), ctx.label("grad_" + name)))
    return rows


# -- activation bounds -------------------------------------------------------------------

class ActivationValue(sympy.Symbol):
    """f(u) as a scalar symbol, printed ``\\sigma(u)``: the variable of the polynomial form of
    a derivative."""

    def __new__(cls, prim):
        obj = sympy.Symbol.__new__(cls, "act_" + prim.name, real=True)
        obj.prim_latex = prim.latex
        return obj

    def _project_latex(self, printer):
        return r"%s(u)" % self.prim_latex


def primitives_of(cell) -> list:
    """The primitives whose derivatives occur in the cell's step Jacobian, in a stable order."""
    found = set()
    for block in cell.step_jacobian().values():
        for a in block.atoms(Elementwise):
            found.add(type(a))
    for e in list(cell.backward().prev_states.values()):
        for a in e.atoms(Elementwise):
            found.add(type(a))
    out = []
    for prim in FUNCTIONS.values():
        if prim.derivative in found:
            out.append(prim)
    return out


@functools.lru_cache(maxsize=None)
def gamma_identity(prim):
    """(p, gamma, a, u_star): the registered derivative as a polynomial p(U) in U = f(u), its
    supremum gamma = prim.gamma(), and gamma - p(U) = a (U - u_star)^2, verified by expansion;
    None when f' is not a polynomial in f (relu)."""
    u = sympy.Symbol("u", real=True)
    U = ActivationValue(prim)
    p = prim.derivative.scalar(u).subs(prim.scalar(u), U)
    if u in p.free_symbols or not p.is_polynomial(U) or sympy.degree(p, U) != 2:
        return None
    gamma = prim.gamma()
    gap = sympy.expand(gamma - p)
    crit = sympy.solve(sympy.diff(p, U), U)
    if len(crit) != 1:
        return None
    a = sympy.Poly(gap, U).LC()
    if sympy.expand(gap - a * (U - crit[0]) ** 2) != 0:
        raise AssertionError(f"{prim.name}: gamma - f' is not a square")
    return p, gamma, a, crit[0]


def bound_eqs(ctx) -> list:
    pr = printer(ctx.cell, ctx.notation)
    rows = []
    for prim in primitives_of(ctx.cell):
        d = prim.derivative.latex + "(u)"
        gamma = prim.gamma()
        ident = gamma_identity(prim)
        if ident is not None:
            p, gamma, a, ustar = ident
            U = ActivationValue(prim)
            if isinstance(p, sympy.Mul):         # the activation first: sigma(u)(1 - sigma(u))
                p = sympy.Mul(*sorted(p.args, key=lambda f: f != U), evaluate=False)
            rows.append(Eq(d, pr.doprint(p), None))
            base = sympy.Add(U, -ustar, evaluate=False) if ustar != 0 else U
            square = sympy.Pow(base, 2, evaluate=False)
            rhs = pr.doprint(sympy.Mul(a, square, evaluate=False) if a != 1 else square)
            rows.append(Eq("%s - %s" % (pr.doprint(gamma), d), rhs + r" \ge 0", None))
        rows.append(Eq(r"\gamma_{%s} = \sup_{u} %s" % (prim.latex, d), pr.doprint(gamma),
                       ctx.label("gamma_" + prim.name)))
    return rows


def _rnn_form(cell):
    """(D, a, W) when the cell has one state and d h_t/d h_{t-1} = diag(D(a)) W, else None."""
    if len(cell.states) != 1:
        return None
    s = cell.states[0]
    block = cell.step_jacobian()[(s, s)]
    if not isinstance(block, MatMul):
        return None
    c, mats = block.as_coeff_matrices()
    if c != 1 or len(mats) != 2 or not isinstance(mats[0], DiagMatrix):
        return None
    v, W = mats[0].args[0], mats[1]
    if not (isinstance(v, Elementwise) and v.is_derivative and isinstance(W, Param)):
        return None
    return v, W


def _primitive_of_derivative(dcls):
    for prim in FUNCTIONS.values():
        if prim.derivative is dcls:
            return prim
    return None


def pascanu_eqs(ctx):
    """||d h_t/d h_k||_2 <= (gamma ||W||_2)^{t-k} from the derived block diag(f'(a)) W."""
    form = _rnn_form(ctx.cell)
    if form is None:
        return None
    v, W = form
    prim = _primitive_of_derivative(type(v))
    gamma = prim.gamma()
    s = ctx.cell.states[0]
    j = sympy.Symbol("j", integer=True)
    pr = printer(ctx.cell, ctx.notation)
    block_j = strip_breaks(ctx.p(ctx.cell.step_jacobian()[(s, s)], j))
    diag_j = strip_breaks(ctx.p(DiagMatrix(v), j))
    Wt = ctx.param(W.name)
    lhs = r"\Bigl\lVert \frac{\partial %s}{\partial %s} \Bigr\rVert_2" % (ctx.state(s), ctx.state(s, K))
    return [
        Eq(lhs, r"\Bigl\lVert \prod_{j=k+1}^{t} %s \Bigr\rVert_2" % block_j, None),
        Eq("", r"\prod_{j=k+1}^{t} \bigl\lVert %s \bigr\rVert_2 \, \lVert %s \rVert_2"
           % (diag_j, Wt), None, rel=r"\le"),
        Eq("", r"\bigl(%s\lVert %s \rVert_2\bigr)^{t-k}"
           % ("" if gamma == 1 else pr.doprint(gamma) + r" \, ", Wt),
           ctx.label("pascanu"), rel=r"\le"),
    ], prim, gamma, W


def bptt_sum_eqs(ctx):
    """The double sum over t and k with the immediate partial, and its contraction, for a cell
    of the RNN form with a readout; None otherwise."""
    form = _rnn_form(ctx.cell)
    if form is None or not ctx.cell.readout:
        return None
    v, W = form
    cell = ctx.cell
    s = cell.states[0]
    ys = [eq.lhs for eq in cell.readout]
    if len(ys) != 1:
        return None
    y = ys[0]
    Wt = ctx.param(W.name)
    h_t, h_k, h_km1 = ctx.state(s), ctx.state(s, K), ctx.prev(s, K)
    y_t = strip_breaks(ctx.p(y))
    j = sympy.Symbol("j", integer=True)
    # d y_t / d h_t from the readout: the transpose of its transpose rule
    grads, _ = readout_backward(cell)
    dy_dh = transpose(_strip_leaf(grads[s], LossGradient.of(y)))
    block_j = strip_breaks(ctx.p(cell.step_jacobian()[(s, s)], j))
    # the immediate partial: d h_k / d a_k (derived) times d a_k / d (W)_{pq} = e_p (h_{k-1})_q
    a_name = _preactivation_of(cell, v)
    dh_da = strip_breaks(ctx.p(cell.jacobian(s, a_name), K))
    right = _right_factor(cell, a_name, W)
    right_k = strip_breaks(ctx.p(right, K))
    rows = [
        Eq(r"\frac{\partial L}{\partial %s}" % Wt,
           r"\sum_{t=1}^{T} \frac{\partial L_t}{\partial %s}" % Wt, None),
        Eq(r"\frac{\partial L_t}{\partial %s}" % Wt,
           r"\sum_{k=1}^{t} \frac{\partial L_t}{\partial %s} \frac{\partial %s}{\partial %s}"
           r" \Bigl(\prod_{j=k+1}^{t} \frac{\partial %s}{\partial %s}\Bigr)"
           r" \frac{\partial^{+} %s}{\partial %s}"
           % (y_t, y_t, h_t, ctx.state(s, j), ctx.prev(s, j), h_k, Wt),
           ctx.label("bptt_sum")),
        Eq(r"\frac{\partial %s}{\partial %s}" % (y_t, h_t), strip_breaks(ctx.p(dy_dh)),
           ctx.label("dy_dh")),
        Eq(r"J_j = \frac{\partial %s}{\partial %s}" % (ctx.state(s, j), ctx.prev(s, j)), block_j,
           ctx.label("J_j")),
        Eq(r"\frac{\partial^{+} %s}{\partial (%s)_{pq}}" % (h_k, Wt),
           r"%s \, e_p \, (%s)_q" % (dh_da, right_k), ctx.label("immediate")),
    ]
    # contracted: the derived step gradient with Delta h_k replaced by the chained product
    bw = cell.backward()
    delta_a = Adjoint(adjoint_name(a_name), *v.shape)
    assign = dict((d.name, e) for d, e in bw.assignments)
    contrib = bw.params[W.name].xreplace({delta_a: assign[delta_a.name]})
    chain = MatrixSymbol("chain", *v.shape)
    contrib = contrib.xreplace({bw.incoming[s]: chain})
    jt = strip_breaks(ctx.p(transpose(cell.step_jacobian()[(s, s)]), j))
    chain_tex = r"J_{k+1}^{\top} \cdots J_{t}^{\top} %s" % strip_breaks(ctx.p(grads[s]))
    body = strip_breaks(ctx.p(contrib, K)).replace(strip_breaks(ctx.p(chain, K)),
                                                   r"\bigl(%s\bigr)" % chain_tex)
    rows.append(Eq(r"\frac{\partial L}{\partial %s}" % Wt,
                   r"\sum_{t=1}^{T} \sum_{k=1}^{t} %s" % body, ctx.label("bptt_matrix")))
    rows.append(Eq(r"J_j^{\top}", jt, ctx.label("J_j_T")))
    return rows


def _strip_leaf(expr, leaf):
    """M for an expression M leaf (a matrix times the leaf vector)."""
    if isinstance(expr, MatMul):
        c, mats = expr.as_coeff_matrices()
        if mats[-1] == leaf:
            return sympy.Mul(c, matmul(*mats[:-1])) if c != 1 else matmul(*mats[:-1])
    raise ValueError("the readout gradient is not a matrix times the loss gradient")


def _preactivation_of(cell, v):
    """The equation name whose symbol is the argument of f'(.) in the step Jacobian."""
    arg = v.arg
    if isinstance(arg, Var):
        return arg.name
    raise ValueError(f"cell {cell.name!r}: f' of a non-variable {arg}")


def _right_factor(cell, a_name, W):
    """The vector W multiplies in the definition of a (h_prev in W_hh h_prev)."""
    for term in sympy.preorder_traversal(cell.definition(a_name)):
        if isinstance(term, MatMul):
            c, mats = term.as_coeff_matrices()
            if len(mats) == 2 and mats[0] == W:
                return mats[1]
    raise ValueError(f"cell {cell.name!r}: {W.name} does not multiply a vector in {a_name}")


def recursion_eqs(ctx):
    """The O(T) recursion in k for an RNN-form cell: Delta h_k, delta a_k, delta h_{k-1}."""
    form = _rnn_form(ctx.cell)
    if form is None:
        return None
    bw = ctx.cell.backward()
    rows = chain_eqs(ctx, K)
    rows = [Eq(e.lhs, e.rhs, ctx.label("rec_" + e.label.rsplit(":", 1)[1])) for e in rows]
    for sym, expr in bw.assignments:
        rows.append(Eq(strip_breaks(ctx.p(sym, K)), ctx.p(expr, K), ctx.label("rec_" + sym.name)))
    for s, expr in bw.prev_states.items():
        sym = Adjoint(adjoint_name(prev_name(s)), *ctx.cell.prev[s].shape)
        rows.append(Eq(strip_breaks(ctx.p(sym, K)), ctx.p(expr, K),
                       ctx.label("rec_" + sym.name)))
    W = form[1]
    expr = bw.params[W.name]
    rows.append(Eq(r"\frac{\partial L}{\partial %s}" % ctx.param(W.name),
                   _sum_over("k", ctx.p(expr, K)), ctx.label("rec_grad_" + W.name)))
    return rows


# ---------------------------------------------------------------------------------------
# assembling a cell
# ---------------------------------------------------------------------------------------

def cell_blocks(cell, notation=None) -> list:
    """Every block of one cell's section."""
    ctx = Ctx(cell, notation)
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
                    Math(", ".join(strip_breaks(ctx.p(Adjoint(adjoint_name(prev_name(s)),
                                                               *cell.prev[s].shape)))
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
                                                                    printer().doprint(1 / gamma))),
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


# ---------------------------------------------------------------------------------------
# the whole document
# ---------------------------------------------------------------------------------------

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


def seed_blocks(cells, notation) -> list:
    """The seed note's statements: the quotation, the verdict, the derived correction."""
    try:
        from .seed import SEED_CLAIMS
    except ImportError:                                    # pragma: no cover
        return []
    from .registry import cell as builtin
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
        if getattr(claim, "quote_note", ""):
            out.append(para(claim.quote_note))
        out.append(para(claim.explanation))
        corr = _corrected(claim, builtin)
        if corr is not None:
            c = builtin(claim.cell) if getattr(claim, "cell", None) else None
            ctx = Ctx(c, notation)
            exprs = list(corr) if isinstance(corr, (tuple, list)) else [corr]
            rows = []
            for n, e in enumerate(exprs):
                if isinstance(e, tuple) and len(e) == 2:
                    lhs, e = e
                else:
                    lhs = (_derived_lhs(ctx, e) or _derived_lhs_anywhere(e, notation, builtin)
                           or getattr(claim, "corrected_lhs_latex", None))
                tex = ctx.p(e) if c is not None else printer(None, notation).doprint(e)
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


def _corrected(claim, lookup):
    """``claim.corrected()``; also accepts the form ``corrected(cell_lookup)``."""
    try:
        return claim.corrected()
    except TypeError:
        return claim.corrected(lookup)


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
        if expr == e and not sym.name[len("delta_"):] in cell.params:
            return strip_breaks(ctx.p(sym))
    return None


def _derived_lhs_anywhere(expr, notation, lookup):
    """:func:`_derived_lhs` in the first built-in cell that derives ``expr``."""
    from .registry import cells as builtin_names
    for name in builtin_names():
        lhs = _derived_lhs(Ctx(lookup(name), notation), expr)
        if lhs:
            return lhs
    return None


def _seed_refs(claim, names):
    """References into the cells' sections for the claims they derive in full."""
    table = {
        "seed.bptt": ("rnn_sigmoid", ["bptt_sum", "bptt_matrix", "rec_Delta_h"]),
        "seed.bptt.immediate_partial": ("rnn_sigmoid", ["immediate", "bptt_matrix"]),
        "seed.bptt.total_loss": ("rnn_sigmoid", ["bptt_sum"]),
        "seed.bptt.product_order": ("rnn_sigmoid", ["bptt_sum"]),
        "seed.rnn_jacobian": ("rnn_sigmoid", ["J_h_h"]),
        "seed.sigmoid_range": ("rnn_sigmoid", ["gamma_sigmoid"]),
        "seed.vanishing": ("rnn_sigmoid", ["pascanu"]),
        "seed.lstm_cell_jacobian": ("lstm_peephole", ["J_c_c", "J_h_c"]),
        "seed.lstm_equations": ("lstm_peephole", ["ibar"]),
    }
    if claim.id not in table:
        return []
    cname, labels = table[claim.id]
    if cname not in names:
        return []
    out = []
    for i, lab in enumerate(labels):
        if i:
            out.append(", ")
        out.append(Ref("eq:%s:%s" % (cname, lab), "%s, equation %s" % (cname, lab)))
    return out


#: The article presents the seed note's cells first, in the note's order, then the others
#: by name (a reading order, not math).
READING_ORDER = ("rnn_sigmoid", "rnn_tanh", "lstm_peephole", "lstm_peephole_full", "lstm")


def reading_order(cells) -> list:
    rank = {name: k for k, name in enumerate(READING_ORDER)}
    return sorted(cells, key=lambda c: (rank.get(c.name, len(rank)), c.name))


def document_blocks(cells, notation=None, figure=False, per_cell=None) -> list:
    """The article: conventions, one section per cell, the figure, the seed note."""
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

_TEX_ESCAPE = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
               "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
               "^": r"\textasciicircum{}"}


def tex_text(s: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in s)


def md_text(s: str) -> str:
    """Prose for Markdown: escape what could start emphasis, code, links, HTML or math
    (an underscore only where it could open emphasis, not inside a word like W_hh)."""
    out = []
    for i, ch in enumerate(s):
        if ch in "\\*`[]<$" or (ch == "_" and (i == 0 or not s[i - 1].isalnum())):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _tex_para(p):
    out = []
    for part in p.parts:
        if isinstance(part, Math):
            out.append("$%s$" % part.tex)
        elif isinstance(part, Ref):
            out.append(r"\eqref{%s}" % part.label)
        else:
            out.append(tex_text(part))
    return "".join(out)


def _md_para(p):
    out = []
    for part in p.parts:
        if isinstance(part, Math):
            out.append("$%s$" % part.tex)
        elif isinstance(part, Ref):
            out.append("(%s)" % md_text(part.text))
        else:
            out.append(md_text(part))
    return "".join(out)


def render_tex(blocks, title) -> str:
    out = [
        "% Generated by python -m derive (rnn-calculus) from derive/cells; do not edit.",
        r"\documentclass[10pt]{article}",
        r"\usepackage{amsmath}",
        r"\usepackage{amssymb}",
        r"\usepackage{graphicx}",
        r"\allowdisplaybreaks",
        r"\sloppy",
        r"\title{%s}" % tex_text(title),
        r"\author{rnn-calculus}",
        r"\date{}",
        r"\begin{document}",
        r"\maketitle",
        r"\tableofcontents",
        "",
    ]
    for b in blocks:
        if isinstance(b, Heading):
            cmd = {1: "section", 2: "subsection"}.get(b.level, "subsubsection")
            out.append(r"\%s{%s}" % (cmd, tex_text(b.text)) +
                       (r"\label{%s}" % b.label if b.label else ""))
        elif isinstance(b, Para):
            out.append(_tex_para(b))
        elif isinstance(b, Display):
            out.append(align_env(b.eqs).rstrip("\n"))
        elif isinstance(b, Quote):
            out.append("\\begin{gather*}\n" + " \\\\\n".join(b.rows) + "\n\\end{gather*}")
        elif isinstance(b, Figure):
            out.append(r"\IfFileExists{%s}{" % b.path)
            out.append(r"\section{Gradient flow}\label{sec:flow}")
            out.append(r"\begin{figure}[htbp]\centering")
            out.append(r"\includegraphics[width=\linewidth]{%s}" % b.path)
            out.append(r"\caption{%s}\label{fig:gradient_flow}" % tex_text(b.caption))
            out.append(r"\end{figure}}{}")
        out.append("")
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"


def render_md(blocks, title, figure=False) -> str:
    out = ["<!-- Generated by python -m derive (rnn-calculus) from derive/cells; do not edit. -->",
           "", "# " + md_text(title), ""]
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * (b.level + 1) + " " + md_text(b.text))
        elif isinstance(b, Para):
            out.append(_md_para(b))
        elif isinstance(b, Display):
            out.append("$$\n" + aligned_env(b.eqs) + "\n$$")
        elif isinstance(b, Quote):
            out.append("$$\n\\begin{gathered}\n" + " \\\\\n".join(b.rows) +
                       "\n\\end{gathered}\n$$")
        elif isinstance(b, Figure):
            if not figure:
                continue
            out.append("## Gradient flow\n")
            out.append("![%s](%s)" % (md_text(b.caption), b.path))
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


TITLE = "Recurrent cells: equations, Jacobians, backpropagation through time and bounds"


def _figure_exported(options) -> bool:
    """Whether figures/gradient_flow.png is among the files of this run."""
    files = getattr(options, "files", None)
    if files is not None:
        return FIGURE in files
    from .exporters import EXPORTERS
    return "derive.export_flow" in EXPORTERS and importlib.util.find_spec("matplotlib") is not None


def export(cells, options) -> dict:
    notation = getattr(options, "notation", None)
    notation_map(notation)
    per_cell = {c.name: cell_blocks(c, notation) for c in cells}
    files = {"latex/%s.tex" % c.name: cell_snippet(c, notation, per_cell[c.name]) for c in cells}
    blocks = document_blocks(cells, notation, figure=True, per_cell=per_cell)
    files["derivations.tex"] = render_tex(blocks, TITLE)
    files["derivations.md"] = render_md(blocks, TITLE, figure=_figure_exported(options))
    return files


# ---------------------------------------------------------------------------------------
# --pdf
# ---------------------------------------------------------------------------------------

TEX_ENGINE = "pdflatex"
INSTALL_HINT = ("install a TeX engine: Debian/Ubuntu 'apt-get install texlive-latex-base "
                "texlive-latex-recommended', macOS 'brew install --cask mactex-no-gui', "
                "Windows MiKTeX (https://miktex.org)")


class PdfError(RuntimeError):
    """No TeX engine, or the document did not compile; the message says which and what to do."""


def compile_pdf(out_dir) -> str:
    """Compile ``out_dir/derivations.tex`` with pdflatex (twice, for the references and the
    table of contents) in a scratch directory; move only ``derivations.pdf`` into ``out_dir``."""
    import os
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    engine = shutil.which(TEX_ENGINE)
    if engine is None:
        raise PdfError(f"--pdf needs {TEX_ENGINE}, which is not on PATH; {INSTALL_HINT}")
    out = Path(out_dir)
    src = out / "derivations.tex"
    if not src.is_file():
        raise PdfError(f"{src} does not exist; run python -m derive --out {out_dir} first")
    with tempfile.TemporaryDirectory(prefix="derive-pdf-") as tmp:
        shutil.copy(src, Path(tmp) / src.name)
        fig = out / FIGURE
        if fig.is_file():
            (Path(tmp) / FIGURE).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(fig, Path(tmp) / FIGURE)
        for _ in range(4):                  # until the references and contents settle
            r = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error",
                                src.name], cwd=tmp, capture_output=True, text=True,
                               errors="replace", timeout=600)
            log = (Path(tmp) / "derivations.log")
            text = log.read_text(errors="replace") if log.is_file() else r.stdout
            if r.returncode != 0:
                first = next((ln for ln in text.splitlines() if ln.startswith("!")),
                             f"{TEX_ENGINE} exited with status {r.returncode}")
                raise PdfError(f"{TEX_ENGINE} failed on {src}: {first.lstrip('! ')}")
            if "Rerun to get" not in text:
                break
        target = out / "derivations.pdf"
        staged = out / ".derivations.pdf.tmp"
        shutil.copy(Path(tmp) / "derivations.pdf", staged)
        os.replace(staged, target)
    return str(target)
