"""The printed examples of docs/cells.md are what the engine prints, and its annotated spec is
the example file (README.md's tour is checked by test_readme.py, docs/verify.md by
tests/verify/test_docs_verify.py)."""
import doctest
import re
from pathlib import Path

from derive.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]
CELLS_DOC = ROOT / "docs" / "cells.md"


def test_cells_doc_examples_run_as_printed(monkeypatch):
    monkeypatch.chdir(ROOT)                      # the examples name examples/*.toml
    result = doctest.testfile(str(CELLS_DOC), module_relative=False)
    assert result.attempted >= 4
    assert result.failed == 0


def test_cells_doc_spec_is_the_example_file():
    """The annotated TOML in the doc defines the same cell as examples/minimal_gated_unit.toml:
    same states, parameters and equations (comments and prose may differ)."""
    text = CELLS_DOC.read_text(encoding="utf-8")
    block = re.search(r"```toml\n(\[cell\]\nname = \"minimal_gated_unit\".+?)```", text, re.S).group(1)
    shown = parse_spec(block, "docs/cells.md")
    real = parse_spec((ROOT / "examples" / "minimal_gated_unit.toml").read_text(encoding="utf-8"),
                      "examples/minimal_gated_unit.toml")
    assert shown.states == real.states
    assert {k: v.shape for k, v in shown.params.items()} == {k: v.shape for k, v in real.params.items()}
    assert [(str(e.lhs), str(e.rhs)) for e in shown.equations] == \
        [(str(e.lhs), str(e.rhs)) for e in real.equations]
