"""Processes, signals and pipes of both CLIs: the forked gradient-flow child dies with its
parent; Ctrl-C at any phase is one line ``interrupted``, exit 130, the old out/ intact; --pdf
without pdflatex fails before deriving; a closed or full stdout is no traceback."""
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HARNESS = """
import sys
sys.path.insert(0, {tmp!r})
import derive.export.registry as ex
ex.EXPORTERS = ["fake_sequential", "fake_parallel"]
ex.render_all([], None)
"""
FAKE_PARALLEL = """
import os, time
PARALLEL = True
def export(cells, options):
    with open({pidfile!r} + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.rename({pidfile!r} + ".tmp", {pidfile!r})
    time.sleep(60)
    return {{}}
"""
FAKE_SEQUENTIAL = "import time\ndef export(cells, options):\n    time.sleep(60)\n    return {}\n"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc").is_dir() or not hasattr(os, "fork"), reason="needs /proc and fork")
def test_the_forked_exporter_dies_with_its_parent(tmp_path):
    """kill -9 of the parent while the forked exporter works: the child is gone within 1 s
    (it used to run on for the rest of its work)."""
    pidfile = tmp_path / "child.pid"
    (tmp_path / "fake_parallel.py").write_text(FAKE_PARALLEL.format(pidfile=str(pidfile)))
    (tmp_path / "fake_sequential.py").write_text(FAKE_SEQUENTIAL)
    parent = subprocess.Popen([sys.executable, "-c", HARNESS.format(tmp=str(tmp_path))], cwd=ROOT)
    try:
        for _ in range(1200):
            if pidfile.exists() or parent.poll() is not None:
                break
            time.sleep(0.05)
        assert pidfile.exists(), "the child never started"
        child = int(pidfile.read_text())
        assert _alive(child)
        parent.kill()
        parent.wait(10)
        for _ in range(20):
            if not _alive(child):
                break
            time.sleep(0.05)
        assert not _alive(child), "the forked exporter outlived its parent by 1 s"
    finally:
        parent.kill()
        if pidfile.exists() and _alive(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def _derive(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "derive", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})}, **kw)


@pytest.mark.parametrize("phase", [{"RNN_CALCULUS_TEST_SIGINT": "derive"},
                                   {"RNN_CALCULUS_TEST_SIGINT": "child"},
                                   {"RNN_CALCULUS_FAULT_AFTER": "sigint:6"}],
                         ids=["deriving", "child", "writing"])
def test_ctrl_c_is_one_line_exit_130_and_out_intact(tmp_path, phase):
    """SIGINT to the whole process group (as a terminal sends it) while deriving, while the
    forked child works, or while writing: stderr is exactly 'interrupted', exit 130, no
    traceback from the parent or the child, out/ as it was, nothing left beside it."""
    out = tmp_path / "out"
    (out / "summary").mkdir(parents=True)
    (out / "summary" / "rnn_tanh.txt").write_text("old\n")
    (out / "mine.txt").write_text("user\n")
    r = _derive("--cells", "rnn_tanh", "--out", str(out), "--quiet", env=phase,
                start_new_session=True)
    assert r.returncode == 130, r.stderr
    assert r.stderr == "interrupted\n"
    assert r.stdout == ""
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == \
        ["out", "out/mine.txt", "out/summary", "out/summary/rnn_tanh.txt"]
    assert (out / "summary" / "rnn_tanh.txt").read_text() == "old\n"


def test_pdf_without_pdflatex_fails_before_deriving(tmp_path):
    out = tmp_path / "out"
    t0 = time.perf_counter()
    r = _derive("--pdf", "--out", str(out), env={"PATH": str(tmp_path / "empty")})
    assert r.returncode == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pdflatex" in lines[0] and "not on PATH" in lines[0]
    assert lines[0].startswith("python -m derive: error: ")
    assert not out.exists(), "it derived and wrote before saying pdflatex is missing"
    assert time.perf_counter() - t0 < 60


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("module", ["derive", "verify"])
def test_a_full_stdout_is_one_line_and_nonzero(module):
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", module, "--list"], cwd=ROOT, stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=600)
    assert r.returncode == 2
    assert r.stderr == (f"python -m {module}: error: cannot write to standard output: "
                        "No space left on device\n")


class _ClosedPipe(io.StringIO):
    def write(self, s):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("module", ["derive", "verify"])
def test_a_closed_pipe_is_silent(module, monkeypatch, capsys):
    """stdout closed by the reader (| head -1): no message, no traceback, exit 141 (as after
    SIGPIPE)."""
    import importlib
    main = importlib.import_module(f"{module}.cli").main
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    monkeypatch.setattr(os, "dup2", lambda *a: None)      # keep pytest's own fd 1
    assert main(["--list"]) == 141
    assert capsys.readouterr().err == ""


def test_verify_piped_into_head_prints_no_traceback():
    p = subprocess.Popen(f"'{sys.executable}' -m verify --claims seed.eq1,sigmoid.derivative.bound "
                         "| head -1", shell=True, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=600)
    assert out.startswith("python -m verify: profile")
    assert "Traceback" not in err and "Exception" not in err and err == ""
