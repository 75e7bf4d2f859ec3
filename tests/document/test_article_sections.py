"""The article's worked example, notation crosswalk, cheat sheet and seed section (issue 15):
order, numbers recomputed independently, names against the published ones, one page."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy
import pytest

import derive
from derive.document import cheatsheet, crosswalk, worked_example
from derive.document.model import Display, Heading, Para
from derive.document.render import render_md, render_tex
from derive.document.sections import TITLE, document_blocks
from derive.document.seed_sections import seed_blocks
from derive.document.seed_text import SEED_TEXT
from derive.seed.claims import SEED_CLAIMS
from verify import oracles


@pytest.fixture(scope="module")
def blocks():
    return document_blocks([derive.cell(n) for n in derive.cells()], None, figure=False)


def test_sections_in_teaching_order(blocks):
    """The worked example follows BPTT and precedes the vanishing-gradient section; the
    crosswalk and the cheat sheet follow the summary and precede the appendices."""
    labels = [b.label for b in blocks if isinstance(b, Heading) and b.level == 1]
    order = ["sec:bptt", "sec:worked", "sec:vanishing", "sec:summary", "sec:crosswalk",
             "sec:cheatsheet", "sec:cells", "sec:seed"]
    assert all(lab in labels for lab in order), labels
    assert [labels.index(lab) for lab in order] == sorted(labels.index(lab) for lab in order)


def _sigmoid(x):
    return 1.0 / (1.0 + numpy.exp(-x))


def _loss_and_states(p, xs, h0, dhs):
    """Plain NumPy from the equations a_t = W_xh x_t + W_hh h_{t-1} + b_h, h_t = sigma(a_t);
    the loss sum_t <Delta h_t, h_t> has gradient Delta h_t with respect to h_t alone."""
    h, hs, L = h0, [], 0.0
    for x, d in zip(xs, dhs):
        h = _sigmoid(p["W_xh"] @ x + p["W_hh"] @ h + p["b_h"])
        hs.append(h)
        L += float(d @ h)
    return L, hs


def test_worked_example_numbers_recomputed():
    """Every number of the worked example, recomputed from the equations (states, step
    Jacobians by finite differences, what step 2 passes back, gradients by central
    differences of the loss), and printed rounded in the article."""
    p = {k: numpy.asarray(v, float) for k, v in worked_example.PARAMS.items()}
    xs = [numpy.asarray(x[0], float) for x in worked_example.XS]
    h0 = numpy.asarray(worked_example.H0[0], float)
    dhs = [numpy.asarray(d[0], float) for d in worked_example.DHS]
    n = worked_example.numbers()
    L, hs = _loss_and_states(p, xs, h0, dhs)
    numpy.testing.assert_allclose(n["hs"], numpy.array(hs), rtol=1e-12)
    prevs, eps = [h0, hs[0]], 1e-6
    for t in range(2):
        step = lambda h: _sigmoid(p["W_xh"] @ xs[t] + p["W_hh"] @ h + p["b_h"])  # noqa: E731
        J = oracles.fd_jacobian(step, prevs[t], eps)
        numpy.testing.assert_allclose(n["J"][t], J, atol=1e-9)
    numpy.testing.assert_allclose(n["pass2"], n["J"][1].T @ dhs[1], atol=1e-12)
    numpy.testing.assert_allclose(n["dh1"], dhs[0] + n["J"][1].T @ dhs[1], atol=1e-12)
    numpy.testing.assert_allclose(n["dh0"], n["J"][0].T @ n["dh1"], atol=1e-12)
    for name, g in n["grads"].items():
        fd = oracles.fd_gradient(lambda a: _loss_and_states({**p, name: a}, xs, h0, dhs)[0],
                                 p[name], eps)
        numpy.testing.assert_allclose(g, fd, atol=1e-8)
    md = render_md(worked_example.worked_example_blocks(None, "en"), "x")
    assert "0.6225" in md and "0.8022" in md and "0.2747" in md and "0.0627" in md


def test_crosswalk_matches_published_names():
    """Greff et al. (2017) and the PyTorch documentation, typed here from the sources: the
    crosswalk prints them through the notation maps, so the module types none of them."""
    names = crosswalk.crosswalk_names()
    assert names["w_in"]["greff"] == "W_{i}" and names["w_rec"]["greff"] == "R_{i}"
    assert names["w_peep"]["greff"] == "p_{i}" and names["g"]["greff"] == "z^{t}"
    assert names["h"]["greff"] == "y^{t}" and names["h_prev"]["greff"] == "y^{t-1}"
    assert names["w_in"]["pytorch"] == "W_{ii}" and names["w_rec"]["pytorch"] == "W_{hi}"
    assert names["w_peep"]["pytorch"] is None and names["rnn_w"]["greff"] is None
    assert names["w_in"]["seed"] == "W_{xi}" and names["rnn_w"]["seed"] == "W_{hh}"
    src = Path(crosswalk.__file__).read_text()
    assert "R_{" not in src and "W_{ii}" not in src and "y^{t}" not in src


def _prose(blocks):
    return " ".join(p for b in blocks if isinstance(b, Para) for p in b.parts if isinstance(p, str))


def test_seed_section_has_english_headings_and_complete_corrections():
    """No claim id, code name or ASCII maths in the seed section's headings and prose; no
    undefined per-step gradient or lone condition among the corrections; one name for the
    norm; a text for every claim."""
    assert set(SEED_TEXT["en"]) >= {c.id for c in SEED_CLAIMS}
    out = seed_blocks([derive.cell(n) for n in derive.cells()], None)
    heads = " ".join(b.text for b in out if isinstance(b, Heading))
    text = heads + " " + _prose(out)
    for bad in ("seed.", "rnn_sigmoid", "lstm_peephole", "sigma'", "H x H", "||", "<=",
                "lambda", "largest singular value"):
        assert bad not in text, bad
    assert ": does not hold" not in heads and "sigma" not in heads
    rows = [e for b in out if isinstance(b, Display) for e in b.eqs]
    assert not any(r"\big|_{t}" in e.lhs for e in rows)
    assert not any(e.lhs == "" and e.rhs.strip().startswith(r"\lambda") for e in rows)
    tex = render_tex(out, "x")
    assert r"\lambda_1" not in tex and r"\lVert W_{hh} \rVert_2 < 4" in tex


def test_new_sections_have_chinese_prose():
    """The Chinese edition can use the new sections: the same keys in both languages."""
    for mod in (worked_example, crosswalk, cheatsheet):
        assert set(mod.PROSE["zh"]) == set(mod.PROSE["en"]), mod.__name__
    assert "细胞状态" in crosswalk.PROSE["zh"]["c"] and "遗忘门" in crosswalk.PROSE["zh"]["f"]


@pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("pdftotext") is None,
                    reason="needs pdflatex and pdftotext")
def test_cheatsheet_fits_one_page(blocks, tmp_path):
    """Compiled twice: the cheat sheet's heading and its last formula (the LSTM's
    delta^{(t)} c_{t-1} = delta c_t * f_t) are on the same page; no overfull box, no
    undefined reference, no inverted punctuation from a wrong font encoding."""
    (tmp_path / "d.tex").write_text(render_tex(blocks, TITLE))
    for _ in range(2):
        subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "d.tex"],
                       cwd=tmp_path, check=True, capture_output=True, timeout=600)
    log = (tmp_path / "d.log").read_text(errors="replace")
    assert "Overfull" not in log and "undefined" not in log.lower()
    text = subprocess.run(["pdftotext", "-layout", "d.pdf", "-"], cwd=tmp_path, check=True,
                          capture_output=True, text=True).stdout
    assert "¡" not in text and "¿" not in text
    pages = text.split("\f")
    first = [i for i, pg in enumerate(pages) if re.search(r"\d+\s+Cheat sheet\n", pg)
             and "numerator layout" in pg]
    assert len(first) == 1
    assert "ct−1 = δct ⊙ ft" in pages[first[0]]


def test_docs_latex_printed_output():
    """The output printed in docs/latex.md is what its snippet prints."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "latex.md").read_text()
    n = worked_example.numbers()
    assert str(n["hs"].round(4).tolist()) in doc
    assert str(n["grads"]["W_hh"].round(4).tolist()) in doc
