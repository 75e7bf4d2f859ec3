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

from derive.export import figure_process
from derive.export.output import OutputError
from derive.analysis.experiment import experiment, forget_bias, regime_gamma
from derive.analysis.gradient_flow import GradientFlowError, recurrent_matrices, require_recurrence

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
                 "at_forget_bias_1": "#CC79A7", "at_forget_bias_3": "#009E73"}


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

#: Panel titles in words; a cell not listed is titled by its name.
PANEL_TITLES = {"rnn_sigmoid": "Elman RNN, sigmoid", "rnn_tanh": "Elman RNN, tanh",
                "rnn_relu": "Elman RNN, ReLU", "gru": "GRU",
                "lstm": "LSTM, cell state", "lstm_peephole": "peephole LSTM, cell state"}
#: Short direct labels drawn at the end of each median line.
REGIME_SHORT = {"below": "below", "at": "at threshold", "above": "above",
                "at_forget_bias_1": "forget bias +1", "at_forget_bias_3": "forget bias +3"}
#: The floor of the shared vertical axis; smaller values and exact zeros sit on it.
FLOOR = 1e-30


def figure_panels(experiments):
    """[(experiment, block), ...]: one panel per cell, the cell state for cells that have
    one (the LSTM's gradient path), else the first state. Shows FIGURE_CELLS when any is
    present, else every cell given."""
    chosen = [ex for name in FIGURE_CELLS for ex in experiments if ex.cell == name]
    if not chosen:
        chosen = list(experiments)
    out = []
    for ex in chosen:
        states = [b for b in ex.blocks if b != "state"]
        out.append((ex, "c" if "c" in states else states[0]))
    return out


def _panel_title(ex, block) -> str:
    name = PANEL_TITLES.get(ex.cell, ex.cell)
    if ex.activation == "none":
        return f"{name}\n(no single activation: γ = 1)"
    return f"{name}\n(γ = {ex.gamma}, threshold ‖W‖₂ = {1 / ex.gamma})"


