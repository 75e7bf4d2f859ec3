"""Matrix and scalar states in the spec language ([state_shapes], outer(), dot(), ``C @ v``):
one located error (file:line:col, one line) for each way to get them wrong. An H x H matrix
state is held internally as its H^2-vector; no message shows that form ('H**2')."""
import pytest

from derive.spec import SpecError, parse_spec

SPEC = '''[cell]
name = "t"
states = ["C", "h", "m"]

[state_shapes]
{shapes}

[params]
U = ["H", "D"]

[equations]
k = "U @ x"
m = "{m}"
C = "{C}"
h = "{h}"
'''
SHAPES = 'C = ["H", "H"]\nm = ["1"]'
GOOD = {"m": "dot(k, k)", "C": "outer(k, k)", "h": "C @ k"}
LINE = {"m": 14, "C": 15, "h": 16}                  # each equation's line; its text starts at col 6


def _error(shapes=SHAPES, **eqs):
    with pytest.raises(SpecError) as err:
        parse_spec(SPEC.format(shapes=shapes, **{**GOOD, **eqs}), "t.toml")
    text = str(err.value)
    assert "\n" not in text and "H**2" not in text and "D**2" not in text, text
    return text


def test_the_good_spec_parses():
    cell = parse_spec(SPEC.format(shapes=SHAPES, **GOOD), "t.toml")
    assert tuple(cell.states) == ("C", "h", "m")


@pytest.mark.parametrize("shapes, where, message", [
    ('C = ["H", "H"]\nq = ["H", "H"]', "t.toml:7:1",
     "[state_shapes] names 'q', which is not a state; the states are C, h, m"),
    ('C = ["H", "D"]', "t.toml:6:5",
     "state 'C': shape must be [\"H\"], [\"1\"] (a scalar) or [\"H\", \"H\"] (a matrix), "
     "got ['H', 'D']"),
    ('C = "H"', "t.toml:6:5", "state 'C': shape must be [\"H\"], [\"1\"] (a scalar) or"),
])
def test_state_shapes_errors_are_located(shapes, where, message):
    text = _error(shapes=shapes + '\nm = ["1"]')
    assert text.startswith(f"{where}: ") and message in text, text


@pytest.mark.parametrize("eq, expr, message", [
    ("C", "k", "state 'C' must be an H x H matrix (H, H), got (H,); outer(u, v) of two "
               "H-vectors builds one"),
    ("C", "outer(x, x)", "state 'C' must be an H x H matrix (H, H), got a D x D matrix (D, D); "
                         "outer(u, v) of two H-vectors builds one"),
    ("m", "k", "state 'm' must be a scalar, got (H,)"),
    ("m", "C_prev", "state 'm' must be a scalar, got an H x H matrix (H, H)"),
    ("h", "outer(k, k)", "state 'h' must be an (H,) vector, got an H x H matrix (H, H)"),
])
def test_a_state_must_have_its_declared_shape(eq, expr, message):
    """Located at the equation's opening quote (column 5); h reads C_prev only, so C's own
    shape is what is checked."""
    text = _error(**{"h": "C_prev @ k", eq: expr})
    assert text == f"t.toml:{LINE[eq]}:5: {message}", text


@pytest.mark.parametrize("expr, col, message", [
    # outer(): two vectors of one shape
    ("outer(dot(k, k), k)", 7, "outer() takes vectors; 'dot(k, k)' is a scalar"),
    ("outer(U, k)", 7, "outer() takes vectors; 'U' is a (H, D) matrix"),
    ("outer(k, C_prev)", 10, "outer() takes vectors; 'C_prev' is an H x H matrix state (H, H)"),
    ("outer(k, x)", 1, "shape mismatch in outer(): 'k' has H rows but 'x' has D"),
    # '@' with a matrix state: C @ v for an H-vector v
    ("C @ x", 3, "shape mismatch in '@': 'C' is an H x H matrix state (H, H) but 'x' is (D,) "
                 "(D rows, H needed)"),
    ("C_prev @ x", 8, "shape mismatch in '@': 'C_prev' is an H x H matrix state (H, H) but "
                      "'x' is (D,) (D rows, H needed)"),
    ("C_prev @ U", 10, "the right operand of '@' after an H x H matrix must be an H-vector "
                       "(C_prev @ v); 'U' is a (H, D) matrix"),
    ("C_prev @ C", 10, "the right operand of '@' after an H x H matrix must be an H-vector "
                       "(C_prev @ v); 'C' is an H x H matrix state (H, H)"),
    ("C @ dot(k, k)", 5, "the right operand of '@' after an H x H matrix must be an H-vector "
                         "(C @ v); 'dot(k, k)' is a scalar"),
    ("U @ C_prev", 5, "the right operand of '@' must be a vector or a parameter matrix; 'C_prev' "
                      "is an H x H matrix state (H, H), which multiplies a vector on its right: "
                      "C_prev @ v"),
    ("k @ C", 1, "the left operand of '@' must be a parameter matrix (or a product of them) or "
                 "an H x H matrix state; 'k' is a vector"),
    # entrywise operations: a matrix meets a scalar or another matrix of its shape
    ("C * k", 3, "shape mismatch in '*': 'C' is an H x H matrix state (H, H) but 'k' has H rows; "
                 "the matrix times the vector is C @ k"),
    ("k * outer(k, k)", 3, "shape mismatch in '*': 'k' has H rows but 'outer(k, k)' is an H x H "
                           "matrix (H, H); the matrix times the vector is outer(k, k) @ k"),
    ("C_prev + k", 8, "shape mismatch in '+': 'C_prev' is an H x H matrix state (H, H) but 'k' "
                      "has H rows; '+' combines an H x H matrix with a scalar or another H x H "
                      "matrix"),
    ("k / C", 3, "shape mismatch in '/': 'k' has H rows but 'C' is an H x H matrix state (H, H); "
                 "'/' combines an H x H matrix with a scalar or another H x H matrix"),
    ("max(C, k)", 1, "shape mismatch in max(): 'C' is an H x H matrix state (H, H) but 'k' has "
                     "H rows; max() combines an H x H matrix with a scalar or another H x H "
                     "matrix"),
    ("dot(C_prev, k) * k", 1, "shape mismatch in dot(): 'C_prev' is an H x H matrix state (H, H) "
                              "but 'k' has H rows; dot() takes two vectors, or two H x H matrices"),
])
def test_each_matrix_state_error_is_one_located_line(expr, col, message):
    text = _error(h=expr)
    assert text == f"t.toml:16:{5 + col}: {message}", text


def test_entrywise_operations_on_a_matrix_state_are_allowed():
    """A scalar or another H x H matrix meets a matrix state entrywise; C @ k is the product."""
    for h in ("tanh(C_prev + C) @ k", "(m * C - 2 * C_prev) @ k", "max(C, 0) @ k + dot(C, C) * k"):
        parse_spec(SPEC.format(shapes=SHAPES, **{**GOOD, "h": h}), "t.toml")
