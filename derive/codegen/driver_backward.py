"""The backward pass and the step Jacobian of the loop driver (a mixin of
:class:`derive.codegen.driver.Driver`): BPTT over the cached forward pass with the grouped
products ``G_t W_stack``, weight gradients as one product per group after the loop."""
from __future__ import annotations

import sympy
from sympy import MatMul, OneMatrix, ZeroMatrix
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive.codegen.ir import (FromBuffer, InputDelta, OuterLeft, OuterRight, PerStep,
                               PrevDelta, SlotAdjoint, VecGrad)
from derive.codegen.locations import hidden_code, size_code, span
from derive.core.algebra import apply_constant, hadamard
from derive.core.matrixstate import Factor
from derive.core.symbols import H, Input, Var


def _cols(j, n=1) -> str:
    """Slice of state blocks j .. j+n-1 (each H wide)."""
    return span([H] * (j + n), j, n)


def _total(widths) -> str:
    return size_code(sum(widths, sympy.Integer(0)))


class BackwardEmitter:
    """backward() and jacobian() of the driver; needs self.plan, self.loc, self.state_index,
    self._add_math, self._stack, self._unpack, self._print, self._param_names."""

    # -- backward ----------------------------------------------------------------------
    def backward(self, L):
        plan = self.plan
        L(f"def _{self.prefix}backward(p, c, dhs, ds, want_dx):")
        L.indent()
        L('"""BPTT through the cached forward pass: (grads, dstate0, dxs or None)."""')
        L('xs = c["xs"]')
        L("T, B, D = xs.shape")
        L(f"H = {hidden_code(self.cell, 'ds')}")
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
            if isinstance(how, PerStep):
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
            for out in st.aliases:
                self._emit_out(L, out, pending)
            if st.lean is not None:
                # the per-step dL/dx_t terms are computed only when they are asked for
                L("if want_dx:")
                L.indent()
            f = self._bwd_call(L, f"_{self.prefix}bwdx{k}" if st.lean is not None
                               else f"_{self.prefix}bwd{k}", st)
            if st.lean is not None:
                L.dedent()
                L("else:")
                L.indent()
                if self._bwd_call(L, f"_{self.prefix}bwd{k}", st.lean) is None:
                    L("pass")
                L.dedent()
            if f is None:
                continue
            for out in st.outs:
                self._emit_out(L, out, pending)
        for s in zero_states:
            L(f"_d_{self.state_index[s]} = numpy.zeros((B, {size_code(self.cell.state_shapes[s][0])}), dt)"
              if tuple(self.cell.state_shapes[s]) != (H, 1) else f"_d_{self.state_index[s]} = _zero")
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
            seq = self.loc[g.operand].sequence
            L(f"_dW{g.index} = _Gf{g.buffer}.T @ {seq}.reshape(T * B, {size_code(g.operand.shape[0])})")
        sums = sorted({how.buffer for how in plan.vec_grads.values() if isinstance(how, FromBuffer)})
        for b in sums:
            if b not in gf:
                L(f"_Gf{b} = _G{b}.reshape(T * B, {_total(self._buffer_widths(b))})")
                gf.add(b)
            L(f"_sG{b} = _Gf{b}.sum(axis=0)")
        for pname, psym in self.cell.params.items():
            slices, parts = [], []        # slices of whole-sequence products, other terms
            if psym.shape[1] != 1:
                for g in plan.groups:
                    if g.buffer is None:
                        continue
                    for j, s in enumerate(g.slots):
                        if s.weight == psym and not isinstance(s.adjoint, ZeroMatrix):
                            slices.append(f"_dW{g.index}[{span(g.widths, j)}]")
                if pname in plan.mat_fallback:
                    parts.append(f"_acc_{pname}")
            else:
                how = plan.vec_grads.get(pname)
                if isinstance(how, FromBuffer):
                    parts.append(f"_sG{how.buffer}[{span(self._buffer_widths(how.buffer), how.row)}]")
                elif how is not None:
                    parts.append(f"_acc_{pname}")
            parts = slices + parts
            if not parts:
                parts = [f"numpy.zeros({self._pshape(pname)}, dt)"]
            expr = " + ".join(parts)
            if parts == slices and len(slices) == 1:
                # a slice of a product: the gradient is returned as its own array
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
            args = [self.loc[s].cached for s in f.inputs]
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
        for g in (plan.groups[k] for k in plan.dx_groups):
            self._stack(L, g, f"_W{g.index}")
            parts.append(f"(_Gf{g.buffer} @ _W{g.index}).reshape(T, B, D)")
        if plan.dx_step:
            parts.append("_dX")
        L(f"dxs = {' + '.join(parts) if parts else 'numpy.zeros(xs.shape, dt)'}")
        L.dedent()

    def _buffer_widths(self, b):
        return [sym.shape[0] for sym in self.plan.buffers[b]]

    def _pshape(self, pname):
        shape = self.cell.params[pname].shape
        return f"({size_code(shape[0])},)" if shape[1] == 1 else f"({size_code(shape[0])}, {size_code(shape[1])})"

    def _emit_out(self, L, out, pending):
        """The driver line(s) that put one backward output where it goes."""
        val = self.loc[out.value].cached
        if isinstance(out, SlotAdjoint):
            L(f"_G{out.buffer}[t, :, {span(self._buffer_widths(out.buffer), out.row)}] = {val}")
        elif isinstance(out, PrevDelta):
            L(f"_d_{self.state_index[out.state]} = {val}")
        elif isinstance(out, VecGrad):
            L(f"_acc_{out.param} += {val}.sum(axis=0)")
        elif isinstance(out, InputDelta):
            L("if want_dx:")
            L(f"    _dX[t] = {val}")
        else:                               # OuterLeft / OuterRight: v u^T once both are known
            pair = pending.setdefault((out.param, out.term), {})
            pair[type(out)] = val
            if len(pair) == 2:
                L(f"_acc_{out.param} += {pair[OuterLeft]}.T @ {pair[OuterRight]}")

    # -- jacobian ----------------------------------------------------------------------
    def _one_step(self, L, signature, doc, extra, at=False):
        """The head of a function of one step's Jacobian program: run the step (or, ``at``,
        read step t of a given cache c), unpack the cache, call ``_jac`` (made on the first
        call); returns the names of its values."""
        plan = self.plan
        L(f"def {signature}:")
        L.indent()
        L(f'"""{doc}"""')
        if not at:
            L("c = _forward(p, x[None], s0)")
        for line in extra + ([] if at else ["t = 0"]):
            L(line)
        if any(isinstance(s, Input) for s in plan.jac.inputs):
            L('xs = c["xs"]')
        L(f"{self._unpack([f'_S_{k}' for k in self.state_index.values()])} = c[\"S\"]")
        for v in plan.stored:
            L(f'_V_{v.name} = c["V"]["{v.name}"]')
        f = self.math.get("_jac") or self._add_math("_jac", plan.jac.inputs, plan.jac.assigns,
                                                    plan.jac.outputs)
        names = self._param_names()
        if f is not None:
            args = [self.loc[s].cached for s in f.inputs]
            L(f"{self._unpack(['_j' + s.name for s in f.outputs])} = _jac({', '.join(args)})")
            names.update({s.name: "_j" + s.name for s in f.outputs})
        return names

    def jacobian(self, L):
        if any(tuple(sh) != (H, 1) for sh in self.cell.state_shapes.values()):
            return self._jacobian_by_columns(L)
        plan = self.plan
        names = self._one_step(L, "_jacobian(p, x, s0)",
                               "d s_t / d s_{t-1} (B, S, S), blocks in STATE order, numerator layout.",
                               [f"B, H = x.shape[0], {hidden_code(self.cell)}", "dt = s0[0].dtype"])
        n = len(self.cell.states)
        L(f"J = numpy.zeros((B, {size_code(n * H)}, {size_code(n * H)}), dt)")
        L("_diag = numpy.arange(H)")
        # blocks built by the chain rule through another state's block come after that block
        order = sorted(plan.jac.terms, key=lambda k: k in plan.jac.via)
        for s, r in order:
            rows = _cols(self.state_index[s])
            cols = _cols(self.state_index[r])
            block = f"J[:, {rows}, {cols}]"
            filled = False
            if (s, r) in plan.jac.via:
                u, q = plan.jac.via[(s, r)]
                src = f"J[:, {_cols(self.state_index[u])}, {cols}]"
                qcode = self._print(q, names)
                if not (isinstance(q, sympy.Expr) and q.is_number):
                    qcode += "[..., :, None]"
                L(f"numpy.multiply({qcode}, {src}, out={block})")
                filled = True
            terms = plan.jac.terms[(s, r)]
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

    def _jacobian_by_columns(self, L):
        """``_jacobian`` of a cell with scalar or matrix states: column j is ``_jvp`` of the
        j-th unit tangent (the states flattened in STATE order, a matrix state row-major)."""
        L("def _jacobian(p, x, s0):")
        L.indent()
        L('"""d s_t / d s_{t-1} (B, S, S), S = the flattened sizes of the states in STATE order;')
        L('column j is the JVP of the j-th unit tangent, all S of them in one batched call."""')
        L("B, dt = x.shape[0], s0[0].dtype")
        L("widths = [s.shape[1] for s in s0]")
        L("S = sum(widths)")
        L("eye = numpy.eye(S, dtype=dt)")
        L("offsets = numpy.cumsum([0] + widths)")
        L("v = tuple(numpy.repeat(eye[:, None, a:b], B, axis=1).reshape(S * B, b - a)")
        L("          for a, b in zip(offsets[:-1], offsets[1:]))")
        L("rep = tuple(numpy.tile(s, (S, 1)) for s in s0)")
        L("out = numpy.concatenate(_jvp(p, numpy.tile(x, (S, 1)), rep, v), axis=1)")
        L("return out.reshape(S, B, S).transpose(1, 2, 0).copy()")
        L.dedent()
        L()
        L()

    # -- jvp ---------------------------------------------------------------------------
    def jvp(self, L):
        """``_jvp(p, x, s0, v)``: the step Jacobian applied to the tangent ``v`` (one array
        per state), block by block from the same program as ``_jacobian``, never
        materialising a block: ``J_sr v_r`` is its chain of diagonals and matrices applied to
        ``v_r`` from the right (``diag(q) J_ur v_r`` for a block built through state u)."""
        plan = self.plan
        L("def _jvp(p, x, s0, v):")
        L.indent()
        L('"""sum_r d s_t / d r_{t-1} v_r for every state s, matrix-free."""')
        L("return _jvp_at(p, _forward(p, x[None], s0), 0, v)")
        L.dedent()
        L()
        L()
        names = self._one_step(L, "_jvp_at(p, c, t, v)",
                               "The JVP at step t of the forward cache c (its stored values, "
                               "nothing recomputed).", [], at=True)
        for r, k in self.state_index.items():
            names[f"_v{k}"] = f"v[{k}]"
        made = set()
        order = sorted(plan.jac.terms, key=lambda k: k in plan.jac.via)
        for s, r in order:
            ks, kr = self.state_index[s], self.state_index[r]
            block = f"_P{ks}_{kr}"
            parts = []
            if (s, r) in plan.jac.via:
                u, q = plan.jac.via[(s, r)]
                parts.append(f"{self._print(q, names)} * _P{self.state_index[u]}_{kr}")
            tangent = Var(f"_v{kr}", *self.cell.state_shapes[r])
            for lead, chain in sorted(plan.jac.terms[(s, r)], key=lambda lc: not lc[1]):
                code = self._term(lead, chain, names, tangent)
                if code is not None:
                    parts.append(code)
            if parts:
                L(f"{block} = " + " + ".join(f"({c})" for c in parts))
                made.add((s, r))
        outs = []
        for s, ks in self.state_index.items():
            blocks = [f"_P{ks}_{self.state_index[r]}" for s2, r in order if s2 == s and (s2, r) in made]
            outs.append(" + ".join(blocks) if blocks else f"numpy.zeros_like(v[{ks}])")
        L(f"return ({', '.join(outs)},)")
        L.dedent()
        L()
        L()

    def _term(self, lead, chain, names, tangent=None):
        coeff = sympy.Integer(1)
        factors = []
        for item in [lead] + list(chain):
            is_diag = item is lead or not (hasattr(item, "shape") and item.shape[1] != 1
                                           or isinstance(item, OneMatrix))
            if isinstance(item, sympy.Expr) and item.is_number:
                coeff *= item
            elif is_diag:
                factors.append(DiagMatrix(item))
            else:
                factors.append(item)
        if coeff == 0:
            return None
        if tangent is not None and any(isinstance(f, (OneMatrix, Factor)) for f in factors):
            # the all-ones factors of a reduction: applied right to left as sums and broadcasts
            expr = tangent
            for f in reversed(factors):
                expr = hadamard([f.args[0], expr]) if isinstance(f, DiagMatrix) else apply_constant(f, expr)
            code = self._print(expr, names)
            return code if coeff == 1 else f"{self._print(coeff, names)} * ({code})"
        if tangent is not None:
            # the term applied to a tangent vector: its factors, then the vector
            expr = MatMul(*factors, tangent, evaluate=False) if factors else tangent
            code = self._print(expr, names)
            return code if coeff == 1 else f"{self._print(coeff, names)} * ({code})"
        for k in range(len(factors) - 1):       # 1_n 1_m^T: one all-ones block
            if (isinstance(factors[k], OneMatrix) and isinstance(factors[k + 1], OneMatrix)
                    and factors[k].shape[1] == 1):
                factors[k:k + 2] = [OneMatrix(factors[k].shape[0], factors[k + 1].shape[1])]
                break
        if not any(not isinstance(f, DiagMatrix) for f in factors):
            # a diagonal block: the product of the diagonals' vectors
            vec = [self._print(f.args[0], names) for f in factors]
            body = " * ".join(vec) if vec else "1"
            return body if coeff == 1 else f"{self._print(coeff, names)} * {body}"
        expr = MatMul(*factors, evaluate=False) if len(factors) > 1 else factors[0]
        code = self._print(expr, names)
        return code if coeff == 1 else f"{self._print(coeff, names)} * ({code})"
