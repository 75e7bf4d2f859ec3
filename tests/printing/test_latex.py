"""LaTeX printer, notation and exporter (issue 7): naming rules, no SymPy artefacts, term
order, unique labels, line breaking that never changes content, notation maps, the API."""
import re
import subprocess
import sys
import types
from functools import lru_cache
from pathlib import Path

import pytest
import sympy
from sympy import MatAdd, MatMul

import derive
from derive.export import latex as E
from derive.document.equations import Ctx, jacobian_eqs
from derive.core.primitives import gamma_identity
from derive.printing.latex import LINE_WIDTH, Breakable, expr_latex, layout_rhs
from derive.printing.notation import MAPS, NotationError, default_body, notation_map
from derive.core.symbols import Cotangent, Incoming, Input, Param, PrevState, Var

ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=None)
def exported(notation=None):
    cells = [derive.cell(n) for n in derive.cells()]
    return E.export(cells, types.SimpleNamespace(notation=notation))


H, D = sympy.Symbol("H"), sympy.Symbol("D")


# -- naming rules --------------------------------------------------------------------------

@pytest.mark.parametrize("sym, want", [
    (Param("W_xi", H, D), "W_{xi}"),
    (Param("W_hh", H, H), "W_{hh}"),
    (PrevState("h_prev", H, 1), "h_{t-1}"),
    (PrevState("c_prev", H, 1), "c_{t-1}"),
    (Input("x", D, 1), "x_t"),
    (Var("ibar", H, 1), r"\bar{\imath}_t"),
    (Var("fbar", H, 1), r"\bar{f}_t"),
    (Var("a", H, 1), "a_t"),
    (Incoming("Delta_h", H, 1), r"\Delta h_t"),
    (Cotangent("delta_ibar", H, 1), r"\delta\bar{\imath}_t"),
    (Cotangent("delta_W_xi", H, D), r"\delta W_{xi}"),
    (Cotangent("delta_h_prev", H, 1), r"\delta^{(t)} h_{t-1}"),
])
def test_default_names(sym, want):
    got = expr_latex(sym)
    assert got.replace(" ", "") == want.replace(" ", "")


def test_no_greek_invented_from_names():
    # SymPy's own printer turns W_xi into W_{\xi}; ours must not, for any parameter name,
    # also when sympy.latex is handed a role symbol (its printmethod is the project's)
    assert sympy.latex(sympy.MatrixSymbol("W_xi", H, D)) == r"W_{\xi}"
    assert "\\" not in sympy.latex(Param("W_xi", H, D))
    for name in ("W_xi", "W_xo", "R_pi", "b_eta", "W_mu"):
        assert "\\" not in default_body(name), name
    c = derive.cell("lstm")
    for p in c.params.values():
        assert "\\" not in expr_latex(p, cell=c)


def test_cell_override_and_time_index():
    c = derive.cell("lstm_peephole")           # [latex] W_ci = "w_{ci}"
    assert expr_latex(c.symbol("W_ci"), cell=c) == "w_{ci}"
    gru = derive.cell("gru")                   # [latex] hn = "\hat{n}" (a variable: gets t)
    assert expr_latex(gru.symbol("hn"), cell=gru) == r"\hat{n}_t"


def test_printer_keeps_the_given_term_order():
    W, x, b = Param("W_xh", H, D), Input("x", D, 1), Param("b_h", H, 1)
    forward = MatAdd(MatMul(W, x), b, evaluate=False)
    backward = MatAdd(b, MatMul(W, x), evaluate=False)
    assert expr_latex(forward) == "W_{xh} x_t + b_{h}"
    assert expr_latex(backward) == "b_{h} + W_{xh} x_t"


def test_textbook_forms_of_the_rnn():
    c = derive.cell("rnn_sigmoid")
    assert expr_latex(c.jacobian("h", "h"), cell=c) == r"\operatorname{diag}\bigl(\sigma'(a_t)\bigr) W_{hh}"
    bw = c.backward()
    assert expr_latex(bw.prev_states["h"], cell=c) == r"W_{hh}^{\top} \delta a_t"
    assert expr_latex(bw.params["W_hh"], cell=c) == r"\delta a_t h_{t-1}^{\top}"
    assert expr_latex(c.definition("h"), cell=c) == r"\sigma(a_t)"
    t = derive.cell("rnn_tanh")
    assert r"\tanh'(a_t)" in expr_latex(t.jacobian("h", "h"), cell=t)


