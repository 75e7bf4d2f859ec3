"""The derived equations of one cell as display rows (:class:`~derive.printing.latex.Eq`):
forward step, step Jacobian, backward step, the gradient reaching each state, the parameter
gradients. Every right side is printed from a derived expression; only scaffolding
(``\\frac{\\partial L}{\\partial ...}``, ``\\sum_{t=1}^{T}``) is written here."""
from __future__ import annotations

import weakref

import sympy

from derive.printing.latex import Breakable, Eq, ProjectLatexPrinter, Text
from derive.printing.notation import T, Namer, index_latex
from derive.core.symbols import Cotangent, LossGradient, Var, adjoint_name, incoming_name, prev_name

K = sympy.Symbol("k", integer=True)


class Ctx:
    """One cell (or none) under one notation: one :class:`Namer`, and one printer per time
    index sharing it. Use :meth:`of`, which builds each (cell, notation) pair once."""

    _by_cell: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
    _no_cell: dict = {}

    def __init__(self, cell, notation):
        self.cell = cell
        self.notation = notation
        self.namer = Namer(cell, notation)
        self._printers: dict = {}

    @classmethod
    def of(cls, cell, notation) -> "Ctx":
        table = cls._no_cell if cell is None else cls._by_cell.setdefault(cell, {})
        if notation not in table:
            table[notation] = cls(cell, notation)
        return table[notation]

    def printer(self, time=T) -> ProjectLatexPrinter:
        if time not in self._printers:
            self._printers[time] = ProjectLatexPrinter({"namer": self.namer, "time": time})
        return self._printers[time]

    def p(self, expr, time=T) -> str:
        """One-line LaTeX of a derived expression at step ``time``."""
        return self.printer(time).doprint(expr)

    def rhs(self, expr, time=T) -> Breakable:
        """The same with its allowed line breaks: the right side of a display row."""
        return self.printer(time).breakable(expr)

    def var(self, name, time=T) -> str:
        return self.p(self.cell.symbol(name), time)

    def state(self, s, time=T) -> str:
        return self.p(Var(s, *self.cell.prev[s].shape), time)

    def prev(self, s, time=T) -> str:
        return self.p(self.cell.prev[s], time)

    def prev_adjoint(self, s) -> Cotangent:
        """delta^{(t)} s_{t-1}: what the step passes back to state ``s``."""
        return Cotangent(adjoint_name(prev_name(s)), *self.cell.prev[s].shape)

    def param(self, name) -> str:
        return self.namer.param(name)

    def label(self, name) -> str:
        return "eq:%s:%s" % (self.cell.name, name)


def sum_over(index, body: Text, upper="T") -> Breakable:
    return r"\sum_{%s=1}^{%s} " % (index, upper) + Breakable.of(body)


def _wrap_if_sum(expr, tex: Breakable) -> Breakable:
    return r"\bigl(" + tex + r"\bigr)" if isinstance(expr, sympy.MatAdd) else tex


def forward_eqs(cell, notation=None) -> list:
    """``z_t = ...`` for every equation of the step and of the readout."""
    ctx = Ctx.of(cell, notation)
    return [Eq(ctx.p(eq.lhs), ctx.rhs(eq.rhs), ctx.label(eq.lhs.name))
            for eq in cell.equations + cell.readout]


def jacobian_eqs(ctx) -> list:
    out = []
    maps = ctx.cell.jacobian_maps()
    for (s, r), block in ctx.cell.step_jacobian().items():
        lhs = r"\frac{\partial %s}{\partial %s}" % (ctx.state(s), ctx.prev(r))
        out.append(Eq(lhs, ctx.rhs(block), ctx.label("J_%s_%s" % (s, r))))
        if (s, r) in maps:                             # the block as the map the papers write
            t, image = maps[s, r]
            out.append(Eq(lhs + r"\colon\ " + ctx.p(t), ctx.rhs(image),
                          ctx.label("Jmap_%s_%s" % (s, r)), rel=r"\mapsto"))
    return out


def is_param_gradient(cell, sym) -> bool:
    """Whether a backward output is a step parameter's gradient (printed as a sum over t)."""
    return isinstance(sym, Cotangent) and sym.target in cell.params


