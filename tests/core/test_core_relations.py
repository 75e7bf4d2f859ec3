"""Symbols carry their relations (issue 13): a previous state knows its state, a derivative
node its primitive, a cell its Elman form; the readout's transpose rule and the activation
identity are derived in core and fail with a proper error."""
import ast
from pathlib import Path

import pytest
import sympy
from sympy import DiagMatrix, MatMul, Matrix

import derive
from derive.core.cell import CellError, ElmanForm
from derive.core.primitives import (ALL_PRIMITIVES, FUNCTIONS, PrimitiveError, Reciprocal, Sigmoid, Tanh,
                               gamma_identity)
from derive.spec.tables import parse_spec
from derive.core.symbols import D, H, Cotangent, Incoming, LossGradient, PrevState, Var

ROOT = Path(__file__).resolve().parents[2]

_ELMAN = """
[cell]
name = "t"
states = ["h"]
[params]
W_hh = ["H", "H"]
W_xh = ["H", "D"]
[equations]
a = "W_hh @ h_prev + W_xh @ x"
h = "%s"
[readout_params]
W_hy = ["H", "H"]
[readout]
y = "%s"
"""


def test_prev_state_incoming_and_adjoint_name_what_they_belong_to():
    """For every built-in cell and state: s_prev.state == s, Delta_s.state == s, and every
    named delta's target is a symbol of the cell (or a previous state / x / a parameter)."""
    for name in derive.cells():
        c = derive.cell(name)
        bw = c.backward()
        for s in c.states:
            assert c.prev[s].state == s
            assert bw.incoming[s].state == s
        for sym, _ in bw.outputs():
            assert sym.target in c.variables, (name, sym)
    assert PrevState.of("c").name != PrevState.of("h").name
    assert LossGradient.of(Var("y", H, 1)).of_name == "y"
    with pytest.raises(ValueError, match="not a name made by"):
        PrevState("h", H, 1).state


def test_derivative_nodes_know_their_primitive():
    """f.derivative.primitive is f; the derivative is d/dx of the primitive (SymPy's diff as
    the oracle); primitives themselves have no primitive. The primitives with a derivative are
    the spec language's functions and 1/x (what ``a / b`` is built from); the step H (the
    derivative of max and min) has none."""
    x = sympy.Symbol("x", real=True)
    with_derivative = [p for p in ALL_PRIMITIVES if not p.is_derivative and p.derivative]
    assert set(with_derivative) == set(FUNCTIONS.values()) | {Reciprocal}
    assert [p.name for p in ALL_PRIMITIVES if not p.is_derivative and not p.derivative] == ["step"]
    for f in with_derivative:
        d = f.derivative
        assert d.primitive is f and d.is_derivative
        assert f.primitive is None
        if f.name != "relu":
            assert sympy.simplify(sympy.diff(f.scalar(x), x) - d.scalar(x)) == 0
    assert {p for p in ALL_PRIMITIVES if p.is_derivative} == {f.derivative for f in with_derivative}


@pytest.mark.parametrize("name,act", [("rnn_sigmoid", Sigmoid), ("rnn_tanh", Tanh),
                                      ("rnn_relu", FUNCTIONS["relu"])])
def test_elman_form_of_the_elman_cells(name, act):
    c = derive.cell(name)
    form = c.elman_form()
    assert isinstance(form, ElmanForm)
    assert form.state == "h" and form.matrix == c.symbol("W_hh") and form.primitive is act
    assert form.preactivation == c.symbol("a")
    # the block is exactly diag(f'(a)) W_hh, built by hand
    assert c.jacobian("h", "h") == MatMul(DiagMatrix(act.derivative(c.symbol("a"))),
                                          c.symbol("W_hh"))


@pytest.mark.parametrize("name", ["lstm", "lstm_peephole", "gru"])
def test_no_elman_form_for_gated_cells(name):
    c = derive.cell(name)
    assert c.elman_form() is None
    assert all(c.elman_form(s) is None for s in c.states)


def test_elman_form_rejects_a_scaled_block():
    """h = tanh(2 a): the block is diag(2 tanh'(2a)) W_hh, not diag(f'(u)) W exactly."""
    c = parse_spec(_ELMAN % ("tanh(2 * a)", "W_hy @ h"), path="t.toml")
    assert c.elman_form() is None
    c = parse_spec(_ELMAN % ("tanh(a)", "W_hy @ h"), path="t.toml")
    assert c.elman_form().matrix.name == "W_hh"


