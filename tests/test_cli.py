"""The derive CLI: listing, errors without tracebacks, --check, atomic output."""
import subprocess
import sys
from pathlib import Path

import pytest

import derive

ROOT = Path(__file__).resolve().parents[1]


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