def backward_step_eqs(ctx) -> list:
    """Named deltas in evaluation order, then what the step passes back."""
    rows = []
    for sym, expr in ctx.cell.backward().outputs():
        if is_param_gradient(ctx.cell, sym):
            continue
        rows.append(Eq(ctx.p(sym), ctx.rhs(expr), ctx.label(sym.name)))
    return rows


def loss_gradient(cell, s):
    """nabla_{s_t} L_t: through the readout if there is one, else the loss reads the first
    state (the output h) directly; None when the loss does not read s at step t."""
    if cell.readout:
        return cell.readout_backward()[0].get(s)
    if s == cell.states[0]:
        return LossGradient.of(Var(s, *cell.prev[s].shape))
    return None


def chain_eqs(ctx, time=T, label_prefix="") -> list:
    """Delta s_t = nabla_{s_t} L_t + delta^{(t+1)} s_t: what reaches each state from outside."""
    rows = []
    for s in ctx.cell.states:
        lhs = ctx.p(ctx.cell.backward().incoming[s], time)
        grad = loss_gradient(ctx.cell, s)
        nxt = ctx.p(ctx.prev_adjoint(s), time + 1)
        rhs = ctx.rhs(grad, time).then(0, " + " + nxt) if grad is not None else nxt
        rows.append(Eq(lhs, rhs, ctx.label(label_prefix + incoming_name(s))))
    return rows


def param_grad_eqs(ctx, index=T) -> list:
    """dL/dtheta = sum over steps of the step's contribution, for every parameter."""
    items = list(ctx.cell.backward().params.items())
    if ctx.cell.readout:
        items += list(ctx.cell.readout_backward()[1].items())
    rows = []
    for name, expr in items:
        lhs = r"\frac{\partial L}{\partial %s}" % ctx.param(name)
        body = _wrap_if_sum(expr, ctx.rhs(expr, index))
        rows.append(Eq(lhs, sum_over(index_latex(index), body), ctx.label("grad_" + name)))
    return rows


def scan_eqs(ctx) -> list | None:
    """The derived affine form of a cell affine in its state: ``A^{(s,r)}_t = diag(a)`` for
    every nonzero block and ``b^{(s)}_t``; None for a cell that is not affine."""
    from derive.core.affine import NotAffine, RightAffineForm, scan_form
    try:
        form = scan_form(ctx.cell)
    except NotAffine:
        return None
    if isinstance(form, RightAffineForm):
        S = ctx.namer.body(form.state)
        return [Eq("M_t", ctx.rhs(form.matrix()), ctx.label("M_" + form.state)),
                Eq("B_t", ctx.rhs(form.offset), ctx.label("B_" + form.state)),
                Eq(r"%s_t" % S, r"%s_{t-1} M_t + B_t" % S, ctx.label("right_affine")),
                Eq(r"(M, B) \bullet (M', B')", r"(M M',\; B M' + B')", ctx.label("combine")),
                Eq(r"\delta %s_{t-1}" % S, r"\delta %s_t M_t^{\top} + g_{t-1}" % S,
                   ctx.label("adjoint_scan"))]
    many = len(ctx.cell.states) > 1
    out = []
    for (s, r), a in form.coeff:
        lhs = r"A^{(%s,\,%s)}_t" % (ctx.namer.body(s), ctx.namer.body(r)) if many else "A_t"
        out.append(Eq(lhs, r"\operatorname{diag}\bigl(%s\bigr)" % ctx.p(a), ctx.label("A_%s_%s" % (s, r))))
    for s, b in form.offset:
        lhs = r"b^{(%s)}_t" % ctx.namer.body(s) if many else "b_t"
        out.append(Eq(lhs, ctx.rhs(b), ctx.label("b_%s" % s)))
    out.append(Eq(r"(A, b) \bullet (A', b')", r"(A' A,\; A' b + b')", ctx.label("combine")))
    out.append(Eq(r"\delta s_{t-1}", r"A_t^{\top} \delta s_t + g_{t-1}", ctx.label("adjoint_scan")))
    return out