def test_lstm_products_are_hadamard():
    c = derive.cell("lstm_peephole")
    assert expr_latex(c.definition("c"), cell=c) == r"f_t \odot c_{t-1} + i_t \odot g_t"
    assert expr_latex(c.definition("h"), cell=c) == r"o_t \odot \tanh(c_t)"


# -- whole output --------------------------------------------------------------------------

@pytest.mark.parametrize("notation", list(MAPS))
def test_no_sympy_artefacts(notation):
    for path, text in exported(notation).items():
        if not path.endswith((".tex", ".md")):
            continue
        # a step-Jacobian block written as a map, d s_{t-1} -> ...: ours, not SymPy's Lambda
        text = re.sub(r"&\\mapsto|\\mathrm\{d\}\w+_\{t-1\} \\mapsto", "", text)
        for bad in ("DiagMatrix", r"\mapsto", r"\circ", r"\xi", "HadamardProduct", "MatMul",
                    "OneMatrix", "SigmoidPrime", "\x00", "\x01"):
            assert bad not in text, (path, bad)


def test_labels_are_unique_and_every_reference_resolves():
    tex = exported()["derivations.tex"]
    labels = re.findall(r"\\label\{([^}]*)\}", tex)
    assert labels and len(labels) == len(set(labels))
    for ref in re.findall(r"\\eqref\{([^}]*)\}", tex):
        assert ref in labels
    for name in derive.cells():
        snippet = exported()["latex/%s.tex" % name]
        own = re.findall(r"\\label\{([^}]*)\}", snippet)
        assert own and all(lab.startswith("eq:%s:" % name) for lab in own)
        assert len(own) == len(set(own)), name
        # the article shows every cell's step equations under the snippet's labels (it writes
        # the shared parameter-gradient form and the activation bounds once, and the teaching
        # sections add labels of their own, so the two label sets differ otherwise)
        step = {"eq:%s:%s" % (name, eq.lhs.name) for eq in derive.cell(name).equations}
        assert step <= set(own) and step <= set(labels), (name, step - set(labels))


def test_snippet_has_every_derived_item():
    """Every forward equation, Jacobian block, backward output and parameter has a label."""
    for name in ("lstm_peephole", "rnn_sigmoid", "gru"):
        c = derive.cell(name)
        snippet = derive.latex(name)
        want = [eq.lhs.name for eq in c.equations + c.readout]
        want += ["J_%s_%s" % k for k in c.step_jacobian()]
        want += [s.name for s, _ in c.backward().outputs() if not s.name[6:] in c.params]
        want += ["grad_" + p for p in c.backward().params]
        for w in want:
            assert r"\label{eq:%s:%s}" % (name, w) in snippet, w


def _one_line(rows_text):
    """An environment's rows joined back into one line per equation (labels, notag,
    alignment and continuation indents removed)."""
    body = re.sub(r"\\begin\{\w+\}|\\end\{\w+\}", "", rows_text)
    eqs = re.split(r"\\label\{[^}]*\}\s*(?:\\\\)?", body)
    out = []
    for e in eqs:
        e = e.replace(r"\notag", "").replace("\\\\", " ").replace("&", "")
        e = e.replace(r"\qquad", "").replace(r"\quad", "").replace("{}", "")
        e = re.sub(r"\s+", "", e)
        if e:
            out.append(e)
    return out


def test_line_breaking_only_inserts_breaks():
    """The broken rows of every display say exactly what the one-line print says."""
    for name in ("lstm_peephole", "lstm_fgr", "gru"):
        c = derive.cell(name)
        ctx = Ctx.of(c, None)
        eqs = jacobian_eqs(ctx)
        from derive.printing.latex import align_env
        broken = _one_line(align_env(eqs))
        flat = [re.sub(r"\s+", "", "%s=%s" % (e.lhs, Breakable.of(e.rhs).flat())) for e in eqs]
        assert broken == flat


