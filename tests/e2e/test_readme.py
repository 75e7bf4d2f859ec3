"""README.md stays true: its examples run, its two set-up commands are where .ci/run finds them."""
import doctest
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_readme_examples_run_as_printed():
    result = doctest.testfile(str(README), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_readme_has_the_two_setup_commands_ci_runs():
    text = README.read_text(encoding="utf-8")
    for marker in ("main-command", "test-command"):
        block = re.search(rf"<!-- {marker} -->\n```bash\n(.+?)\n```\n<!-- /{marker} -->", text, re.S)
        assert block, marker
        assert block.group(1).startswith("pip install -e ")
    assert "python -m derive" in text and "python -m pytest" in text
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "main-command" in ci and "test-command" in ci


def test_package_docstring_examples_run():
    import derive
    result = doctest.testmod(derive)
    assert result.attempted > 0 and result.failed == 0