def test_readout_backward_against_the_explicit_jacobian():
    """nabla_h L = (dy/dh)^T nabla_y L, with dy/dh from SymPy's Matrix.jacobian of the
    explicit 3-unit readout; the W_hy gradient is nabla_y h^T entry by entry."""
    c = derive.cell("rnn_sigmoid")
    grads, params = c.readout_backward()
    n = {H: 3, D: 2}
    W = c.symbol("W_hy").subs(n).as_explicit()
    b = c.symbol("b_y").subs(n).as_explicit()
    h = Var("h", H, 1).subs(n).as_explicit()
    g = LossGradient.of(c.symbol("y")).subs(n).as_explicit()
    y = W * h + b
    assert (grads["h"].subs(n).as_explicit() - y.jacobian(h).T * g).expand() == Matrix.zeros(3, 1)
    dW = params["W_hy"].subs(n).as_explicit()
    for i in range(3):
        for j in range(3):
            assert sympy.expand(dW[i, j] - sum(g[k] * sympy.diff(y[k], W[i, j]) for k in range(3))) == 0


def test_readout_of_a_non_state_is_a_cell_error():
    c = parse_spec(_ELMAN % ("tanh(a)", "W_hy @ a"), path="t.toml")
    with pytest.raises(CellError, match="reads 'a', which is not a state"):
        c.readout_backward()


def test_gamma_identity_by_expansion():
    """sigmoid: 1/4 - U(1 - U) = (U - 1/2)^2; tanh: 1 - (1 - U^2) = U^2 (checked here by
    SymPy's expand, independently of the engine's construction)."""
    for prim, (gamma, a, ustar) in ((Sigmoid, (sympy.Rational(1, 4), 1, sympy.Rational(1, 2))),
                                    (Tanh, (1, 1, 0))):
        p, g, aa, us = gamma_identity(prim)
        assert (g, aa, us) == (gamma, a, ustar)
        U = next(iter(p.free_symbols))
        assert sympy.expand(g - p - aa * (U - us) ** 2) == 0
    assert gamma_identity(FUNCTIONS["relu"]) is None


def test_gamma_identity_raises_a_primitive_error_not_an_assertion(monkeypatch):
    """A wrong gamma (1/3 for the sigmoid) makes gamma - f' no square: PrimitiveError."""
    gamma_identity.cache_clear()
    monkeypatch.setattr(Sigmoid, "gamma", classmethod(lambda cls: sympy.Rational(1, 3)))
    try:
        with pytest.raises(PrimitiveError, match="sigmoid: gamma - sigmoid_prime"):
            gamma_identity(Sigmoid)
    finally:
        gamma_identity.cache_clear()


def _imports(path):
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            out.add(("." * node.level) + (node.module or ""))
    return out


def test_core_imports_no_printer_or_exporter():
    """cell, symbols and primitives (function-level imports included) import nothing from the
    printers, the documents, the seed or the registry: the old cycle cell -> latex_printer ->
    export_latex -> seed -> registry -> spec -> cell is gone (the layer rule itself is
    tests/e2e/test_architecture.py)."""
    banned = {"printing", "export", "seed", "spec", "document", "api", "codegen", "analysis"}
    for mod in ("cell", "symbols", "primitives", "algebra"):
        for imp in _imports(ROOT / "derive" / "core" / f"{mod}.py"):
            if imp.startswith("derive."):
                assert imp.split(".")[1] in ("core",), (mod, imp)
            elif imp.startswith("."):
                assert not any(part in banned for part in imp.lstrip(".").split(".")), (mod, imp)


def test_display_hooks_registered_by_the_printing_layer():
    """Jupyter and sympy.latex print cells and their symbols with the project's names."""
    c = derive.cell("rnn_sigmoid")
    tex = c._repr_latex_()
    assert tex.startswith("$$\\begin{aligned}") and r"h_t &= \sigma(a_t)" in tex
    assert sympy.latex(Cotangent("delta_a", H, 1)) == r"\delta a_t"
    assert sympy.latex(Incoming("Delta_h", H, 1)) == r"\Delta h_t"
    assert sympy.latex(LossGradient.of(Var("y", H, 1))) == r"\nabla_{y_t} L_{t}"
