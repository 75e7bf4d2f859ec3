"""The bounds and the BPTT forms of a cell as display rows: the activation bounds (gamma and
the identity ``gamma - f'(u) = a (f(u) - u*)^2``, :func:`derive.core.primitives.gamma_identity`),
Pascanu's bound, the BPTT double sum and its O(T) recursion. The last three apply to a cell
of Elman form (:meth:`derive.core.cell.Cell.elman_form`)."""
from __future__ import annotations

import sympy
from sympy import DiagMatrix, MatMul, MatrixSymbol

from derive.core.algebra import matmul, transpose
from derive.document.equations import K, Ctx, chain_eqs, sum_over
from derive.printing.latex import Eq
from derive.core.primitives import FUNCTIONS, ActivationValue, Elementwise, gamma_identity
from derive.core.symbols import Cotangent, LossGradient, Var, adjoint_name



class ChainedGradient(MatrixSymbol):
    """A leaf standing for the gradient chained back from step t to step k; it prints as that
    product (its name is the product's LaTeX), so a derived expression holding it prints whole,
    with no text patched afterwards."""

    def _project_latex(self, printer):          # the project printer's printmethod
        return r"\bigl(%s\bigr)" % self.name

def primitives_of(cell) -> list:
    """The primitives whose derivatives occur in the cell's step Jacobian, in a stable order."""
    found = set()
    for block in cell.step_jacobian().values():
        for a in block.atoms(Elementwise):
            found.add(type(a))
    for e in list(cell.backward().prev_states.values()):
        for a in e.atoms(Elementwise):
            found.add(type(a))
    return [prim for prim in FUNCTIONS.values() if prim.derivative in found]


def bound_eqs(ctx) -> list:
    pr = Ctx.of(ctx.cell, ctx.notation).printer()
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


def pascanu_eqs(ctx):
    """||d h_t/d h_k||_2 <= (gamma ||W||_2)^{t-k} from the derived block diag(f'(a)) W:
    (rows, primitive, gamma, W), or None when the cell is not of Elman form."""
    form = ctx.cell.elman_form()
    if form is None:
        return None
    v, W = form.derivative, form.matrix
    gamma = form.primitive.gamma()
    s = form.state
    j = sympy.Symbol("j", integer=True)
    block_j = ctx.p(ctx.cell.step_jacobian()[(s, s)], j)
    diag_j = ctx.p(DiagMatrix(v), j)
    Wt = ctx.param(W.name)
    lhs = r"\Bigl\lVert \frac{\partial %s}{\partial %s} \Bigr\rVert_2" % (ctx.state(s), ctx.state(s, K))
    return [
        Eq(lhs, r"\Bigl\lVert \prod_{j=k+1}^{t} %s \Bigr\rVert_2" % block_j, None),
        Eq("", r"\prod_{j=k+1}^{t} \bigl\lVert %s \bigr\rVert_2 \, \lVert %s \rVert_2"
           % (diag_j, Wt), None, rel=r"\le"),
        Eq("", r"\bigl(%s\lVert %s \rVert_2\bigr)^{t-k}"
           % ("" if gamma == 1 else ctx.p(gamma) + r" \, ", Wt),
           ctx.label("pascanu"), rel=r"\le"),
    ], form.primitive, gamma, W


def _preactivation_name(cell, form) -> str:
    """The equation whose symbol is the argument of f'(.) in the step Jacobian."""
    arg = form.preactivation
    if isinstance(arg, Var):
        return arg.name
    raise ValueError(f"cell {cell.name!r}: f' of a non-variable {arg}")