def test_long_blocks_are_broken_into_several_lines():
    c = derive.cell("lstm_peephole")
    rhs = Ctx.of(c, None).rhs(c.jacobian("h", "h"))
    lines = layout_rhs(rhs, LINE_WIDTH - 40)
    assert len(lines) >= 3
    assert "".join(t for _, t in lines).replace(" ", "") == rhs.flat().replace(" ", "")
    # no break inside a brace group: every line has balanced braces
    for _, t in lines:
        assert t.count("{") == t.count("}"), t


def test_text_inside_braces_is_one_piece():
    """Scaffolding around a breakable sum keeps the braces' content in one piece: the only
    break is the one after the group."""
    rhs = (r"\frac{a + b}{c}" + Breakable.of("").then(0, " + d"))
    lines = layout_rhs(rhs, 1.0)
    assert [t.strip() for _, t in lines] == [r"\frac{a + b}{c}", "+ d"]


# -- the bound identity ----------------------------------------------------------------------

def test_sigmoid_gap_identity_is_true_and_printed():
    """1/4 - sigma(1 - sigma) = (sigma - 1/2)^2, checked here by exact arithmetic at rational
    points of sigma in (0, 1), independently of how the exporter found it."""
    from derive.core.primitives import Sigmoid, Tanh
    p, gamma, a, ustar = gamma_identity(Sigmoid)
    assert gamma == sympy.Rational(1, 4) and ustar == sympy.Rational(1, 2) and a == 1
    for k in range(1, 20):
        s = sympy.Rational(k, 20)
        assert sympy.Rational(1, 4) - s * (1 - s) == (s - sympy.Rational(1, 2)) ** 2
    snippet = derive.latex("rnn_sigmoid")
    assert r"\frac{1}{4} - \sigma'(u) &= \left(\sigma(u) - \frac{1}{2}\right)^{2}" in snippet
    p, gamma, a, ustar = gamma_identity(Tanh)
    assert gamma == 1 and ustar == 0
    assert r"1 - \tanh'(u) &= \tanh(u)^{2}" in derive.latex("rnn_tanh")


def test_pascanu_bound_uses_gamma_of_the_activation():
    s = derive.latex("rnn_sigmoid")
    assert r"\bigl(\frac{1}{4} \, \lVert W_{hh} \rVert_2\bigr)^{t-k}" in s
    t = derive.latex("rnn_tanh")
    assert r"\bigl(\lVert W_{hh} \rVert_2\bigr)^{t-k}" in t
    assert "pascanu" not in derive.latex("lstm")      # the LSTM Jacobian is not diag(f') W


def test_bptt_double_sum_has_the_immediate_partial():
    s = derive.latex("rnn_sigmoid")
    row = next(r for r in s.splitlines() if "eq:rnn_sigmoid:bptt_sum" in r)
    assert r"\frac{\partial^{+} h_k}{\partial W_{hh}}" in row
    assert r"\label{eq:rnn_sigmoid:rec_delta_a}" in s
    assert r"\delta a_k &= \Delta h_k \odot \sigma'(a_k)" in s


# -- notation maps -----------------------------------------------------------------------------

def test_greff_notation():
    c = derive.cell("lstm_peephole")
    g = lambda n: expr_latex(c.symbol(n), cell=c, notation="greff")   # noqa: E731
    assert g("W_xi") == "W_{i}" and g("W_hi") == "R_{i}" and g("W_ci") == "p_{i}"
    assert g("W_xc") == "W_{z}" and g("g") == "z^{t}" and g("h") == "y^{t}"
    assert g("h_prev") == "y^{t-1}" and g("c_prev") == "c^{t-1}" and g("x") == "x^{t}"
    text = exported("greff")["latex/lstm_peephole.tex"]
    assert "{x^{t}{}}^{\\top}" in text        # transposed superscripted symbol is grouped
    # the RNN cells have no Greff names: only the time index moves up
    r = derive.cell("rnn_tanh")
    assert expr_latex(r.symbol("W_hh"), cell=r, notation="greff") == "W_{hh}"


