"""The figure process of ``python -m derive`` (derive.export.figure_process): the gradient-flow
files it helps produce are byte for byte those of a run without it; it is reaped at the end
of the run; step indices are printed once each (derive.printing.notation.index_latex)."""
import os
from types import SimpleNamespace

import pytest
import sympy

import derive
from derive.export import flow, registry
from derive.printing.notation import index_latex

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def _alive(pid):
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_flow_files_with_the_figure_process_are_those_drawn_here():
    """A figure cell (drawn) and a cell only in the CSV: with the figure process the drawn
    cell's experiment goes ahead to it; CSV, PNG and SVG equal an in-process export's."""
    pytest.importorskip("matplotlib")
    cells = [derive.cell("mingru"), derive.cell("rnn_tanh")]
    opts = SimpleNamespace(figure=True)
    plain = flow.export(cells, opts)
    proc = flow.start_helper(opts)
    assert proc is not None and flow._FIGURE == [proc]
    try:
        helped = flow.export(cells, opts)      # this process holds the pipes, as the child does
    finally:
        proc.reap()
    assert flow._FIGURE == []
    assert sorted(helped) == sorted(plain) == sorted([flow.CSV_PATH, flow.PNG_PATH, flow.SVG_PATH])
    for path in plain:
        assert helped[path] == plain[path], path


def test_render_all_reaps_the_figure_process(monkeypatch):
    """render_all detaches the figure process after the fork and kills and waits for it at
    the end: afterwards it is neither running nor a zombie."""
    pytest.importorskip("matplotlib")
    started = []
    real = flow.start_helper

    def spy(options):
        proc = real(options)
        started.append(proc.pid)
        return proc
    monkeypatch.setattr(flow, "start_helper", spy)
    monkeypatch.setattr(registry, "EXPORTERS", ["derive.export.summary", "derive.export.flow"])
    files = registry.render_all([derive.cell("rnn_tanh")], SimpleNamespace(figure=True))
    assert flow.PNG_PATH in files and len(started) == 1
    assert not _alive(started[0])
    with pytest.raises(ChildProcessError):
        os.waitpid(started[0], os.WNOHANG)    # already reaped


def test_index_latex_is_printed_once_per_index_and_type():
    t = sympy.Symbol("t", integer=True)
    assert index_latex(t - 1) == "t-1" == index_latex(t - 1)
    assert index_latex(1) == "1" and index_latex(1.0) == "1.0"    # equal keys, other types
    assert index_latex(sympy.Symbol("k") + 1) == "k+1"
