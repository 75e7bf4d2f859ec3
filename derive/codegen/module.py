"""Kernel source for a cell: math functions through ``sympy.lambdify`` plus the loop driver.

The kernel of a cell has two parts:

* **math functions** (``_fwd0``, ``_bwd0``, ``_jac``, ...): straight-line elementwise code of one
  stage of a step, built by ``sympy.lambdify`` from the plan's derived expressions with
  :class:`~derive.printing.numpy_code.BatchNumPyPrinter` and a hash-consing CSE (every repeated
  subtree is computed once);
* **the driver**: loops, buffers and the grouped matrix products the plan
  (:mod:`derive.codegen.plan`) lays out. It holds structure only: which stacked product to
  run, which slice to pass where, what to store for the backward pass. Every formula it
  contains is printed from a derived expression.

:func:`generate` returns both; :mod:`derive.codegen.runtime` runs them in memory and
:mod:`derive.export.kernels` writes them, with the primitives and support code, as one
NumPy-only module. Both routes execute the same code, so they give identical results.
"""
from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass
from functools import cached_property

import sympy
from sympy import MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive.codegen import support as kernel_support
from derive.codegen import np_primitives as numpy_primitives
from derive.codegen.plan import Plan, Var, build_plan, rebuild, safe_name
from derive.codegen.plan import symbols_in as _symbols
from derive.printing.numpy_code import BatchNumPyPrinter
from derive.codegen.pysource import check_cell_names
from derive.core.symbols import H, Adjoint, Incoming, Input, Param, PrevState

GENERATOR_VERSION = 4
PRIMITIVE_NAMES = [n for n, v in vars(numpy_primitives).items()
                   if callable(v) and getattr(v, "__module__", "") == numpy_primitives.__name__]
SUPPORT_NAMES = [n for n, v in vars(kernel_support).items()
                 if callable(v) and getattr(v, "__module__", "") == kernel_support.__name__]


# ---------------------------------------------------------------------------------------
# math functions
# ---------------------------------------------------------------------------------------

def hashcons(assigns):
    """Common-subexpression elimination by hash-consing: a subtree that occurs twice among
    the assignments is computed once into a temporary ``_t<k>`` (an assignment's own symbol
    when the subtree is a whole right-hand side)."""
    counts: Counter = Counter()

    def leaf(e):
        return (isinstance(e, (MatrixSymbol, OneMatrix, ZeroMatrix)) or not hasattr(e, "shape")
                or (isinstance(e, Transpose) and isinstance(e.arg, MatrixSymbol)))

    def visit(e):
        if leaf(e):
            return
        counts[e] += 1
        if counts[e] == 1:
            for a in e.args:
                visit(a)

    for _, e in assigns:
        visit(e)
    held = {e: sym for sym, e in assigns if not leaf(e) and counts[e] >= 2}
    out, temps = [], {}

    def emit(e):
        if leaf(e):
            return e
        if e in temps:
            return temps[e]
        new = rebuild(e, emit)
        if counts[e] >= 2 and e not in held:
            t = Var(f"_t{len(temps)}", *e.shape)
            temps[e] = t
            out.append((t, new))
            return t
        return new

    for sym, e in assigns:
        if not leaf(e) and e in temps:
            out.append((sym, temps[e]))
            continue
        new = e if leaf(e) else rebuild(e, emit)
        out.append((sym, new))
        if not leaf(e) and counts[e] >= 2:
            temps[e] = sym
    return out


def _rename(e, table):
    """Give symbols whose names are not usable Python identifiers a safe name."""
    if isinstance(e, MatrixSymbol):
        new = safe_name(e.name)
        if new == e.name:
            return e
        if e not in table:
            table[e] = type(e)(new, *e.shape)
        return table[e]
    return rebuild(e, lambda a: _rename(a, table))


def math_namespace():
    """What lambdified math functions may call: numpy and the primitives."""
    import numpy
    ns = {"numpy": numpy}
    ns.update({n: getattr(numpy_primitives, n) for n in PRIMITIVE_NAMES})
    return ns


