"""The loop driver of a kernel plan as Python source: buffers, loops and the grouped
matrix products the plan lays out. It holds structure only; where each value lives is read
off the plan's location table (:mod:`derive.codegen.locations`), every formula is printed
from a derived expression."""
from __future__ import annotations

import sympy
from sympy import MatrixSymbol

from derive.codegen.driver_backward import BackwardEmitter, _total
from derive.codegen.exprs import symbols_in
from derive.codegen.ir import Plan
from derive.codegen.locations import hidden_code, param_code, size_code, span
from derive.codegen.mathfn import MathFunction
from derive.printing.numpy_code import BatchNumPyPrinter


class Lines:
    def __init__(self):
        self.lines = []
        self.depth = 0

    def __call__(self, text=""):
        self.lines.append(("    " * self.depth + text) if text else "")

    def indent(self):
        self.depth += 1

    def dedent(self):
        self.depth -= 1

    def text(self):
        return "\n".join(self.lines) + "\n"


class Driver(BackwardEmitter):
    """Emits the loop driver of a plan as Python source."""

    def __init__(self, plan: Plan, prefix: str = ""):
        self.plan = plan
        #: put before the names of the backward and its math functions (``_held_backward``,
        #: ``_held_bwd0``): a second backward of the same module
        self.prefix = prefix
        self.cell = plan.cell
        self.math: dict = {}
        self.state_index = {s: k for k, s in enumerate(self.cell.states)}
        self.loc = plan.locations          # where every value lives (place_values)

    # -- common ----------------------------------------------------------------------
    def _add_math(self, name, stage_inputs, assigns, outputs):
        if not assigns:
            return None
        f = MathFunction(name, list(stage_inputs), list(assigns), list(outputs))
        self.math[name] = f
        return f

    def _weight_code(self, w):
        """Code of a slot weight (a parameter, or a product of parameters)."""
        if isinstance(w, MatrixSymbol):
            return param_code(w.name)
        return " @ ".join(param_code(m.name) for m in w.args if hasattr(m, "shape"))

    def _stack(self, L, g, name):
        ws = [self._weight_code(s.weight) for s in g.slots]
        if len(ws) == 1:
            L(f"{name} = {ws[0]}")
        else:
            L(f"{name} = numpy.concatenate(({', '.join(ws)}))")

    def _unpack(self, names):
        return names[0] + "," if len(names) == 1 else ", ".join(names)

    # -- forward -----------------------------------------------------------------------
    def forward(self, L):
        plan = self.plan
        L("def _forward(p, xs, s0):")
        L.indent()
        L('"""Run the recurrence over xs (T, B, D) from the states s0; keep what backward needs."""')
        L("T, B, D = xs.shape")
        L(f"H = {hidden_code(self.cell)}")
        L("dt = s0[0].dtype")
        L("# stacked weights: one matrix product per operand")
        for g in plan.groups:
            self._stack(L, g, f"_W{g.index}")
        hoisted = [g for g in plan.groups if g.hoisted]
        if hoisted:
            L("# products with the input, for the whole sequence at once; time-invariant terms folded in")
        for g in hoisted:
            L(f"_Z{g.index} = (xs.reshape(T * B, D) @ _W{g.index}.T).reshape(T, B, {_total(g.widths)})")
            if any(s.bias for s in g.slots):
                parts = []
                for s in g.slots:
                    if s.bias:
                        parts.append(self._print(sympy.MatAdd(*s.bias, evaluate=False)
                                                 if len(s.bias) > 1 else s.bias[0], self._param_names()))
                    else:
                        parts.append(f"numpy.zeros({size_code(s.sym.shape[0])}, dt)")
                L(f"_Z{g.index} += numpy.concatenate(({', '.join(parts)},))"
                  if len(parts) > 1 else f"_Z{g.index} += {parts[0]}")
        L("# states s_0 .. s_T and the values backward needs, for every step")
        for s, k in self.state_index.items():
            L(f"_S_{k} = numpy.empty((T + 1, B, {size_code(self.cell.state_shapes[s][0])}), dt)")
            L(f"_S_{k}[0] = s0[{k}]")
        for v in plan.stored:
            if self.loc[v].kind == "local":
                L(f"_V_{v.name} = numpy.empty((T, B, {size_code(v.shape[0])}), dt)")
        for g in plan.groups:
            if g.gate_major:
                L(f"# products with {g.operand.name}, gate-major (slot, B, H); activations computed in place")
                L(f"_A{g.index} = numpy.empty((T, {len(g.slots)}, B, {size_code(g.widths[0])}), dt)")
        pre = self._add_math("_pre", plan.pre.inputs, plan.pre.assigns, plan.pre.outputs)
        if pre is not None:
            L("# values that depend on the input only, for the whole sequence")
            args = [self.loc[s].sequence for s in pre.inputs]
            L(f"{self._unpack(['_V_' + v.name for v in pre.outputs])} = _pre({', '.join(args)})")
        L("for t in range(T):")
        L.indent()
        for k, st in enumerate(plan.fwd):
            for g in st.groups:
                self._step_product(L, g)
            for g in st.groups:
                if g.gate_major:
                    self._activate_in_place(L, g)
            f = self._add_math(f"_fwd{k}", st.inputs, st.assigns, st.outputs)
            if f is None:
                continue
            args = [self.loc[s].step for s in f.inputs]
            L(f"{self._unpack(['_v_' + v.name for v in f.outputs])} = _fwd{k}({', '.join(args)})")
            for v in f.outputs:
                if self.loc[v].kind == "state":
                    L(f"{self.loc[v].cached} = _v_{v.name}")
                elif v in plan.stored:
                    L(f"_V_{v.name}[t] = _v_{v.name}")
        L.dedent()
        states = ", ".join(f"_S_{k}" for k in self.state_index.values())
        kept = ", ".join(f'"{v.name}": {self.loc[v].kept}' for v in plan.stored)
        L(f'return {{"cell": CELL, "xs": xs, "S": ({states},), "V": {{{kept}}}}}')
        L.dedent()
        L()

    def kept_dims(self):
        """Dims of each value forward keeps for backward ("T", "B": the sequence axes)."""
        return {v.name: ((size_code(v.shape[0]),) if self.loc[v].kind == "const"
                         else ("T", "B", size_code(v.shape[0]))) for v in self.plan.stored}

    def _step_product(self, L, g):
        """The group's stacked product at step t, plus the hoisted rows paired with it."""
        plan, n = self.plan, len(g.slots)
        L(f"_z{g.index} = {self.loc[g.operand].step} @ _W{g.index}.T")
        hg = plan.groups[g.pair_group] if g.n_paired else None
        full = hg is not None and g.n_paired == n == len(hg.slots)
        if g.gate_major:
            L(f"_a{g.index} = _A{g.index}[t]")
        if g.gate_major and full:
            w = size_code(g.widths[0])
            L(f"numpy.add(_z{g.index}.reshape(B, {n}, {w}).swapaxes(0, 1), "
              f"_Z{hg.index}[t].reshape(B, {n}, {w}).swapaxes(0, 1), out=_a{g.index})")
            return
        if full:
            L(f"_z{g.index} += _Z{hg.index}[t]")
        elif hg is not None:
            L(f"_z{g.index}[:, {span(g.widths, 0, g.n_paired)}] += "
              f"_Z{hg.index}[t, :, {span(hg.widths, g.pair_offset, g.n_paired)}]")
        if g.gate_major:
            L(f"_a{g.index}[...] = _z{g.index}.reshape(B, {n}, {size_code(g.widths[0])}).swapaxes(0, 1)")

    def _activate_in_place(self, L, g):
        """Add each activated slot's extra terms, then apply each activation function once
        to every run of consecutive slots that share it."""
        for j, s in enumerate(g.slots):
            act = s.activation
            if act is not None and act.extra:
                extra = sympy.MatAdd(*act.extra, evaluate=False) if len(act.extra) > 1 else act.extra[0]
                names = {x.name: self.loc[x].step for x in symbols_in(extra)}
                L(f"_a{g.index}[{j}] += {self._print(extra, names)}")
        j = 0
        while j < len(g.slots):
            act = g.slots[j].activation
            if act is None:
                j += 1
                continue
            end = j + 1
            while end < len(g.slots) and g.slots[end].activation is not None \
                    and g.slots[end].activation.function is act.function:
                end += 1
            run = f"_a{g.index}[{j}:{end}]"
            L(f"{act.function.numpy}({run}, out={run})")
            j = end

    def _param_names(self):
        return {p: param_code(p) for p in self.cell.params}

    def _print(self, expr, names):
        return BatchNumPyPrinter({"names": names}).doprint(expr)
