"""Parallel-scan kernels for cells whose update is affine in the state (issue 17).

From the cell's :class:`~derive.core.affine.AffineForm` (``s_t = A_t s_{t-1} + b_t``, each
block of ``A_t`` diagonal, so per unit an S x S matrix over the S states) this generates

* ``_scan_forward(p, xs, s0)``: the state-free values and ``A_t``, ``b_t`` of every step in
  one sequence pass (``_seq``, on the (T B, D) rows: one GEMM per input product), then the
  states by the two-level affine scan of :mod:`derive.codegen.support` (O(T) work, about
  2 sqrt(T) passes over (C, B, H) slices, no (T, B, H, S, S) blocks). The scan is linear, not
  log-space: for positive A_t (minGRU, minLSTM) the log-space form is as accurate only while
  the cumulative log A stays small and loses |sum log A| * eps otherwise (docs/kernels.md);
  the cache keeps the state-free values the backward reads;
* ``_scan_backward(p, c, dhs, ds, want_dx)``: the adjoint recursion
  ``Delta_t = g_t + A_{t+1}^T Delta_{t+1}`` as a reverse scan (``A_t`` from ``_scoef``), then
  the cell's derived backward step on all steps at once (``_sgrad``), every weight gradient
  as one whole-sequence product (``U^T V`` over the (T B) rows of its outer-product factors)
  and dL/dxs (``_sdx``) only on request. The state-free values come from the cache (a scan
  cache's 'seq', a loop cache's 'V') or are recomputed, so it accepts either cache.

For a cell that is not affine, ``SCAN_REFUSAL`` holds the one-line reason (the state and the
term that depends on it) that ``forward(..., method="scan")`` raises.
"""
from __future__ import annotations

from sympy import MatAdd, MatrixSymbol, ZeroMatrix

from derive.codegen.exprs import canon, free_inputs
from derive.codegen.plan_backward import rewrite
from derive.codegen.locations import param_code
from derive.codegen.mathfn import MathFunction
from derive.core.affine import (NotAffine, RightAffineForm, expand_dependent, scan_form,
                                state_dependent)
from derive.core.algebra import VecPoly, matmul, scale, transpose
from derive.core.symbols import H, Incoming, Input, Param, PrevState, Var


def _outer_terms(e):
    """A matrix gradient as [(u, v)] with e = sum u v^T (the bilinear rule's outer products)."""
    out = []
    for term in (e.args if isinstance(e, MatAdd) else (e,)):
        if isinstance(term, ZeroMatrix):
            continue
        c, mats = term.as_coeff_matrices()
        k = next((k for k, m in enumerate(mats) if m.shape[0] == 1), None)
        if not k:
            raise ValueError(f"parameter gradient term {term} is not an outer product")
        u = scale(c, matmul(*mats[:k]))                    # a column: the left factor
        v = transpose(matmul(*mats[k:]))                   # the row factor, as a column
        out.append((VecPoly.from_expr(u).to_expr(), VecPoly.from_expr(v).to_expr()))
    return out


def generate_scan(cell, output_state):
    """(math functions {name: MathFunction}, driver source, refusal) for ``cell``: the scan
    functions and "" when it is affine, ({}, "", the reason) when it is not (or when a
    derived gradient has a form the scan cannot evaluate)."""
    try:
        form = scan_form(cell)
        if isinstance(form, RightAffineForm):
            return {}, _right_scan_driver(cell, form), ""
        return _generate_scan(cell, form, output_state)
    except NotAffine as exc:
        return {}, "", str(exc)
    except ValueError as exc:
        return {}, "", f"cell {cell.name!r}: no scan kernel ({exc})"


def _right_scan_driver(cell, form):
    """The scan of a matrix state S_t = S_{t-1} M_t + B_t: the chunked scans of
    :mod:`derive.codegen.scan_support` over the module's own step functions."""
    r = list(cell.states).index(form.state)
    return "\n".join([
        "def _scan_forward(p, xs, s0, chunk=None):",
        f'    """{form.state}_t = {form.state}_(t-1) M_t + B_t by the chunked scan (_right_scan_forward):',
        "    a loop inside chunks of `chunk` steps (default ceil(sqrt(T))), all chunks at once,",
        '    and a scan across them; the cache is the loop\'s (backward takes either method)."""',
        f"    return _right_scan_forward(_forward, _jvp_at, _KEPT, p, xs, s0, {r}, chunk)",
        "", "",
        "def _scan_backward(p, c, dhs, ds, want_dx, chunk=None):",
        '    """BPTT by the chunked reverse scan of the adjoint recursion (_right_scan_backward)."""',
        f"    return _right_scan_backward(_backward, _jvp_at, _KEPT, p, c, dhs, ds, want_dx, {r}, chunk)",
        "", ""])


