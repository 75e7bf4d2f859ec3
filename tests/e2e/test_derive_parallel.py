"""``python -m derive --jobs N`` (derive.export.cellpool): the cells' kernels and experiments
shared out over forked workers give the same files, byte for byte, as ``--jobs 1`` (every
exporter in one process); a worker's error reaches the CLI as the same one-line error, exit 2;
the workers die with a killed parent; ``--jobs`` rejects what is not a whole number >= 1."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
needs_fork = pytest.mark.skipif(not hasattr(os, "fork") or not Path("/proc").is_dir(),
                                reason="needs fork and /proc")
#: drawn and undrawn cells, one- and two-state, an affine one (the scan kernels)
CELLS = "rnn_tanh,lstm,gru_cho,mingru"


def _derive(*args, **kw):
    return subprocess.run([sys.executable, "-m", "derive", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, **kw)


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@needs_fork
@pytest.mark.parametrize("jobs", ["2", "3"])
def test_parallel_and_serial_runs_write_the_same_bytes(tmp_path, jobs):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    r1 = _derive("--cells", CELLS, "--out", str(serial), "--quiet", "--jobs", "1")
    r2 = _derive("--cells", CELLS, "--out", str(parallel), "--quiet", "--jobs", jobs)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    a, b = _tree(serial), _tree(parallel)
    assert sorted(a) == sorted(b)
    assert any(p.startswith("kernels/") for p in a) and "figures/gradient_flow.png" in a
    for path in a:
        assert a[path] == b[path], path


def test_jobs_1_never_forks(tmp_path, monkeypatch):
    """The serial path: every exporter in this process, no fork at all."""
    pytest.importorskip("matplotlib")
    from types import SimpleNamespace
    import derive
    from derive.export import registry

    def no_fork():
        raise AssertionError("forked with jobs=1")
    monkeypatch.setattr(os, "fork", no_fork)
    monkeypatch.setattr(registry, "EXPORTERS", ["derive.export.kernels", "derive.export.flow"])
    files = registry.render_all([derive.cell("rnn_tanh")], SimpleNamespace(figure=True, jobs=1))
    assert {"kernels/rnn_tanh.py", "figures/gradient_flow.csv", "figures/gradient_flow.png"} <= set(files)


FAILING = """
import os, sys
from derive.export import {module} as m
from derive.spec.tables import SpecError
PARENT = os.getpid()
real = m.cell_task
def cell_task(cell, options):
    if os.getpid() != PARENT and cell.name == "lstm":
        raise SpecError("cell 'lstm': injected failure in a worker")
    return real(cell, options)
m.cell_task = cell_task
from derive.cli import main
sys.exit(main({argv!r}))
"""


@needs_fork
@pytest.mark.parametrize("module", ["kernels", "flow"])
def test_a_workers_error_is_one_line_exit_2_and_out_intact(tmp_path, module):
    """A user error raised in a worker (not in the parent) is re-raised in the parent: one
    line ``python -m derive: error: ...``, exit 2, no traceback, the old out/ untouched."""
    out = tmp_path / "out"
    (out / "summary").mkdir(parents=True)
    (out / "summary" / "lstm.txt").write_text("old\n")
    argv = ["--cells", "lstm,rnn_tanh", "--out", str(out), "--quiet", "--jobs", "2"]
    r = subprocess.run([sys.executable, "-c", FAILING.format(module=module, argv=argv)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2, r.stderr
    assert r.stderr == "python -m derive: error: <spec>: cell 'lstm': injected failure in a worker\n"
    assert (out / "summary" / "lstm.txt").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ""])
def test_jobs_must_be_a_whole_number_of_processes(tmp_path, value):
    r = _derive("--jobs", value, "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m derive: error: ")
    assert "--jobs" in lines[0] and repr(value) in lines[0]
    assert not (tmp_path / "out").exists()


HANGING = """
import os, sys, time
from derive.export import flow
PARENT = os.getpid()
def cell_task(cell, options):
    if os.getpid() != PARENT:
        with open({pidfile!r} + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.rename({pidfile!r} + ".tmp", {pidfile!r})
        time.sleep(60)
    return "none", None
flow.cell_task = cell_task
from derive.cli import main
sys.exit(main(["--cells", "rnn_tanh,lstm", "--out", {out!r}, "--quiet", "--jobs", "2"]))
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@needs_fork
def test_workers_die_with_a_killed_parent(tmp_path):
    """kill -9 of ``python -m derive`` while a worker computes a cell: the worker is gone
    within 1 s."""
    pidfile = tmp_path / "worker.pid"
    code = HANGING.format(pidfile=str(pidfile), out=str(tmp_path / "out"))
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        for _ in range(2400):
            if pidfile.exists() or parent.poll() is not None:
                break
            time.sleep(0.05)
        assert pidfile.exists(), "no worker started"
        worker = int(pidfile.read_text())
        assert worker != parent.pid and _alive(worker)
        parent.kill()
        parent.wait(10)
        for _ in range(20):
            if not _alive(worker):
                break
            time.sleep(0.05)
        assert not _alive(worker), "a worker outlived its parent by 1 s"
    finally:
        parent.kill()
        if pidfile.exists() and _alive(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), 9)