def _draw(experiments) -> dict:
    """Draw the figure once (Agg canvas, matplotlib's built-in defaults, fixed layout; one
    shared log axis, values below FLOOR and exact zeros drawn as markers on the floor) and
    save it as PNG and SVG: {path: bytes}."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    panels = figure_panels(experiments)
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    panel_w, panel_h, top, bottom = 3.9, 3.0, 0.55, 1.25      # inches
    width, height = panel_w * ncols + 0.6, panel_h * nrows + top + bottom
    out = {}
    with matplotlib.rc_context():
        matplotlib.rcdefaults()                       # ignore the user's matplotlibrc
        matplotlib.rcParams.update({"svg.hashsalt": "rnn-calculus", "font.size": 11,
                                    "axes.titlesize": 11, "legend.fontsize": 10.5})
        fig = Figure(figsize=(width, height))
        FigureCanvasAgg(fig)
        fig.subplots_adjust(left=0.85 / width, right=1 - 0.15 / width, top=1 - top / height,
                            bottom=bottom / height, wspace=0.08, hspace=0.42)
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
        for n in range(nrows * ncols):
            ax = axes[n // ncols][n % ncols]
            if n >= len(panels):
                ax.set_visible(False)
                continue
            ex, block = panels[n]
            k = ex.k
            for reg in ex.regimes:
                color = REGIME_COLORS.get(reg.regime)
                q = 10.0 ** numpy.maximum(reg.quantiles[block], math.log10(FLOOR))
                ax.fill_between(k, q[0], q[2], color=color, alpha=0.18, linewidth=0)
                ax.plot(k, q[1], color=color, linewidth=2.0)
                zero = reg.quantiles[block][1] <= math.log10(FLOOR)
                if zero.any():
                    ax.plot(k[zero], numpy.full(zero.sum(), FLOOR), linestyle="none",
                            marker="v", markersize=6, color=color, clip_on=False)
                if reg.bound_log10 is not None and block == "h":
                    ax.plot(k, 10.0 ** numpy.maximum(reg.bound_log10, math.log10(FLOOR)),
                            color=color, linestyle="--", linewidth=1.1)
            if n % ncols == ncols - 1 or n == len(panels) - 1:
                _direct_labels(ax, ex, block)
            ax.set_yscale("log")
            ax.set_ylim(FLOOR / 3, 1e8)
            ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
            ax.yaxis.set_minor_locator(NullLocator())
            ax.yaxis.set_major_formatter(FuncFormatter(_power_of_ten))
            ax.set_xlim(1, ex.k[-1])
            ax.set_title(_panel_title(ex, block))
            if n // ncols == nrows - 1:
                ax.set_xlabel("steps back, k")
            if n % ncols == 0:
                ax.set_ylabel("‖∂s_T / ∂s_(T−k)‖₂")
            ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
        regimes = {}
        for ex, _ in panels:
            for reg in ex.regimes:
                regimes.setdefault(reg.regime, reg)
        handles = [Line2D([], [], color=REGIME_COLORS.get(reg.regime), linewidth=2.0,
                          label=_regime_label(reg)) for reg in regimes.values()]
        handles += [Line2D([], [], color="0.3", linestyle="--", linewidth=1.1,
                           label="Pascanu bound (Elman RNNs)"),
                    Line2D([], [], color="0.3", linestyle="none", marker="v",
                           label="exact zero")]
        fig.legend(handles=handles, loc="lower center", ncols=3, frameon=False,
                   bbox_to_anchor=(0.5, 0.0))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
        out[PNG_PATH] = buf.getvalue()
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        out[SVG_PATH] = buf.getvalue()
    return out


def _direct_labels(ax, ex, block, gap=3.0):
    """Each regime's short name at the right end of its median line, moved apart so that
    neighbours are at least ``gap`` decades from each other."""
    ends = sorted((max(float(r.quantiles[block][1][-1]), math.log10(FLOOR)), r.regime)
                  for r in ex.regimes)
    placed = []
    for y, name in ends:
        y = max(y, placed[-1][0] + gap) if placed else y
        placed.append((y, name))
    for y, name in placed:
        ax.text(ex.k[-1] * 0.985, 10.0 ** (y + 0.6), REGIME_SHORT.get(name, name),
                ha="right", va="bottom", color=REGIME_COLORS.get(name), fontsize=10)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(y, _pos) -> str:
    """Tick label 10ⁿ in plain text (no mathtext: parsing it dominated the drawing time)."""
    if not y > 0:
        return ""
    e = round(math.log10(y))
    return "10" + str(e).translate(_SUPERSCRIPT) if abs(math.log10(y) - e) < 1e-6 else ""


def _regime_label(reg) -> str:
    if reg.forget_bias:
        return f"‖W‖₂ = 1/γ, forget-gate bias +{reg.forget_bias:g}"
    return f"‖W‖₂ = {reg.multiplier}/γ ({REGIME_SHORT.get(reg.regime, reg.regime)})"


def figures(experiments) -> dict:
    """{path: bytes} for the PNG and SVG ({} without experiments); without matplotlib
    :class:`MissingDependencyError`."""
    require_matplotlib()
    if not experiments:
        return {}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError(PLOT_HINT) from None
    return _draw(experiments)


#: The drawing process started for this run by :func:`start_helper` (at most one).
_FIGURE: list = []


def _import_matplotlib() -> None:
    """What :func:`_draw` imports, imported ahead of time in the figure process."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401
    import matplotlib.lines  # noqa: F401
    import matplotlib.ticker  # noqa: F401


def start_helper(options):
    """In the parent, before :func:`prepare` and the fork (:mod:`derive.export.registry`):
    start the figure process (:mod:`derive.export.figure_process`), which imports matplotlib
    while the cells are derived, when the figure is wanted and matplotlib is installed; return
    its handle (the registry detaches and reaps it), or None."""
    _FIGURE.clear()
    if not figure_wanted(options):
        return None
    try:
        require_matplotlib()
    except MissingDependencyError:
        return None                           # export() reports it
    proc = figure_process.start(_import_matplotlib, _draw)
    if proc is not None:
        _FIGURE.append(proc)
    return proc


def _has_recurrence(cell) -> bool:
    try:
        require_recurrence(cell)
    except GradientFlowError:
        return False
    return True


