"""Exporter: ``figures/gradient_flow.csv`` (always) and ``figures/gradient_flow.png`` / ``.svg``
(when the figure is part of the article, option ``figure``, default on): the gradient-flow
experiment of :mod:`derive.analysis.gradient_flow`. The files never depend on what is installed: with
the figure on and matplotlib missing the run stops (:class:`MissingDependencyError`).

For every cell with a recurrent state and every regime ``||W||_2 = m / gamma`` (m = 1/2, 1, 2:
below, at and above Pascanu's threshold), the CSV holds the 10th percentile, median and 90th
percentile over random draws of ``log10 ||d s_T / d s_{T-k}||_2`` for k = 1..T, per block
(each state, and ``state`` for the whole state of multi-state cells), and for the Elman RNN
cells the bound ``k log10(gamma ||W_hh||_2)``. Every file is deterministic byte for byte
(fixed seeds, fixed formatting; figures without dates, SVG ids from a fixed salt).
"""
from __future__ import annotations

import importlib.util
import io
import math
import sys

import numpy

from derive.export.output import OutputError
from derive.analysis.experiment import experiment
from derive.analysis.gradient_flow import GradientFlowError, require_recurrence

CSV_PATH = "figures/gradient_flow.csv"
PNG_PATH = "figures/gradient_flow.png"
SVG_PATH = "figures/gradient_flow.svg"
PLOT_HINT = ("the gradient-flow figure (figures/gradient_flow.png, .svg) needs matplotlib, "
             "which is not installed: pip install 'rnn-calculus[plot]', or leave the figure "
             "out with --no-figure")


class MissingDependencyError(OutputError):
    """A package the requested output needs is not installed (one line; exit 2)."""


def figure_wanted(options) -> bool:
    """Whether the gradient-flow figure is part of the output (``options.figure``, default on)."""
    return getattr(options, "figure", True) is not False


def require_matplotlib() -> None:
    """:class:`MissingDependencyError` naming matplotlib when it cannot be imported."""
    try:
        found = importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingDependencyError(PLOT_HINT)

CSV_COLUMNS = ("cell", "activation", "gamma", "regime", "norm_multiplier", "recurrent_norm",
               "forget_bias_shift", "block", "k", "samples", "log10_p10", "log10_median", "log10_p90", "log10_bound")

#: Cells drawn in the figure when present (the CSV has all): the RNN family, then the LSTMs.
FIGURE_CELLS = ("rnn_sigmoid", "rnn_tanh", "rnn_relu", "gru", "lstm", "lstm_peephole")
REGIME_COLORS = {"below": "#0072B2", "at": "#222222", "above": "#D55E00",
                 "at_forget_bias_3": "#009E73"}


def _fmt(v: float) -> str:
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    s = f"{v:.4f}"
    return "0.0000" if s == "-0.0000" else s


def csv_text(experiments) -> str:
    """One row per cell, regime, block and distance k."""
    lines = [",".join(CSV_COLUMNS)]
    for ex in experiments:
        for r in ex.regimes:
            for block in ex.blocks:
                q = r.quantiles[block]
                for i, k in enumerate(ex.k):
                    bound = "" if r.bound_log10 is None or block != "h" else _fmt(r.bound_log10[i])
                    lines.append(",".join([
                        ex.cell, ex.activation, str(ex.gamma), r.regime, str(r.multiplier),
                        str(r.recurrent_norm), f"{r.forget_bias:g}", block, str(k), str(r.samples),
                        _fmt(q[0, i]), _fmt(q[1, i]), _fmt(q[2, i]), bound]))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# figure
# ---------------------------------------------------------------------------------------

def figure_panels(experiments):
    """[[(experiment, block), ...] per row]: single-state cells two to a row, multi-state
    cells one row each with their h and c panels. Shows FIGURE_CELLS when any is present,
    else every cell given."""
    chosen = [ex for name in FIGURE_CELLS for ex in experiments if ex.cell == name]
    if not chosen:
        chosen = list(experiments)
    rows, single = [], []
    for ex in chosen:
        states = [b for b in ex.blocks if b != "state"]
        if len(states) == 1:
            single.append((ex, states[0]))
            if len(single) == 2:
                rows.append(single)
                single = []
        else:
            rows.append([(ex, b) for b in states[:2]])
    if single:
        rows.append(single)
    return rows


def _panel_title(ex, block) -> str:
    if ex.activation == "none":
        scale = "no single hidden activation: γ taken as 1"
    else:
        scale = f"hidden activation {ex.activation}: γ = {ex.gamma}, threshold 1/γ = {1 / ex.gamma}"
    return f"{ex.cell}: ‖∂{block}_T / ∂{block}_(T−k)‖₂\n{scale}"


