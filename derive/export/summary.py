"""Exporter: ``summary/<cell>.txt``, every derived result of a cell as readable text."""
from __future__ import annotations

from derive.core.affine import NotAffine, RightAffineForm, scan_form
from derive.printing.text import text


def summary(cell) -> str:
    """Forward equations, step-Jacobian blocks and the BPTT step of ``cell``, one per line."""
    lines = [f"# {cell.name}: {cell.title}", ""]
    if cell.reference:
        lines += [f"Reference: {cell.reference}", ""]
    lines.append("Parameters:")
    for name, p in list(cell.params.items()) + list(cell.readout_params.items()):
        lines.append(f"  {name}: {p.shape[0]} x {p.shape[1]}" if p.shape[1] != 1 else f"  {name}: {p.shape[0]}")
    lines += ["", "Forward step (x = x_t, s_prev = s_{t-1}):"]
    for eq in cell.equations:
        lines.append(f"  {eq.lhs.name} = {text(eq.rhs)}")
    if cell.readout:
        lines += ["", "Readout:"]
        lines += [f"  {eq.lhs.name} = {text(eq.rhs)}" for eq in cell.readout]
    lines += ["", "Step Jacobian blocks d s_t / d s'_{t-1} (numerator layout):"]
    maps = cell.jacobian_maps()
    for (s, r), block in cell.step_jacobian().items():
        lines.append(f"  d{s}/d{r}_prev = {text(block)}")
        if (s, r) in maps:                                     # as the map the papers write
            t, image = maps[s, r]
            lines.append(f"    as a linear map: {t.name} ↦ {text(image)}")
    bw = cell.backward()
    lines += ["", "Backward step (Delta_s = gradient reaching s_t from outside the step):"]
    for sym, expr in bw.outputs():
        lines.append(f"  {sym.name} = {text(expr)}")
    if cell.holdable:
        lines += ["", f"Holdable states: {', '.join(cell.holdable)} (the outputs do not depend on "
                  f"them; the kernels' backward(..., held=True) holds them constant)"]
    lines += [""] + affine_lines(cell)
    return "\n".join(lines) + "\n"


def affine_lines(cell) -> list:
    """The derived affine form s_t = A_t s_{t-1} + b_t and its scan, or why there is none."""
    try:
        form = scan_form(cell)
    except NotAffine as exc:
        return ["Parallel scan: none (forward(method='scan') refuses): " + str(exc)]
    if isinstance(form, RightAffineForm):
        S, rest = form.state, ", ".join(form.readouts)
        return [f"Affine in the matrix state {S}: {S}_t = {S}_(t-1) M_t + B_t (A_t: d{S} -> d{S} M_t),",
                "M_t and B_t free of every state (forward(method='scan') runs it as a chunked scan: a",
                "loop inside chunks, all chunks at once, a scan across them"
                + (f"; {rest} follow{'s' if len(form.readouts) == 1 else ''} from {S}_t):" if rest else "):"),
                f"  M_t = {text(form.matrix())}",
                f"  B_t = {text(form.offset)}",
                "  combine: (M, B) then (M', B') = (M M', B M' + B')",
                f"  adjoint (a reverse scan): delta {S}_(t-1) = delta {S}_t M_t^T + g_(t-1)"]
    out = ["Affine in the state: s_t = A_t s_{t-1} + b_t, A_t and b_t free of every state",
           "(forward(method='scan') runs it as a parallel scan):"]
    for (s, r), a in form.coeff:
        out.append(f"  A[{s},{r}] = diag({text(a)})")
    for s, b in form.offset:
        out.append(f"  b[{s}] = {text(b)}")
    out += ["  combine: (A, b) then (A', b') = (A' A, A' b + b')",
            "  adjoint (a reverse scan): delta s_{t-1} = A_t^T delta s_t + g_{t-1}"]
    return out


def export(cells, options) -> dict:
    return {f"summary/{c.name}.txt": summary(c) for c in cells}
