"""The spec language's division and max/min (issue 16): what they build, and one located error
for each new way to get them wrong (file:line:col, the offending operand named)."""
import pytest

from derive.core.binary import Maximum, Minimum
from derive.core.primitives import Reciprocal
from derive.spec import SpecError, parse_spec

SPEC = '''[cell]
name = "t"
states = ["h"]

[params]
W = ["H", "H"]
U = ["H", "D"]
b = ["H"]

[equations]
a = "W @ h_prev + U @ x + b"
h = "{expr}"
'''


def _cell(expr):
    return parse_spec(SPEC.format(expr=expr), "t.toml")


def test_division_builds_a_reciprocal_and_max_min_their_nodes():
    h = _cell("a / (1 + b * b)").definition("h")
    assert any(isinstance(n, Reciprocal) for n in h.atoms(Reciprocal))
    assert _cell("max(a, 0) + min(b, a)").definition("h").atoms(Maximum, Minimum)
    assert _cell("a / 2").definition("h").atoms(Reciprocal) == set()      # a scalar multiple


@pytest.mark.parametrize("expr, message, col", [
    ("a / 0", "division by zero", 5),
    ("a / W", "'/' divides by vectors; 'W' is a (H, H) matrix", 5),
    ("W / a", "'/' divides vectors; 'W' is a (H, H) matrix", 1),
    ("a / x", "shape mismatch in '/': 'a' has H rows but 'x' has D", 3),
    ("max(a)", "max() takes two arguments: expected ',', found ')'", 6),
    ("tanh(a, b)", "tanh() takes one argument", 7),
    ("max(1, 2) * a", "max() of two numbers is not a cell quantity", 1),
    ("max(W, a)", "max() applies to vectors; 'W' is a (H, H) matrix", 5),
    ("min(a, x)", "shape mismatch in min(): 'a' has H rows but 'x' has D", 1),
])
def test_each_new_error_is_one_located_line(expr, message, col):
    with pytest.raises(SpecError) as err:
        _cell(expr)
    text = str(err.value)
    assert "\n" not in text and message in text, text
    assert text.startswith(f"t.toml:12:{5 + col}:"), text
