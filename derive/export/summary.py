"""Exporter: ``summary/<cell>.txt``, every derived result of a cell as readable text."""
from __future__ import annotations

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
    for (s, r), block in cell.step_jacobian().items():
        lines.append(f"  d{s}/d{r}_prev = {text(block)}")
    bw = cell.backward()
    lines += ["", "Backward step (Delta_s = gradient reaching s_t from outside the step):"]
    for sym, expr in bw.outputs():
        lines.append(f"  {sym.name} = {text(expr)}")
    return "\n".join(lines) + "\n"


def export(cells, options) -> dict:
    return {f"summary/{c.name}.txt": summary(c) for c in cells}