def _generate_scan(cell, form, output_state):
    deps = state_dependent(cell)
    states = list(cell.states)
    S = len(states)
    idx = {s: i for i, s in enumerate(states)}
    free = [eq for eq in cell.equations if not deps[eq.lhs.name] and eq.lhs.name not in states]
    a_vars = {k: Var(f"_a{idx[k[0]]}_{idx[k[1]]}", H, 1) for k, _ in form.coeff}
    b_vars = {s: Var(f"_b{idx[s]}", H, 1) for s in states}
    seq_assigns = [(eq.lhs, eq.rhs) for eq in free]
    seq_assigns += [(a_vars[k], a) for k, a in form.coeff] + [(b_vars[s], form.b(s)) for s in states]
    seq = MathFunction("_seq", list(free_inputs(seq_assigns)), seq_assigns,
                       [eq.lhs for eq in free] + list(a_vars.values()) + list(b_vars.values()))

    bw = cell.backward()
    table = {canon(eq.rhs): eq.lhs for eq in free}

    def named(e):
        """e in the whole-sequence pass's values: f'(u) as f's output form (z (1 - z))."""
        return rewrite(table, expand_dependent(cell, e, deps, keep=cell.states))[0]
    grad_assigns = [(d, named(e)) for d, e in bw.assignments]
    outputs, plan = [], []           # plan: (param, kind, [output vars])
    for name, e in bw.params.items():
        e = named(e)
        p = cell.params[name]
        if p.shape[1] != 1:
            pairs = []
            for k, (u, v) in enumerate(_outer_terms(e)):
                uv = (Var(f"_u{len(outputs)}", *u.shape), Var(f"_w{len(outputs)}", *v.shape))
                grad_assigns += [(uv[0], u), (uv[1], v)]
                outputs += list(uv)
                pairs.append(uv)
            plan.append((name, "matrix", pairs))
        else:
            g = Var(f"_g{len(outputs)}", *e.shape)
            grad_assigns.append((g, e))
            outputs.append(g)
            plan.append((name, "vector", [g]))
    dx = Var("_dx", *bw.input.shape)
    dx_assign = [(dx, named(bw.input))]
    defined = {d for d, _ in grad_assigns}
    dx_from = [v for v in free_inputs(dx_assign) if v in defined]
    outputs += [v for v in dx_from if v not in outputs]
    sgrad = MathFunction("_sgrad", list(free_inputs(grad_assigns)), grad_assigns, outputs)
    sdx = MathFunction("_sdx", list(free_inputs(dx_assign)), dx_assign, [dx])
    coef_assigns = [(a_vars[k], a) for k, a in form.coeff]
    scoef = MathFunction("_scoef", list(free_inputs(coef_assigns)), coef_assigns,
                         list(a_vars.values()))

    xdep = set()                     # the state-free values that depend on the input
    for eq in free:
        if any(isinstance(q, Input) or (isinstance(q, Var) and q.name in xdep)
               for q in eq.rhs.atoms(MatrixSymbol)):
            xdep.add(eq.lhs.name)
    free_names = {eq.lhs.name: eq.lhs for eq in free}
    kept = [v.name for v in list(sgrad.inputs) + list(scoef.inputs) + list(sdx.inputs)
            if isinstance(v, Var) and v.name in free_names]
    kept = list(dict.fromkeys(kept))
    size = {"H": "H", "D": "xs.shape[2]"}

    def kept_shape(n, labelled=False):
        """The shape of a kept value in the generated code: (T, B, rows) or (rows,)."""
        lab = str(free_names[n].shape[0])
        if labelled:
            dims = ((("T", "T"), ("B", "B")) if n in xdep else ()) + ((lab, size[lab]),)
            return "(" + "".join(f'("{a}", {b}), ' for a, b in dims) + ")"
        return f"(T, B, {size[lab]})" if n in xdep else f"({size[lab]},)"

    code = {}
    for sym in list(seq.inputs) + list(sgrad.inputs) + list(scoef.inputs) + list(sdx.inputs):
        if sym in outputs:                                        # made by _sgrad
            code[sym] = f"_o{outputs.index(sym)}"
        elif isinstance(sym, Param):
            code[sym] = param_code(sym.name)
        elif isinstance(sym, Input):
            code[sym] = "_x"
        elif isinstance(sym, PrevState):
            code[sym] = f'_rows(c["S"][{idx[sym.state]}][:-1])'
        elif isinstance(sym, Incoming):
            code[sym] = f"_rows(Delta[{idx[sym.state]}])"
        elif isinstance(sym, Var) and sym.name in idx:
            code[sym] = f'_rows(c["S"][{idx[sym.name]}][1:])'
        elif isinstance(sym, Var):
            code[sym] = f"_v_{sym.name}"
        else:                                                     # pragma: no cover
            raise ValueError(f"scan: no value for {sym}")
    seq_out = [f"_v_{s.name}" for s in seq.outputs]

    def call(fn):
        return f"{fn.name}({', '.join(code[s] for s in fn.inputs)})"

    def coeffs():
        return "{" + ", ".join(f"({idx[s]}, {idx[r]}): _unrows(_v_{v.name}, T, B)"
                               for (s, r), v in a_vars.items()) + "}"
    L = ["def _scan_forward(p, xs, s0, chunk=None):"]
    L.append('    """s_t = A_t s_{t-1} + b_t by the two-level affine scan (_affine_scan: O(T) work,')
    L.append('    about 2 sqrt(T) passes over chunk slices), in linear form (not log-space, which')
    L.append('    loses |sum log A| * eps for long sequences); the cache keeps the state-free values')
    L.append('    the backward reads (their input products are not recomputed)."""')
    L.append("    T, B, H, dt = xs.shape[0], xs.shape[1], s0[0].shape[1], s0[0].dtype")
    L.append("    _x = _rows(xs)")
    L.append(f"    {', '.join(seq_out)}, = {call(seq)}")
    L.append(f"    S = tuple(numpy.empty((T + 1, B, H), dt) for _ in range({S}))")
    L.append(f"    for i in range({S}):")
    L.append("        S[i][0] = s0[i]")
    L.append(f"    _affine_scan({coeffs()}, [{', '.join(f'_unrows(_v_{b_vars[s].name}, T, B)' for s in states)}], "
             f"s0, [s[1:] for s in S], chunk)")
    L.append("    kept = {" + ", ".join(   # input-dependent values are fresh: kept as they are
        f'"{n}": _unrows(_v_{n}, T, B)' if n in xdep else
        f'"{n}": numpy.array(numpy.broadcast_to(_v_{n}, {kept_shape(n)}))' for n in kept) + "}")
    L.append('    return {"cell": CELL, "method": "scan", "xs": xs, "S": S, "V": {}, "seq": kept}')
    L += ["", ""]
    L.append("def _scan_backward(p, c, dhs, ds, want_dx, chunk=None):")
    L.append('    """BPTT by a reverse scan of Delta_t = g_t + A_{t+1}^T Delta_{t+1}, then every step\'s')
    L.append('    local gradients at once and whole-sequence weight products. The state-free values')
    L.append("    come from the cache (a loop cache's V, a scan cache's 'seq') or are recomputed.\"\"\"")
    L.append('    xs = c["xs"]')
    L.append("    T, B, H, dt = xs.shape[0], xs.shape[1], ds[0].shape[1], dt_ = ds[0].dtype")
    L[-1] = "    T, B, H, dt = xs.shape[0], xs.shape[1], ds[0].shape[1], ds[0].dtype"
    shapes = "{" + ", ".join(f'"{n}": {kept_shape(n, True)}' for n in kept) + "}"
    L.append("    _x = _rows(xs)")
    L.append(f"    v = _scan_kept(c, {shapes}, dt)")
    L.append("    if v is None:")
    L.append(f"        {', '.join(seq_out)}, = {call(seq)}")
    if kept:
        L.append("    else:")
        L.append(f"        {', '.join(f'_v_{n}' for n in kept)}, = "
                 f"{', '.join(f'_rows(v[{n!r}])' if n in xdep else f'v[{n!r}]' for n in kept)},")
    if scoef.outputs:                    # (none when every A_t is 0: s_t = b_t)
        L.append(f"    {', '.join(f'_v_{v.name}' for v in scoef.outputs)}, = {call(scoef)}")
    L.append(f"    Delta = tuple(numpy.empty((T, B, H), dt) for _ in range({S}))")
    if S > 1:
        L.append("    zero = numpy.broadcast_to(numpy.zeros((), dt), (T, B, H))")
    L.append("    g = [" + ", ".join("dhs" if s_ == output_state else "zero" for s_ in states) + "]")
    L.append(f"    A = {coeffs()}")
    L.append("    _affine_scan_reverse(A, g, ds, Delta, chunk)")
    L.append("    first = {ij: numpy.broadcast_to(a, (T, B, H))[0] if T else 0 for ij, a in A.items()}")
    L.append("    dstate0 = tuple(sum((first[j, i] * Delta[j][0] for j in range(%d) if (j, i) in first), "
             "numpy.zeros((B, H), dt)) if T else ds[i].copy()" % S)
    L.append(f"                    for i in range({S}))")
    out_names = [f"_o{k}" for k in range(len(outputs))]
    L.append(f"    {', '.join(out_names)}, = {call(sgrad)}")
    pos = {v: out_names[k] for k, v in enumerate(outputs)}
    L.append("    grads = {}")
    for name, kind, parts in plan:
        if kind == "matrix":
            prods = " + ".join(f"_rows({pos[u]}).T @ _rows({pos[w]})" for u, w in parts)
            L.append(f'    grads["{name}"] = {prods}')
        else:
            L.append(f'    grads["{name}"] = _rows({pos[parts[0]]}).sum(0)')
    for name in cell.params:
        if name not in bw.params:
            L.append(f'    grads["{name}"] = numpy.zeros_like(p["{name}"])')
    L.append("    if not want_dx:")
    L.append("        return grads, dstate0, None")
    L.append(f"    _dx, = {call(sdx)}")
    L.append("    return grads, dstate0, numpy.broadcast_to(numpy.asarray(_unrows(_dx, T, B), dt), xs.shape).copy()")
    L += ["", ""]
    return {"_seq": seq, "_sgrad": sgrad, "_scoef": scoef, "_sdx": sdx}, "\n".join(L), ""
