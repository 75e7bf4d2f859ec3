"""The derive CLI: listing, errors without tracebacks, --check, atomic output."""
import subprocess
import sys
from pathlib import Path

import pytest

import derive

ROOT = Path(__file__).resolve().parents[2]


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "derive", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_list_names_every_builtin_cell():
    r = run("--list")
    assert r.returncode == 0
    listed = [line.split()[0] for line in r.stdout.splitlines()]
    assert listed == derive.cells()


def test_unknown_cell_is_a_one_line_error_with_exit_2():
    r = run("--cells", "lstm,no_such_cell")
    assert r.returncode == 2
    assert "no_such_cell" in r.stderr and "lstm_peephole" in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_unknown_cell_from_the_api():
    with pytest.raises(KeyError, match="no_such_cell"):
        derive.cell("no_such_cell")
    with pytest.raises(ValueError):
        derive.cell("no_such_cell")


def test_committed_out_is_up_to_date():
    r = run("--check", "--out", str(ROOT / "out"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_reports_stale_and_missing_and_writes_nothing(tmp_path):
    assert run("--cells", "rnn_tanh", "--out", str(tmp_path)).returncode == 0
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert files
    victim = files[0]
    victim.write_text("edited\n")
    files[-1].unlink()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    r = run("--cells", "rnn_tanh", "--check", "--out", str(tmp_path))
    assert r.returncode == 1
    assert "stale" in r.stdout and victim.name in r.stdout and "missing" in r.stdout
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_output_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run("--cells", "lstm_peephole", "--out", str(a)).returncode == 0
    assert run("--cells", "lstm_peephole", "--out", str(b)).returncode == 0
    fa = {p.relative_to(a): p.read_bytes() for p in a.rglob("*") if p.is_file()}
    fb = {p.relative_to(b): p.read_bytes() for p in b.rglob("*") if p.is_file()}
    assert fa == fb and fa


def test_unwritable_out_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = run("--cells", "rnn_tanh", "--out", str(blocker / "sub"))
    assert r.returncode == 2
    assert str(blocker) in r.stderr and "Traceback" not in r.stderr
    assert blocker.read_text() == "not a directory"


def test_failed_run_leaves_previous_out_intact(tmp_path):
    assert run("--cells", "rnn_tanh", "--out", str(tmp_path)).returncode == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    bad = tmp_path.parent / "bad.toml"
    bad.write_text('[cell]\nname = "bad"\nstates = ["h"]\n[equations]\nh = "tanh(W @ x)"\n')
    r = run("--cells", "rnn_tanh", "--spec", str(bad), "--out", str(tmp_path))
    assert r.returncode == 2 and "W" in r.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_cell_without_kernels_still_gets_its_other_outputs(tmp_path):
    """A user cell the kernel generator cannot compile (a product of parameters only): a
    one-line note naming the cell and the product, no traceback, every other file written."""
    spec = tmp_path / "odd.toml"
    spec.write_text('[cell]\nname = "odd"\nstates = ["h"]\n[params]\nM = ["H", "H"]\n'
                    'b = ["H"]\nW = ["H", "D"]\n[equations]\nh = "tanh(W @ x + M @ b + h_prev)"\n')
    r = run("--cells", "rnn_tanh", "--spec", str(spec), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "kernels of cell 'odd' skipped" in r.stderr and "M b" in r.stderr
    kernels = tmp_path / "out" / "kernels"
    assert (kernels / "rnn_tanh.py").exists() and not (kernels / "odd.py").exists()
    assert "CELLS = ('rnn_tanh',)" in (kernels / "__init__.py").read_text()
    assert "odd" in (tmp_path / "out" / "derivations.md").read_text()


@pytest.mark.parametrize("args, msg", [
    (["--cells", ""], "--cells needs at least one cell name"),
    (["--cells", ","], "--cells needs at least one cell name"),
    (["--out", ""], "--out needs a directory name"),
])
def test_empty_arguments_are_one_line_errors(args, msg):
    r = run(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f"python -m derive: error: {msg}\n"


def test_check_against_a_regular_file_is_not_a_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        r = run("--check", "--out", str(out))
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr == f"python -m derive: error: {blocker} is not a directory\n"


def test_progress_on_stderr_outcome_on_stdout_and_quiet(tmp_path):
    """Not a terminal: one plain line per exporter and cell on stderr, the outcome on stdout
    (what was written, then 'up to date' on a run that changes nothing); --quiet: no stderr."""
    out = tmp_path / "o"
    r = run("--cells", "rnn_tanh,gru", "--out", str(out), "--jobs", "1")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    for label in ("summary", "latex", "kernels", "flow"):
        assert f"{label}: rnn_tanh (1/2)" in lines and f"{label}: gru (2/2)" in lines, lines
    assert f"writing {out}/" in lines and "\r" not in r.stderr
    n = len([p for p in out.rglob("*") if p.is_file()])
    assert r.stdout == f"wrote {n} of {n} files to {out}/\n"
    r = run("--cells", "rnn_tanh,gru", "--out", str(out), "--quiet")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout == f"{out}/ is up to date: {n} files\n"
    # in parallel (derive.export.cellpool): each cell derived here, then its kernels and
    # experiment wherever they run, numbered in the order of derivation (both are drawn
    # in the figure: in cell order)
    r = run("--cells", "rnn_tanh,gru", "--out", str(tmp_path / "p"), "--jobs", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    for label in ("summary", "latex"):
        assert f"{label}: rnn_tanh (1/2)" in lines and f"{label}: gru (2/2)" in lines, lines
    assert {"deriving: rnn_tanh (1/2)", "deriving: gru (2/2)", "kernels, flow: rnn_tanh (1/2)",
            "kernels, flow: gru (2/2)"} <= set(lines), lines


def test_live_progress_line_on_a_terminal():
    """On a terminal each report rewrites one line (\\r, clear to end of line) and clear()
    removes it; other stderr messages start on a clean line."""
    import io
    from derive.export.progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True
    s = Tty()
    p = Progress(s)
    p("summary: lstm (1/2)")
    p("summary: gru (2/2)")
    p.stderr().write("note: something\n")
    p("latex: gru (2/2)")
    p.clear()
    assert s.getvalue() == ("\r\x1b[Ksummary: lstm (1/2)\r\x1b[Ksummary: gru (2/2)\r\x1b[K"
                            "note: something\n\r\x1b[Klatex: gru (2/2)\r\x1b[K")
    q = Tty()
    Progress(q, quiet=True)("x")
    assert q.getvalue() == ""


def test_check_reports_stray_files_and_exits_1(tmp_path):
    """--check lists leftovers and unknown files in generated folders as stray (exit 1); the
    user's file at the top level of out/ is not stray."""
    out = tmp_path / "o"
    assert run("--cells", "rnn_tanh", "--out", str(out), "-q").returncode == 0
    (out / "my notes.txt").write_text("mine")
    assert run("--cells", "rnn_tanh", "--check", "--out", str(out), "-q").returncode == 0
    (out / "kernels" / ".rnn_tanh.py.abcd_123.tmp").write_text("half")
    (out / "kernels" / "lstm.py").write_text("from another run")
    r = run("--cells", "rnn_tanh", "--check", "--out", str(out), "-q")
    assert r.returncode == 1
    assert sorted(r.stdout.splitlines()) == [f"stray:   {out}/kernels/.rnn_tanh.py.abcd_123.tmp",
                                             f"stray:   {out}/kernels/lstm.py"]


@pytest.mark.parametrize("argv0, prog", [("/usr/local/bin/rnn-derive", "rnn-derive"),
                                         (str(ROOT / "derive" / "__main__.py"), "python -m derive")])
def test_prog_name_follows_how_it_was_started(argv0, prog, monkeypatch, capsys):
    from derive.cli import main
    monkeypatch.setattr(sys, "argv", [argv0, "--bogus"])
    assert main() == 2
    assert capsys.readouterr().err == f"{prog}: error: unrecognized arguments: --bogus\n"
    monkeypatch.setattr(sys, "argv", [argv0, "--help"])
    with pytest.raises(SystemExit):
        main()
    assert capsys.readouterr().out.startswith(f"usage: {prog} ")


def test_console_script_says_its_name():
    import shutil
    script = shutil.which("rnn-derive")
    if script is None:
        pytest.skip("rnn-derive is not installed (pip install -e .)")
    r = subprocess.run([script, "--cells", ""], capture_output=True, text=True, timeout=600)
    assert r.returncode == 2
    assert r.stderr == "rnn-derive: error: --cells needs at least one cell name\n"
