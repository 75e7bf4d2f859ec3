"""python -m verify: claim selection, JSON shape, verdicts of the seed's statements, usage errors."""
import json
import subprocess
import sys

import pytest

from verify.claims import claim_ids, run_claims
from verify.cli import main

SEED_WRONG = ["seed.eq2", "seed.rnn_jacobian", "seed.sigmoid_range", "seed.lstm_cell_jacobian",
              "seed.vanishing", "seed.bptt.product_order"]


def test_ids_are_stable_and_unique():
    ids = claim_ids()
    assert len(ids) == len(set(ids))
    for i in ("sigmoid.derivative.bound", "rnn.step_jacobian", "lstm.cell.direct_path", "seed.eq2",
              "rnn.norm_bound.chain", "cell.lstm.backward"):
        assert i in ids


def test_seed_errors_are_refuted_with_counterexample_and_correction():
    claims = run_claims(SEED_WRONG, seed=1, max_examples=5)
    for c in claims:
        assert c.verdict == "refuted", c
        assert c.counterexample and c.correction, c
    by = {c.id: c for c in claims}
    assert "diag(σ'(a)) W_hh" in by["seed.rnn_jacobian"].correction
    assert "(0, 1/4]" in by["seed.sigmoid_range"].correction
    assert "dh_10/dh_0 = 1024" in by["seed.vanishing"].counterexample


def test_json_selection(capsys):
    assert main(["--json", "--claims", "seed.eq1,sigmoid.derivative.bound", "--seed", "5"]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert [d["id"] for d in data] == ["seed.eq1", "sigmoid.derivative.bound"]
    for d in data:
        assert {"id", "statement", "verdict", "evidence"} <= set(d)
    assert data[1]["verdict"] == "proved" and data[1]["examples"] > 0
    assert "seed 5" in out.err          # the seed is printed, on stderr in JSON mode


def test_toolkit_claims_hold_on_a_small_run():
    ids = ["rnn.norm_bound.step", "rnn.norm_bound.chain", "lstm.cell.direct_path", "gates.range",
           "cell.gru.backward", "cell.lstm_peephole.step_jacobian"]
    for c in run_claims(ids, seed=2, max_examples=5):
        assert c.verdict in ("proved", "checked") and c.examples > 0, c


def test_same_seed_same_report():
    a = [c.to_json() for c in run_claims(["cell.rnn_tanh.backward"], seed=9, max_examples=5)]
    b = [c.to_json() for c in run_claims(["cell.rnn_tanh.backward"], seed=9, max_examples=5)]
    for d in a + b:
        d.pop("seconds")
    assert a == b


@pytest.mark.parametrize("argv, msg", [
    (["--claims", "nope"], "unknown claim id 'nope'"),
    (["--claims", ","], "at least one"),
    (["--profile", "fast"], "unknown profile"),
    (["--seed", "x"], "invalid int"),
])
def test_usage_errors_exit_2_with_one_line(argv, msg):
    p = subprocess.run([sys.executable, "-m", "verify", *argv], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0] and "Traceback" not in p.stderr


def test_list():
    p = subprocess.run([sys.executable, "-m", "verify", "--list"], capture_output=True, text=True)
    assert p.returncode == 0 and "seed.eq2" in p.stdout.split()


def test_negative_seed_is_a_one_line_error():
    p = subprocess.run([sys.executable, "-m", "verify", "--seed", "-1"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == ("python -m verify: error: argument --seed: must be a non-negative "
                        "integer, got -1\n")


def test_a_claim_given_twice_runs_once(capsys):
    assert main(["--json", "--claims", "seed.eq1,seed.eq1", "--seed", "3"]) == 0
    assert [d["id"] for d in json.loads(capsys.readouterr().out)] == ["seed.eq1"]


@pytest.mark.parametrize("argv0, prog", [("/usr/local/bin/rnn-verify", "rnn-verify"),
                                         ("/x/verify/__main__.py", "python -m verify")])
def test_prog_name_and_error_style(argv0, prog, monkeypatch, capsys):
    """Both CLIs: '<prog>: error: <message>', prog as invoked."""
    monkeypatch.setattr(sys, "argv", [argv0, "--claims", "nope"])
    assert main() == 2
    assert capsys.readouterr().err == f"{prog}: error: unknown claim id 'nope'; list them with --list\n"
    monkeypatch.setattr(sys, "argv", [argv0, "--help"])
    with pytest.raises(SystemExit):
        main()
    assert capsys.readouterr().out.startswith(f"usage: {prog} ")