@dataclass
class MathFunction:
    name: str
    inputs: list
    assigns: list
    outputs: list

    @cached_property
    def function(self):
        """The lambdified function (printed by BatchNumPyPrinter, CSE by hash-consing)."""
        table: dict = {}
        args = [_rename(s, table) for s in self.inputs]
        cses = [(_rename(s, table), _rename(e, table)) for s, e in hashcons(self.assigns)]
        outs = [_rename(s, table) for s in self.outputs]
        fn = sympy.lambdify(args, outs, modules=[math_namespace()], printer=BatchNumPyPrinter(),
                            cse=lambda exprs: (cses, exprs), dummify=False, docstring_limit=0)
        fn.__name__ = self.name
        return fn

    @cached_property
    def source(self) -> str:
        src = inspect.getsource(self.function)
        head, rest = src.split("(", 1)
        assert head == "def _lambdifygenerated", head
        return f"def {self.name}(" + rest


# ---------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------

class _Lines:
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


def _size(n) -> str:
    """Code of a size or offset: a sum of multiples of H and D, such as "2 * H + D" (the
    SymPy symbols H and D print as the driver's locals)."""
    n = sympy.expand(n)
    parts = []
    for d in sorted(n.free_symbols, key=lambda s: (s.name != "H", s.name)):
        c = n.coeff(d)
        parts.append(str(d) if c == 1 else f"{c} * {d}")
    return " + ".join(parts) if parts else str(n)


def _span(widths, j, n=1) -> str:
    """Slice of blocks j .. j+n-1 of a row laid out as blocks of the given widths."""
    a, b = sum(widths[:j], sympy.Integer(0)), sum(widths[:j + n], sympy.Integer(0))
    return f"{'' if a == 0 else _size(a)}:{_size(b)}"


def _cols(j, n=1) -> str:
    """Slice of state blocks j .. j+n-1 (each H wide)."""
    return _span([H] * (j + n), j, n)


def _total(widths) -> str:
    return _size(sum(widths, sympy.Integer(0)))