#: Per-cell work that may run in a worker process (derive.export.cellpool).
CELL_TASKS = True


def prepare(cells, options) -> None:
    """Before the workers are forked: what the experiment needs that the symbolic exporters
    derive as well (gamma, the recurrent matrices; the kernels exporter's ``prepare`` derives
    the step), derived once and inherited by every process; the kernels are generated per
    cell, in whichever process does the cell. Only warms caches; :func:`cell_task` repeats every
    check and reports every error."""
    for c in cells:
        try:
            if _has_recurrence(c):
                regime_gamma(c)
                recurrent_matrices(c)
                forget_bias(c)
        except Exception:                   # noqa: BLE001 - cell_task reports it
            pass


def check(options) -> None:
    """Before any work: with the figure on, :class:`MissingDependencyError` when matplotlib
    is missing (before the experiment, not after it)."""
    if figure_wanted(options):
        require_matplotlib()


def cell_task(cell, options):
    """The experiment of one cell: ``("ok", Experiment)``, ``("none", None)`` for a cell
    without a recurrence, or ``("skip", reason)`` when it cannot be run."""
    if not _has_recurrence(cell):
        return "none", None
    try:
        with numpy.errstate(over="ignore", invalid="ignore"):    # reported below instead
            return "ok", experiment(cell)
    except (GradientFlowError, ValueError, FloatingPointError) as exc:
        # e.g. a user-defined cell whose state overflows under random parameters: the
        # experiment cannot say anything about it, the other exports still stand
        return "skip", str(exc)


def lead_cells(cells, options) -> list:
    """The names of the drawn cells when a figure process holds pipes here (see
    :func:`start_helper`): their experiments are done first and sent to it, so it draws
    while the other cells' experiments run. [] otherwise."""
    proc = _FIGURE[-1] if _FIGURE else None
    if not figure_wanted(options) or proc is None or proc.request_fd is None:
        return []
    # indexing, not iterating: no progress report; the cells outside FIGURE_CELLS are
    # derived here only when none of FIGURE_CELLS is given (so the pool's first worker
    # starts once the drawn cells are derived, not after every step Jacobian)
    every = [cells[i] for i in range(len(cells))]
    drawn = [c for c in every if c.name in FIGURE_CELLS and _has_recurrence(c)]
    return [c.name for c in drawn or [c for c in every if _has_recurrence(c)]]


def lead_done(results, options) -> None:
    """Send the drawn cells' experiments (``results``, in cell order) to the figure process."""
    _FIGURE[-1].send([ex for kind, ex in results.values() if kind == "ok"])


def lead_finish(options) -> dict:
    """The figure files the figure process drew."""
    return _FIGURE.pop().receive()


def merge(cells, results, options, extras=()) -> dict:
    """The CSV and (option ``figure``) the figure, from :func:`cell_task`'s results in the
    order of ``cells``; the figure files are those the figure process drew (``extras``) or
    drawn here. A skipped cell is a note on stderr."""
    _FIGURE.clear()
    experiments = []
    for c in cells:
        kind, value = results[c.name]
        if kind == "ok":
            experiments.append(value)
        elif kind == "skip":
            print(f"note: gradient flow of cell {c.name!r} skipped: {value}", file=sys.stderr)
    files = {CSV_PATH: csv_text(experiments)}
    if figure_wanted(options):
        files.update(extras[0] if extras else figures(experiments))
    return files


def export(cells, options) -> dict:
    """The CSV and (option ``figure``) the figure, in this process. With a figure process
    holding pipes here (a test, or a worker of :mod:`derive.export.cellpool`) the drawn
    cells' experiments run first and go to it; the files are the same either way (the
    figure depends only on the drawn cells, :func:`figure_panels`)."""
    check(options)
    lead = lead_cells(cells, options)
    results = {}
    if lead:
        for c in [cells[i] for i in range(len(cells))]:      # indexing: no progress report
            if c.name in lead:
                results[c.name] = cell_task(c, options)
        lead_done(results, options)
    for c in cells:
        if c.name not in results:
            results[c.name] = cell_task(c, options)
    return merge(cells, results, options, [lead_finish(options)] if lead else [])