def bptt_sum_eqs(ctx):
    """The double sum over t and k with the immediate partial, and its contraction, for a cell
    of Elman form with a readout of one output; None otherwise."""
    cell = ctx.cell
    form = cell.elman_form()
    if form is None or not cell.readout or len(cell.readout) != 1:
        return None
    v, W, s = form.derivative, form.matrix, form.state
    y = cell.readout[0].lhs
    Wt = ctx.param(W.name)
    h_t, h_k = ctx.state(s), ctx.state(s, K)
    y_t = ctx.p(y)
    j = sympy.Symbol("j", integer=True)
    # d y_t / d h_t from the readout: the transpose of its transpose rule
    grads, _ = cell.readout_backward()
    dy_dh = transpose(_strip_leaf(grads[s], LossGradient.of(y)))
    block_j = ctx.p(cell.step_jacobian()[(s, s)], j)
    # the immediate partial: d h_k / d a_k (derived) times d a_k / d (W)_{pq} = e_p (h_{k-1})_q
    a_name = _preactivation_name(cell, form)
    dh_da = ctx.p(cell.jacobian(s, a_name), K)
    right_k = ctx.p(_right_factor(cell, a_name, W), K)
    rows = [
        Eq(r"\frac{\partial L}{\partial %s}" % Wt,
           r"\sum_{t=1}^{T} \frac{\partial L_t}{\partial %s}" % Wt, None),
        Eq(r"\frac{\partial L_t}{\partial %s}" % Wt,
           r"\sum_{k=1}^{t} \frac{\partial L_t}{\partial %s} \frac{\partial %s}{\partial %s}"
           r" \Bigl(\prod_{j=k+1}^{t} \frac{\partial %s}{\partial %s}\Bigr)"
           r" \frac{\partial^{+} %s}{\partial %s}"
           % (y_t, y_t, h_t, ctx.state(s, j), ctx.prev(s, j), h_k, Wt),
           ctx.label("bptt_sum")),
        Eq(r"\frac{\partial %s}{\partial %s}" % (y_t, h_t), ctx.p(dy_dh),
           ctx.label("dy_dh")),
        Eq(r"J_j = \frac{\partial %s}{\partial %s}" % (ctx.state(s, j), ctx.prev(s, j)), block_j,
           ctx.label("J_j")),
        Eq(r"\frac{\partial^{+} %s}{\partial (%s)_{pq}}" % (h_k, Wt),
           r"%s \, e_p \, (%s)_q" % (dh_da, right_k), ctx.label("immediate")),
    ]
    # contracted: the derived step gradient with Delta h_k replaced by the chained product
    bw = cell.backward()
    delta_a = Cotangent(adjoint_name(a_name), *v.shape)
    assign = dict((d.name, e) for d, e in bw.assignments)
    contrib = bw.params[W.name].xreplace({delta_a: assign[delta_a.name]})
    jt = ctx.p(transpose(cell.step_jacobian()[(s, s)]), j)
    chain_tex = r"J_{k+1}^{\top} \cdots J_{t}^{\top} %s" % ctx.p(grads[s])
    contrib = contrib.xreplace({bw.incoming[s]: ChainedGradient(chain_tex, *v.shape)})
    body = ctx.p(contrib, K)
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


def _right_factor(cell, a_name, W):
    """The vector W multiplies in the definition of a (h_prev in W_hh h_prev)."""
    for term in sympy.preorder_traversal(cell.definition(a_name)):
        if isinstance(term, MatMul):
            c, mats = term.as_coeff_matrices()
            if len(mats) == 2 and mats[0] == W:
                return mats[1]
    raise ValueError(f"cell {cell.name!r}: {W.name} does not multiply a vector in {a_name}")


def recursion_eqs(ctx):
    """The O(T) recursion in k for a cell of Elman form: Delta h_k, delta a_k, delta h_{k-1}."""
    form = ctx.cell.elman_form()
    if form is None:
        return None
    bw = ctx.cell.backward()
    rows = chain_eqs(ctx, K, label_prefix="rec_")
    for sym, expr in bw.assignments:
        rows.append(Eq(ctx.p(sym, K), ctx.rhs(expr, K), ctx.label("rec_" + sym.name)))
    for s, expr in bw.prev_states.items():
        sym = ctx.prev_adjoint(s)
        rows.append(Eq(ctx.p(sym, K), ctx.rhs(expr, K),
                       ctx.label("rec_" + sym.name)))
    W = form.matrix
    rows.append(Eq(r"\frac{\partial L}{\partial %s}" % ctx.param(W.name),
                   sum_over("k", ctx.rhs(bw.params[W.name], K)), ctx.label("rec_grad_" + W.name)))
    return rows