class Driver:
    """Emits the loop driver of a plan as Python source."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.cell = plan.cell
        self.math: dict = {}
        self.state_index = {s: k for k, s in enumerate(self.cell.states)}
        self.var_state = {v: s for s, v in plan.state_vars.items()}
        self.stored = set(plan.stored)
        self.level = {}
        for v, _ in plan.pre.assigns:
            self.level[v] = -1
        for k, st in enumerate(plan.fwd):
            for v, _ in st.assigns:
                self.level[v] = k
        self.slot_of = {s.sym: s for g in plan.groups for s in g.slots}
        # activations computed in place: output -> (group, block) of the gate-major buffer
        self.act_at = {s.activation.output: (g, j) for g in plan.groups
                       for j, s in enumerate(g.slots) if s.activation is not None}
        # values before the loop that depend on parameters only are constants, not sequences
        self.const = set()
        for v, rhs in plan.pre.assigns:
            if all(isinstance(x, Param) or x in self.const for x in _symbols(rhs)):
                self.const.add(v)

    # -- common ----------------------------------------------------------------------
    def _add_math(self, name, stage_inputs, assigns, outputs):
        if not assigns:
            return None
        f = MathFunction(name, list(stage_inputs), list(assigns), list(outputs))
        self.math[name] = f
        return f

    def _param(self, name):
        return f'p["{name}"]'

    def _weight_code(self, w):
        """Code of a slot weight (a parameter, or a product of parameters)."""
        if isinstance(w, MatrixSymbol):
            return self._param(w.name)
        return " @ ".join(self._param(m.name) for m in w.args if hasattr(m, "shape"))

    def _stack(self, L, g, name):
        ws = [self._weight_code(s.weight) for s in g.slots]
        if len(ws) == 1:
            L(f"{name} = {ws[0]}")
        else:
            L(f"{name} = numpy.concatenate(({', '.join(ws)}))")

    def _operand_seq(self, u):
        """Code of the whole-sequence (T, B, n) array of a group operand."""
        if isinstance(u, Input):
            return "xs"
        if isinstance(u, PrevState):
            return f"_S_{self.state_index[u.name[:-5]]}[:T]"
        if u in self.var_state:
            return f"_S_{self.state_index[self.var_state[u]]}[1:]"
        return f"_V_{u.name}"

    def _leaf_value(self, sym, t):
        """Code of a parameter, the input or a previous state at step t; None for others."""
        if isinstance(sym, Param):
            return self._param(sym.name)
        if isinstance(sym, Input):
            return f"xs[{t}]"
        if isinstance(sym, PrevState):
            return f"_S_{self.state_index[sym.name[:-5]]}[{t}]"
        return None

    def _fwd_value(self, sym, t="t"):
        """Code of a forward value inside the forward loop (or after it, at step t)."""
        leaf = self._leaf_value(sym, t)
        if leaf is not None:
            return leaf
        block = self._gate_block(sym)
        if block is not None:
            return block
        if sym in self.slot_of:
            s = self.slot_of[sym]
            g = self.plan.groups[s.group]
            j = g.slots.index(s)
            if g.hoisted:
                return f"_Z{g.index}[{t}, :, {_span(g.widths, j)}]"
            return f"_z{g.index}[:, {_span(g.widths, j)}]"
        if sym in self.const:
            return f"_V_{sym.name}"
        if self.level.get(sym) == -1:
            return f"_V_{sym.name}[{t}]"
        return f"_v_{sym.name}"

    def _stored_value(self, sym, t="t"):
        """Code of a forward value kept in the cache, at step t."""
        leaf = self._leaf_value(sym, t)
        if leaf is not None:
            return leaf
        if sym in self.var_state:
            return f"_S_{self.state_index[self.var_state[sym]]}[{t} + 1]"
        if sym in self.const:
            return f"_V_{sym.name}"
        return f"_V_{sym.name}[{t}]"

    def _unpack(self, names):
        return names[0] + "," if len(names) == 1 else ", ".join(names)

    # -- forward -----------------------------------------------------------------------
    def forward(self, L):
        plan = self.plan
        L("def _forward(p, xs, s0):")
        L.indent()
        L('"""Run the recurrence over xs (T, B, D) from the states s0; keep what backward needs."""')
        L("T, B, D = xs.shape")
        L("H = s0[0].shape[1]")
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
                        parts.append(f"numpy.zeros({_size(s.sym.shape[0])}, dt)")
                L(f"_Z{g.index} += numpy.concatenate(({', '.join(parts)},))"
                  if len(parts) > 1 else f"_Z{g.index} += {parts[0]}")
        L("# states s_0 .. s_T and the values backward needs, for every step")
        for s, k in self.state_index.items():
            L(f"_S_{k} = numpy.empty((T + 1, B, H), dt)")
            L(f"_S_{k}[0] = s0[{k}]")
        for v in plan.stored:
            if self.level.get(v) != -1 and v not in self.act_at:
                L(f"_V_{v.name} = numpy.empty((T, B, {_size(v.shape[0])}), dt)")
        for g in plan.groups:
            if g.gate_major:
                L(f"# products with {g.operand.name}, gate-major (slot, B, H); activations computed in place")
                L(f"_A{g.index} = numpy.empty((T, {len(g.slots)}, B, {_size(g.widths[0])}), dt)")
        pre = self._add_math("_pre", plan.pre.inputs, plan.pre.assigns, plan.pre.outputs)
        if pre is not None:
            L("# values that depend on the input only, for the whole sequence")
            args = [self._pre_value(s) for s in pre.inputs]
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
            args = [self._fwd_value(s) for s in f.inputs]
            L(f"{self._unpack(['_v_' + v.name for v in f.outputs])} = _fwd{k}({', '.join(args)})")
            for v in f.outputs:
                if v in self.var_state:
                    L(f"_S_{self.state_index[self.var_state[v]]}[t + 1] = _v_{v.name}")
                elif v in self.stored:
                    L(f"_V_{v.name}[t] = _v_{v.name}")
        L.dedent()
        states = ", ".join(f"_S_{k}" for k in self.state_index.values())
        kept = ", ".join(f'"{v.name}": {self._kept_sequence(v)}' for v in plan.stored)
        L(f'return {{"cell": CELL, "xs": xs, "S": ({states},), "V": {{{kept}}}}}')
        L.dedent()
        L()

    def kept_dims(self):
        """Dims of each value forward keeps for backward ("T", "B": the sequence axes)."""
        return {v.name: ((_size(v.shape[0]),) if v in self.const else ("T", "B", _size(v.shape[0])))
                for v in self.plan.stored}

    def _kept_sequence(self, v):
        if v in self.act_at:
            g, j = self.act_at[v]
            return f"_A{g.index}[:, {j}]"
        return f"_V_{v.name}"

    def _step_product(self, L, g):
        """The group's stacked product at step t, plus the hoisted rows paired with it."""
        plan, n = self.plan, len(g.slots)
        L(f"_z{g.index} = {self._step_operand(g.operand)} @ _W{g.index}.T")
        hg = plan.groups[g.pair_group] if g.n_paired else None
        full = hg is not None and g.n_paired == n == len(hg.slots)
        if g.gate_major:
            L(f"_a{g.index} = _A{g.index}[t]")
        if g.gate_major and full:
            w = _size(g.widths[0])
            L(f"numpy.add(_z{g.index}.reshape(B, {n}, {w}).swapaxes(0, 1), "
              f"_Z{hg.index}[t].reshape(B, {n}, {w}).swapaxes(0, 1), out=_a{g.index})")
            return
        if full:
            L(f"_z{g.index} += _Z{hg.index}[t]")
        elif hg is not None:
            L(f"_z{g.index}[:, {_span(g.widths, 0, g.n_paired)}] += "
              f"_Z{hg.index}[t, :, {_span(hg.widths, g.pair_offset, g.n_paired)}]")
        if g.gate_major:
            L(f"_a{g.index}[...] = _z{g.index}.reshape(B, {n}, {_size(g.widths[0])}).swapaxes(0, 1)")

    def _activate_in_place(self, L, g):
        """Add each activated slot's extra terms, then apply each activation function once
        to every run of consecutive slots that share it."""
        for j, s in enumerate(g.slots):
            act = s.activation
            if act is not None and act.extra:
                extra = sympy.MatAdd(*act.extra, evaluate=False) if len(act.extra) > 1 else act.extra[0]
                names = {x.name: self._fwd_value(x) for x in _symbols(extra)}
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

    def _pre_value(self, sym):
        if isinstance(sym, Param):
            return self._param(sym.name)
        if isinstance(sym, Input):
            return "xs"
        if sym in self.slot_of:
            s = self.slot_of[sym]
            g = self.plan.groups[s.group]
            return f"_Z{g.index}[..., {_span(g.widths, g.slots.index(s))}]"
        return f"_V_{sym.name}"

    def _gate_block(self, sym):
        """Code of a value held in a gate-major buffer at step t (an activation computed in
        place, or the product of a slot of a gate-major group); None for other values."""
        if sym in self.act_at:
            g, j = self.act_at[sym]
        elif sym in self.slot_of and self.plan.groups[self.slot_of[sym].group].gate_major:
            g = self.plan.groups[self.slot_of[sym].group]
            j = g.slots.index(self.slot_of[sym])
        else:
            return None
        return f"_a{g.index}[{j}]"

    def _step_operand(self, u):
        block = self._gate_block(u)
        if block is not None:
            return block
        if isinstance(u, PrevState):
            return f"_S_{self.state_index[u.name[:-5]]}[t]"
        if u in self.const:
            return f"_V_{u.name}"
        if self.level.get(u) == -1:
            return f"_V_{u.name}[t]"
        return f"_v_{u.name}"

    def _param_names(self):
        return {p: self._param(p) for p in self.cell.params}

    def _print(self, expr, names):
        return BatchNumPyPrinter({"names": names}).doprint(expr)

    # -- backward ----------------------------------------------------------------------
    def backward(self, L):
        plan = self.plan
        L("def _backward(p, c, dhs, ds, want_dx):")
        L.indent()
        L('"""BPTT through the cached forward pass: (grads, dstate0, dxs or None)."""')
        L('xs = c["xs"]')
        L("T, B, D = xs.shape")
        L("H = ds[0].shape[1]")
        L("dt = ds[0].dtype")
        L(f"{self._unpack([f'_S_{k}' for k in self.state_index.values()])} = c[\"S\"]")
        for v in plan.stored:
            L(f'_V_{v.name} = c["V"]["{v.name}"]')
        need_w = [g for g in plan.groups if g.bstage is not None]
        if need_w:
            L("# stacked weights of the products that carry gradients back within the step")
        for g in need_w:
            self._stack(L, g, f"_W{g.index}")
        L("# adjoints of every product slot, for the whole sequence (weight gradients after the loop)")
        for b, entries in enumerate(plan.buffers):
            L(f"_G{b} = numpy.empty((T, B, {_total(self._buffer_widths(b))}), dt)")
        for k, s in enumerate(self.cell.states):
            L(f"_d_{k} = ds[{k}]")
        zero_states = [s for s, v in plan.prev_out.items() if v is None]
        if zero_states:
            L("_zero = numpy.zeros((B, H), dt)")
        for pname, how in plan.vec_grads.items():
            if how[0] == "step":
                L(f'_acc_{pname} = numpy.zeros({self._pshape(pname)}, dt)')
        for pname, terms in plan.mat_fallback.items():
            L(f'_acc_{pname} = numpy.zeros({self._pshape(pname)}, dt)')
        if plan.dx_step:
            L("_dX = numpy.empty((T, B, D), dt) if want_dx else None")
        out = self.state_index[plan.output_state]
        L("for t in range(T - 1, -1, -1):")
        L.indent()
        for s, k in self.state_index.items():
            L(f"_in_{k} = dhs[t] + _d_{k}" if k == out else f"_in_{k} = _d_{k}")
        pending = {}
        for k, st in enumerate(plan.bwd):
            for g in st.groups:
                L(f"_P{g.index} = _G{g.buffer}[t] @ _W{g.index}")
            for item in st.aliases:
                self._emit_out(L, item, pending)
            if st.lean is not None:
                # the per-step dL/dx_t terms are computed only when they are asked for
                L("if want_dx:")
                L.indent()
            f = self._bwd_call(L, f"_bwdx{k}" if st.lean is not None else f"_bwd{k}", st)
            if st.lean is not None:
                L.dedent()
                L("else:")
                L.indent()
                if self._bwd_call(L, f"_bwd{k}", st.lean) is None:
                    L("pass")
                L.dedent()
            if f is None:
                continue
            for item in st.outs:
                self._emit_out(L, item, pending)
        for s in zero_states:
            L(f"_d_{self.state_index[s]} = _zero")
        L.dedent()
        L("# weight gradients: one product per slot group over all T * B rows")
        L("grads = {}")
        gf = set()
        for g in plan.groups:
            if g.buffer is None:
                continue
            if g.buffer not in gf:
                L(f"_Gf{g.buffer} = _G{g.buffer}.reshape(T * B, {_total(self._buffer_widths(g.buffer))})")
                gf.add(g.buffer)
            seq = self._operand_seq(g.operand)
            L(f"_dW{g.index} = _Gf{g.buffer}.T @ {seq}.reshape(T * B, {_size(g.operand.shape[0])})")
        sums = sorted({how[1] for how in plan.vec_grads.values() if how[0] == "G"})
        for b in sums:
            if b not in gf:
                L(f"_Gf{b} = _G{b}.reshape(T * B, {_total(self._buffer_widths(b))})")
                gf.add(b)
            L(f"_sG{b} = _Gf{b}.sum(axis=0)")
        for pname, psym in self.cell.params.items():
            parts = []
            if psym.shape[1] != 1:
                for g in plan.groups:
                    if g.buffer is None:
                        continue
                    for j, s in enumerate(g.slots):
                        if s.weight == psym and not isinstance(s.adjoint, ZeroMatrix):
                            parts.append(f"_dW{g.index}[{_span(g.widths, j)}]")
                if pname in plan.mat_fallback:
                    parts.append(f"_acc_{pname}")
            else:
                how = plan.vec_grads.get(pname)
                if how is not None and how[0] == "G":
                    parts.append(f"_sG{how[1]}[{_span(self._buffer_widths(how[1]), how[2])}]")
                elif how is not None:
                    parts.append(f"_acc_{pname}")
            if not parts:
                parts = [f"numpy.zeros({self._pshape(pname)}, dt)"]
            expr = " + ".join(parts)
            if len(parts) == 1 and parts[0].startswith("_dW"):
                expr = f"numpy.ascontiguousarray({expr})"
            L(f'grads["{pname}"] = {expr}')
        self._input_gradient(L)
        states = ", ".join(f"_d_{k}.copy()" for k in self.state_index.values())
        L(f"return grads, ({states},), dxs")
        L.dedent()
        L()
        L()

    def _bwd_call(self, L, name, st):
        f = self._add_math(name, st.inputs, st.assigns, st.outputs)
        if f is not None:
            args = [self._bwd_value(s) for s in f.inputs]
            L(f"{self._unpack(['_b_' + s.name for s in f.outputs])} = {name}({', '.join(args)})")
        return f

    def _input_gradient(self, L):
        """dL/dxs (T, B, D) when asked for: each input group's slot adjoints times its stacked
        weights, one product over all T * B rows, plus the per-step terms."""
        plan = self.plan
        L("dxs = None")
        L("if want_dx:")
        L.indent()
        if plan.dx_groups:
            L("# dL/dxs: the input products' adjoints times their stacked weights, all T * B rows at once")
        parts = []
        for g in plan.dx_groups:
            self._stack(L, g, f"_W{g.index}")
            parts.append(f"(_Gf{g.buffer} @ _W{g.index}).reshape(T, B, D)")
        if plan.dx_step:
            parts.append("_dX")
        L(f"dxs = {' + '.join(parts) if parts else 'numpy.zeros(xs.shape, dt)'}")
        L.dedent()

    def _buffer_widths(self, b):
        return [s.sym.shape[0] for _, s in self.plan.buffers[b]]

    def _pshape(self, pname):
        shape = self.cell.params[pname].shape
        return f"({_size(shape[0])},)" if shape[1] == 1 else f"({_size(shape[0])}, {_size(shape[1])})"

    def _emit_out(self, L, item, pending):
        kind, key, sym = item
        val = self._bwd_value(sym)
        if kind == "G":
            b, j = key
            L(f"_G{b}[t, :, {_span(self._buffer_widths(b), j)}] = {val}")
        elif kind == "prev":
            L(f"_d_{self.state_index[key]} = {val}")
        elif kind == "vec":
            L(f"_acc_{key} += {val}.sum(axis=0)")
        elif kind == "dx":
            L("if want_dx:")
            L(f"    _dX[t] = {val}")
        elif kind in ("matL", "matR"):
            pending.setdefault(key, {})[kind] = val
            if len(pending[key]) == 2:
                L(f"_acc_{key[0]} += {pending[key]['matL']}.T @ {pending[key]['matR']}")

    def _bwd_value(self, sym):
        if isinstance(sym, Incoming):
            return f"_in_{self.state_index[sym.name[len('Delta_'):]]}"
        if isinstance(sym, Adjoint):
            if sym.name.startswith("_P") and sym.name[2:].isdigit():
                return sym.name
            return f"_b_{sym.name}"
        return self._stored_value(sym)

    # -- jacobian ----------------------------------------------------------------------
    def jacobian(self, L):
        plan = self.plan
        L("def _jacobian(p, x, s0):")
        L.indent()
        L('"""d s_t / d s_{t-1} (B, S, S), blocks in STATE order, numerator layout."""')
        L("c = _forward(p, x[None], s0)")
        L("B, H = x.shape[0], s0[0].shape[1]")
        L("dt = s0[0].dtype")
        L("t = 0")
        if any(isinstance(s, Input) for s in plan.jac_inputs):
            L('xs = c["xs"]')
        L(f"{self._unpack([f'_S_{k}' for k in self.state_index.values()])} = c[\"S\"]")
        for v in plan.stored:
            L(f'_V_{v.name} = c["V"]["{v.name}"]')
        f = self._add_math("_jac", plan.jac_inputs, plan.jac_assigns, plan.jac_outputs)
        names = self._param_names()
        if f is not None:
            args = [self._stored_value(s) for s in f.inputs]
            L(f"{self._unpack(['_j' + s.name for s in f.outputs])} = _jac({', '.join(args)})")
            names.update({s.name: "_j" + s.name for s in f.outputs})
        n = len(self.cell.states)
        L(f"J = numpy.zeros((B, {_size(n * H)}, {_size(n * H)}), dt)")
        L("_diag = numpy.arange(H)")
        # blocks built by the chain rule through another state's block come after that block
        order = sorted(plan.jac_terms, key=lambda k: k in plan.jac_via)
        for s, r in order:
            rows = _cols(self.state_index[s])
            cols = _cols(self.state_index[r])
            block = f"J[:, {rows}, {cols}]"
            filled = False
            if (s, r) in plan.jac_via:
                u, q = plan.jac_via[(s, r)]
                src = f"J[:, {_cols(self.state_index[u])}, {cols}]"
                qcode = self._print(q, names)
                if not (isinstance(q, sympy.Expr) and q.is_number):
                    qcode += "[..., :, None]"
                L(f"numpy.multiply({qcode}, {src}, out={block})")
                filled = True
            terms = plan.jac_terms[(s, r)]
            # dense terms first (the first one is assigned, not added), then diagonals
            for lead, chain in sorted(terms, key=lambda lc: not lc[1]):
                code = self._term(lead, chain, names)
                if code is None:
                    continue
                if not chain:
                    L(f"{block}[:, _diag, _diag] += {code}")
                else:
                    L(f"{block} {'+=' if filled else '='} {code}")
                    filled = True
        L("return J")
        L.dedent()
        L()
        L()

    def _term(self, lead, chain, names):
        coeff = sympy.Integer(1)
        factors = []
        for item in [lead] + list(chain):
            is_diag = item is lead or not (hasattr(item, "shape") and item.shape[1] != 1)
            if isinstance(item, sympy.Expr) and item.is_number:
                coeff *= item
            elif is_diag:
                factors.append(DiagMatrix(item))
            else:
                factors.append(item)
        if coeff == 0:
            return None
        if not any(not isinstance(f, DiagMatrix) for f in factors):
            # a diagonal block: the product of the diagonals' vectors
            vec = [self._print(f.args[0], names) for f in factors]
            body = " * ".join(vec) if vec else "1"
            return body if coeff == 1 else f"{self._print(coeff, names)} * {body}"
        expr = MatMul(*factors, evaluate=False) if len(factors) > 1 else factors[0]
        code = self._print(expr, names)
        return code if coeff == 1 else f"{self._print(coeff, names)} * ({code})"