def _draw(experiments) -> dict:
    """Draw the figure once (Agg canvas, matplotlib's built-in defaults, fixed layout) and
    save it as PNG and SVG: {path: bytes}."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    rows = figure_panels(experiments)
    ncols = max(len(r) for r in rows)
    panel_w, panel_h, top, bottom = 4.6, 3.1, 0.95, 1.25      # inches
    width, height = panel_w * ncols, panel_h * len(rows) + top + bottom
    out = {}
    with matplotlib.rc_context():
        matplotlib.rcdefaults()                       # ignore the user's matplotlibrc
        matplotlib.rcParams.update({"svg.hashsalt": "rnn-calculus", "font.size": 8.5,
                                    "axes.titlesize": 8.5, "legend.fontsize": 8.5})
        fig = Figure(figsize=(width, height))
        FigureCanvasAgg(fig)
        fig.subplots_adjust(left=0.75 / width, right=1 - 0.2 / width, top=1 - top / height,
                            bottom=bottom / height, wspace=0.28, hspace=0.55)
        axes = fig.subplots(len(rows), ncols, squeeze=False)
        for r, row in enumerate(rows):
            for c in range(ncols):
                ax = axes[r][c]
                if c >= len(row):
                    ax.set_visible(False)
                    continue
                ex, block = row[c]
                k = ex.k
                for reg in ex.regimes:
                    color = REGIME_COLORS.get(reg.regime)
                    q = 10.0 ** reg.quantiles[block]
                    ax.fill_between(k, q[0], q[2], color=color, alpha=0.18, linewidth=0)
                    ax.plot(k, q[1], color=color, linewidth=1.6)
                    if reg.bound_log10 is not None and block == "h":
                        ax.plot(k, 10.0 ** reg.bound_log10, color=color, linestyle="--",
                                linewidth=1.1)
                ax.set_yscale("log")
                ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
                ax.yaxis.set_minor_locator(NullLocator())
                ax.yaxis.set_major_formatter(FuncFormatter(_power_of_ten))
                ax.set_xlim(1, ex.k[-1])
                ax.set_title(_panel_title(ex, block))
                ax.set_xlabel("distance k (steps back from T)")
                ax.set_ylabel(f"‖∂{block}_T / ∂{block}_(T−k)‖₂")
                ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
        regimes = {}
        for ex in (e for row in rows for e, _ in row):
            for reg in ex.regimes:
                regimes.setdefault(reg.regime, reg)
        handles = [Line2D([], [], color=REGIME_COLORS.get(reg.regime), linewidth=1.6,
                          label=_regime_label(reg)) for reg in regimes.values()]
        handles += [Line2D([], [], color="0.3", linewidth=1.6, label="median over draws"),
                    Patch(color="0.3", alpha=0.18, label="10th to 90th percentile"),
                    Line2D([], [], color="0.3", linestyle="--", linewidth=1.1,
                           label="bound (γ‖W_hh‖₂)^k (Elman RNNs)")]
        fig.legend(handles=handles, loc="lower center", ncols=2, frameon=False,
                   bbox_to_anchor=(0.5, 0.0))
        fig.suptitle("Gradient flow: ‖∂s_T / ∂s_(T−k)‖₂ against the distance k\n"
                     "random parameters, recurrent matrices scaled to ‖W‖₂ = m/γ, "
                     "γ = sup|φ′| of the hidden activation φ", fontsize=9.5,
                     y=1 - 0.12 / height, va="top")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
        out[PNG_PATH] = buf.getvalue()
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        out[SVG_PATH] = buf.getvalue()
    return out


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(y, _pos) -> str:
    """Tick label 10ⁿ in plain text (no mathtext: parsing it dominated the drawing time)."""
    if not y > 0:
        return ""
    e = round(math.log10(y))
    return "10" + str(e).translate(_SUPERSCRIPT) if abs(math.log10(y) - e) < 1e-6 else ""


def _regime_label(reg) -> str:
    if reg.forget_bias:
        return f"‖W‖₂ = {reg.multiplier}/γ, forget-gate bias +{reg.forget_bias:g} (f near 1)"
    where = {"below": "below", "at": "at", "above": "above"}.get(reg.regime, reg.regime)
    return f"‖W‖₂ = {reg.multiplier}/γ ({where} Pascanu's threshold)"


def figures(experiments) -> dict:
    """{path: bytes} for the PNG and SVG ({} without experiments); without matplotlib
    :class:`MissingDependencyError`."""
    require_matplotlib()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError(PLOT_HINT) from None
    if not experiments:
        return {}
    return _draw(experiments)


def _has_recurrence(cell) -> bool:
    try:
        require_recurrence(cell)
    except GradientFlowError:
        return False
    return True


#: Worth running in a separate process beside the symbolic exporters (see derive.export.registry).
PARALLEL = True


def export(cells, options) -> dict:
    figure = figure_wanted(options)
    if figure:
        require_matplotlib()                 # before the experiment, not after it
    experiments = []
    for c in cells:
        if not _has_recurrence(c):
            continue
        try:
            with numpy.errstate(over="ignore", invalid="ignore"):    # reported below instead
                experiments.append(experiment(c))
        except (GradientFlowError, ValueError, FloatingPointError) as exc:
            # e.g. a user-defined cell whose state overflows under random parameters: the
            # experiment cannot say anything about it, the other exports still stand
            print(f"note: gradient flow of cell {c.name!r} skipped: {exc}", file=sys.stderr)
    files = {CSV_PATH: csv_text(experiments)}
    if figure:
        files.update(figures(experiments))
    return files