def test_pytorch_notation():
    c = derive.cell("lstm")
    p = lambda n: expr_latex(c.symbol(n), cell=c, notation="pytorch")   # noqa: E731
    assert p("W_xi") == "W_{ii}" and p("W_hi") == "W_{hi}" and p("W_xc") == "W_{ig}"
    assert p("b_c") == "b_{g}"
    r = derive.cell("rnn_tanh")
    assert expr_latex(r.symbol("W_xh"), cell=r, notation="pytorch") == "W_{ih}"


@pytest.mark.parametrize("notation", list(MAPS))
def test_notation_names_are_distinct_within_each_cell(notation):
    for name in derive.cells():
        c = derive.cell(name)
        seen = {}
        for sym in c.variables.values():
            tex = expr_latex(sym, cell=c, notation=notation)
            assert tex not in seen, (name, sym.name, seen.get(tex))
            seen[tex] = sym.name


def test_unknown_notation():
    with pytest.raises(NotationError, match="greff"):
        notation_map("nope")
    with pytest.raises(ValueError, match="nope"):
        derive.latex("lstm", notation="nope")


def test_cli_unknown_notation_exit_2():
    r = subprocess.run([sys.executable, "-m", "derive", "--notation", "nope", "--cells",
                        "rnn_tanh", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2
    assert "nope" in r.stderr and "greff" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_pdf_without_engine_is_a_clear_error(tmp_path):
    env = {"PATH": str(tmp_path / "empty"), "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "derive", "--cells", "rnn_tanh", "--pdf",
                        "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True,
                       text=True, env=env)
    assert r.returncode == 3
    assert "pdflatex" in r.stderr and "apt-get install" in r.stderr
    assert "Traceback" not in r.stderr
    # without --pdf the missing engine does not matter
    r = subprocess.run([sys.executable, "-m", "derive", "--cells", "rnn_tanh", "--out",
                        str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr


# -- API ---------------------------------------------------------------------------------------

def test_api_returns_the_exported_strings():
    files = exported()
    for name in ("lstm", "rnn_sigmoid"):
        assert derive.latex(name) == files["latex/%s.tex" % name]
        assert derive.latex(derive.cell(name)) == files["latex/%s.tex" % name]
    c = derive.cell("rnn_sigmoid")
    sym, expr = c.backward().outputs()[0]
    assert derive.latex((sym, expr), cell=c) == r"\delta a_t = \Delta h_t \odot \sigma'(a_t)"
    with pytest.raises(TypeError, match="cannot print"):
        derive.latex(3.5)
    with pytest.raises(KeyError, match="no_such_cell"):
        derive.latex("no_such_cell")


def test_jupyter_repr():
    c = derive.cell("lstm")
    r = c._repr_latex_()
    assert r.startswith("$$\\begin{aligned}") and r.endswith("\\end{aligned}$$")
    assert r"\bar{\imath}_t &= W_{xi} x_t + W_{hi} h_{t-1} + b_{i}" in r


def test_committed_snippets_equal_the_printer_output():
    """out/latex/*.tex are what the printer makes of the derived expressions (the same check
    as python -m derive --check, for this exporter's files)."""
    out = ROOT / "out"
    if not (out / "latex").is_dir():
        pytest.skip("out/latex not generated yet (the lead regenerates out/)")
    files = exported()
    for path, text in files.items():
        assert (out / path).read_text(encoding="utf-8") == text, path


def test_a_superscripted_base_is_grouped_and_closed_before_another_superscript():
    """{\\tilde{r}^{i}}^\\top is a double superscript for TeX with amsmath (its accents look past
    the closing brace for scripts); an empty group ends the base: {\\tilde{r}^{i}{}}^\\top."""
    from derive.core.matrixstate import superscript_base, transposed_latex
    assert superscript_base(r"\tilde{r}^{i}_t") == r"{\tilde{r}^{i}_t{}}"
    assert superscript_base(r"\tilde{r}_t") == r"\tilde{r}_t"
    assert transposed_latex(r"\tilde{r}^{i}_t") == r"{\tilde{r}^{i}_t{}}^\top"