# ---------------------------------------------------------------------------------------
# the whole kernel
# ---------------------------------------------------------------------------------------

@dataclass
class Kernel:
    cell: object
    plan: Plan
    math: dict            # name -> MathFunction
    driver: str           # source of the driver and API functions

    def namespace(self):
        """Everything the driver refers to, for running it in memory."""
        import numpy
        ns = {"numpy": numpy}
        ns.update({n: getattr(numpy_primitives, n) for n in PRIMITIVE_NAMES})
        ns.update({n: getattr(kernel_support, n) for n in SUPPORT_NAMES})
        ns.update({name: m.function for name, m in self.math.items()})
        return ns


def generate(cell) -> Kernel:
    """The kernels of ``cell`` (cached per cell object: the exporter, the run-time route and the
    gradient-flow experiment share one generation)."""
    hit = _GENERATED.get(id(cell))
    if hit is not None and hit[0] is cell:
        return hit[1]
    kernel = _generate(cell)
    _GENERATED[id(cell)] = (cell, kernel)
    return kernel


_GENERATED: dict = {}


def _generate(cell) -> Kernel:
    check_cell_names(cell)          # names become identifiers of the generated code
    plan = build_plan(cell)
    d = Driver(plan)
    L = _Lines()
    _constants(L, cell, plan, d.kept_dims())
    d.forward(L)
    d.backward(L)
    d.jacobian(L)
    _api(L, cell)
    return Kernel(cell, plan, dict(sorted(d.math.items(), key=lambda kv: _math_order(kv[0]))),
                  L.text())


