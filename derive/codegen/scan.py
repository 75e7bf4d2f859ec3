"""Parallel-scan kernels for cells whose update is affine in the state (issue 17).

From the cell's :class:`~derive.core.affine.AffineForm` (``s_t = A_t s_{t-1} + b_t``, each
block of ``A_t`` diagonal, so per unit an S x S matrix over the S states) this generates

* ``_scan_forward(p, xs, s0)``: the state-free values and ``A_t``, ``b_t`` of every step in
  one whole-sequence pass (``_seq``: the same printed expressions evaluate a (T, B, .) array),
  then the states by recursive doubling (``_affine_scan`` of :mod:`derive.codegen.support`:
  ceil(log2 T) whole-array passes);
* ``_scan_backward(p, c, dhs, ds, want_dx)``: the adjoint recursion
  ``Delta_t = g_t + A_{t+1}^T Delta_{t+1}`` as a reverse scan, then the cell's derived backward
  step evaluated on all steps at once (``_sgrad``), and every weight gradient as one
  whole-sequence product (``U^T V`` over the (T B) rows of its outer-product factors). It reads
  only ``xs`` and the states of the cache, so it accepts the cache of either forward.

For a cell that is not affine, ``SCAN_REFUSAL`` holds the one-line reason (the state and the
term that depends on it) that ``forward(..., method="scan")`` raises.
"""
from __future__ import annotations

from sympy import MatAdd, ZeroMatrix

from derive.codegen.exprs import canon, free_inputs
from derive.codegen.plan_backward import rewrite
from derive.codegen.locations import param_code
from derive.codegen.mathfn import MathFunction
from derive.core.affine import NotAffine, affine_form, expand_dependent, state_dependent
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
        return _generate_scan(cell, affine_form(cell), output_state)
    except NotAffine as exc:
        return {}, "", str(exc)
    except ValueError as exc:
        return {}, "", f"cell {cell.name!r}: no scan kernel ({exc})"


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
    grad_assigns.append((dx, named(bw.input)))
    outputs.append(dx)
    sgrad = MathFunction("_sgrad", list(free_inputs(grad_assigns)), grad_assigns, outputs)

    code = {}
    for sym in list(seq.inputs) + list(sgrad.inputs):
        if isinstance(sym, Param):
            code[sym] = param_code(sym.name)
        elif isinstance(sym, Input):
            code[sym] = "xs"
        elif isinstance(sym, PrevState):
            code[sym] = f'c["S"][{idx[sym.state]}][:-1]'
        elif isinstance(sym, Incoming):
            code[sym] = f"Delta[..., {idx[sym.state]}]"
        elif isinstance(sym, Var) and sym.name in idx:
            code[sym] = f'c["S"][{idx[sym.name]}][1:]'
        elif isinstance(sym, Var):
            code[sym] = f"_v_{sym.name}"
        else:                                                     # pragma: no cover
            raise ValueError(f"scan: no value for {sym}")
    seq_out = [f"_v_{s.name}" for s in seq.outputs]
    L = []

    def coefficients():
        L.append(f"    {', '.join(seq_out)}, = _seq({', '.join(code[s] for s in seq.inputs)})")
        L.append(f"    A = numpy.zeros(xs.shape[:2] + (H, {S}, {S}), dt)")
        for (s, r), v in a_vars.items():
            L.append(f"    A[..., {idx[s]}, {idx[r]}] = _v_{v.name}")
    L.append("def _scan_forward(p, xs, s0):")
    L.append('    """s_t = A_t s_{t-1} + b_t by a parallel scan (see derive.codegen.scan)."""')
    L.append("    H, dt = s0[0].shape[1], s0[0].dtype")
    coefficients()
    L.append("    b = numpy.zeros_like(A[..., 0])")
    for s_ in states:
        L.append(f"    b[..., {idx[s_]}] = _v_{b_vars[s_].name}")
    L.append("    s = _affine_scan(A, b, numpy.stack(s0, axis=-1))")
    L.append(f'    S = tuple(numpy.concatenate([s0[i][None], s[..., i]]) for i in range({S}))')
    L.append('    return {"cell": CELL, "method": "scan", "xs": xs, "S": S, "V": {}}')
    L += ["", ""]
    L.append("def _scan_backward(p, c, dhs, ds, want_dx):")
    L.append('    """BPTT by a reverse scan of Delta_t = g_t + A_{t+1}^T Delta_{t+1}, then every step\'s')
    L.append('    local gradients at once and whole-sequence weight products."""')
    L.append('    xs = c["xs"]')
    L.append("    H, dt = ds[0].shape[1], ds[0].dtype")
    coefficients()
    L.append(f"    g = numpy.zeros(xs.shape[:2] + (H, {S}), dt)")
    L.append(f"    g[..., {idx[output_state]}] = dhs")
    L.append("    Delta = _affine_scan_reverse(A, g, numpy.stack(ds, axis=-1))")
    L.append('    dstate0 = tuple(numpy.einsum("bhji,bhj->bhi", A[0], Delta[0])[..., i] '
             f"for i in range({S}))")
    out_names = [f"_o{k}" for k in range(len(outputs))]
    L.append(f"    {', '.join(out_names)}, = _sgrad({', '.join(code[s] for s in sgrad.inputs)})")
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
    L.append(f"    return grads, dstate0, ({pos[dx]} * numpy.ones_like(xs)) if want_dx else None")
    L += ["", ""]
    return {"_seq": seq, "_sgrad": sgrad}, "\n".join(L), ""