def _math_order(name):
    kind = {"_pre": 0, "_fwd": 1, "_bwd": 2, "_bwdx": 3, "_jac": 4}
    head = name.rstrip("0123456789")
    return (kind.get(head, 9), int(name[len(head):] or 0))


def _constants(L, cell, plan, kept):
    params = {n: tuple(str(d) for d in p.shape[:1]) + ((str(p.shape[1]),) if p.shape[1] != 1 else ())
              for n, p in cell.params.items()}
    torch = None
    if cell.torch:
        torch = {k: (list(v) if isinstance(v, list) else v) for k, v in cell.torch.items()}
    L(f"CELL = {cell.name!r}")
    L(f"STATE = {tuple(cell.states)!r}")
    L(f"OUTPUT = {plan.output_state!r}")
    L("PARAMS = {")
    for n, shape in params.items():
        L(f"    {n!r}: {shape!r},")
    L("}")
    if torch is None:
        L("TORCH = None")
    else:
        L("TORCH = {")
        for k, v in torch.items():
            L(f"    {k!r}: {v!r},")
        L("}")
    L(f"_KEPT = {kept!r}")
    L()
    L()


_API = '''
def init_params(input_size, hidden_size, *, rng=None, dtype=numpy.float64):
    """Parameters keyed like PARAMS, uniform in [-1/sqrt(H), 1/sqrt(H)] (as PyTorch)."""
    return _init_params(PARAMS, input_size, hidden_size, rng, dtype)


def _inputs(params, x, state, seq):
    p, dims, dt = _check_params(params, PARAMS)
    H, D = dims["H"], dims.get("D")
    if seq:
        x = _check_array("xs", x, (("T", None), ("B", None), ("D", D)), dt)
        B = x.shape[1]
    else:
        x = _check_array("x", x, (("B", None), ("D", D)), dt)
        B = x.shape[0]
    if state is None:
        s0 = _zero_state(STATE, B, H, dt)
    else:
        s0 = _check_state("state0" if seq else "state", state, STATE, B, H, dt)
    return p, x, s0


def step(params, x, state):
    """One step: x (B, D) and state (arrays (B, H) ordered like STATE) -> the new state."""
    p, x, s0 = _inputs(params, x, state, False)
    c = _forward(p, x[None], s0)
    return tuple(s[1].copy() for s in c["S"])


def forward(params, xs, state0=None):
    """Run xs (T, B, D) from state0 (zeros by default): (hs (T, B, H), cache for backward)."""
    p, xs, s0 = _inputs(params, xs, state0, True)
    c = _forward(p, xs.copy(), s0)      # the cache owns its inputs: changing xs later is safe
    return c["S"][STATE.index(OUTPUT)][1:].copy(), c


def backward(params, cache, dhs, dstate=None, *, return_dxs=False):
    """Full BPTT: dhs (T, B, H) = dL/dhs, dstate = dL/d(final state) (optional).
    Returns (grads keyed like params, dstate0 ordered like STATE), and with return_dxs=True
    also dL/dxs (T, B, D) as a third item (what a layer below needs)."""
    p, dims, dt = _check_params(params, PARAMS)
    T, B = _check_cache(cache, CELL, STATE, _KEPT, dims, dt)
    dhs = _check_array("dhs", dhs, (("T", T), ("B", B), ("H", dims["H"])), dt)
    if dstate is None:
        ds = _zero_state(STATE, B, dims["H"], dt)
    else:
        ds = _check_state("dstate", dstate, STATE, B, dims["H"], dt)
    grads, dstate0, dxs = _backward(p, cache, dhs, ds, bool(return_dxs))
    return (grads, dstate0, dxs) if return_dxs else (grads, dstate0)


def step_jacobian(params, x, state):
    """J[b, i, j] = d s_t[i] / d s_{t-1}[j] (B, S, S), S = H * len(STATE), blocks in STATE order."""
    p, x, s0 = _inputs(params, x, state, False)
    return _jacobian(p, x, s0)
'''

_TORCH_API = '''

def params_from_torch(state_dict):
    """Parameters from a one-layer torch.nn.{module} state dict (tensors or arrays); a
    parameter PyTorch keeps as two biases is their sum."""
    return _params_from_torch(TORCH, PARAMS, state_dict)


def params_to_torch(params):
    """weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0 as NumPy arrays. A parameter that
    PyTorch splits over both biases goes whole into bias_ih_l0; bias_hh_l0 gets zeros there."""
    return _params_to_torch(TORCH, PARAMS, params)
'''


def _api(L, cell):
    L.lines.extend(_API.strip("\n").split("\n"))
    if cell.torch:
        L.lines.extend(_TORCH_API.replace("{module}", cell.torch.get("module", "")).split("\n"))
