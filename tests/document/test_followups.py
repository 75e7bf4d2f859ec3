"""The proofreading follow-ups of the notes (issue 15) and the appendix sections of the new
cells (issue 16), each pinned on the rendered article of both editions."""
import re
from functools import lru_cache

import pytest

import derive
from derive.document import sections
from derive.document.sections import document_blocks, reading_order
from derive.document.render import render_md, render_tex

CELLS = tuple(derive.cells())


@lru_cache(maxsize=None)
def article(lang, kind="tex"):
    blocks = document_blocks([derive.cell(n) for n in CELLS], None, figure=True, lang=lang)
    render = render_tex if kind == "tex" else render_md
    return render(blocks, sections.TITLE, lang)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_cell_names_in_the_table_are_code(lang):
    """Item 9: the table prints \\texttt{rnn\\_sigmoid}, never "rnn sigmoid"."""
    tex = article(lang)
    assert r"\texttt{rnn\_sigmoid}" in tex and "rnn sigmoid" not in tex


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_omitted_appendix_displays_point_to_the_main_text(lang):
    """Item 10: where the main text already shows a cell's forward step, the appendix says
    so with a link (A.1 and A.5 used to drop it silently)."""
    tex = article(lang)
    line = {"en": r"The forward step is in the main text: \eqref{eq:rnn_sigmoid:a}.",
            "zh": r"前向一步见正文~\eqref{eq:rnn_sigmoid:a}。"}[lang]
    assert line in tex


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_gru_jacobians_are_named_by_convention_and_one_minus_z_stays_whole(lang):
    """Items 4 and 5: the GRU Jacobians' subscripts are Cho and PyTorch (not code names),
    and no display line ends inside (1 - z_t)."""
    tex = article(lang)
    assert r"\Big|_{\text{Cho}}" in tex and r"\Big|_{\text{PyTorch}}" in tex
    assert "gru_cho}" not in tex.replace(r"app:gru_cho}", "").replace("eq:gru_cho:", "")
    assert not re.search(r"\(1 \\notag", tex)


def test_english_prose_fixes():
    """Items 2, 4, 6: 2×2 (not 2 x 2), no ASCII symbol names in the notation line, the
    chain rule's row before the value of eq. (6)."""
    tex = article("en")
    assert "2 x 2" not in tex and "2 by 2" not in tex and r"2\ensuremath{\times}2" in tex
    assert "W_xi" not in tex and "h_t-1" not in tex
    assert "Across the steps from $k$ to t" in tex
    assert (r"\frac{\partial h_t}{\partial h_{t-1}} &= \frac{\partial h_t}{\partial a_t} "
            r"\frac{\partial a_t}{\partial h_{t-1}}") in tex


def test_chinese_prose_fixes():
    """Items 2, 3, 7, 8: the notation map and the cheat sheet's subscript in Chinese; the
    worked example's δa₂; the seed section's formula for h ⊙ (1 − h) and its "in words"
    line before the quotation."""
    tex = article("zh")
    assert "seed（原笔记的记号" in tex and r"\text{cell path}" not in tex
    assert r"\text{细胞状态路径}" in tex
    assert "第 2 步预激活的梯度" in tex and "第 2 步的 delta" not in tex
    assert "各分量乘以一减去它们" not in tex and r"$h_t \odot (1 - h_t)$" in tex
    assert "原笔记是用文字这样说的" not in tex
    assert tex.count("原文用文字叙述，写成公式即：") == 3


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_worked_example_names_the_given_gradients_and_prints_four_decimals(lang):
    """Item 7: the given vectors are ∇_{h_t} L_t (not Δh_t); ∂L/∂h_1 = ∇_{h_1}L_1 +
    δ^{(2)}h_1; computed numbers with four decimals (0.1530, not 0.153)."""
    md = article(lang, "md")
    assert r"\nabla_{h_1} L_{1} + \delta^{(2)} h_1" in md
    assert "0.1530 & 0.0710" in md and "0.153 &" not in md


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_seed_quotations_are_complete_displays(lang):
    """Item 8: the bare double sum of B.8 ends in \\cdots; a lone σ (B.2) is no display."""
    tex = article(lang)
    assert r"\sum_{t=0}^{T} \sum_{k=0}^{t} \cdots" in tex
    assert "\\begin{gather*}\n\\sigma\n\\end{gather*}" not in tex


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_new_cells_in_the_appendix(lang):
    """The recent cells (and layer norm) come last, in a table of their own, with headings that keep their
    names' capitals, a reference line in the edition's language, H defined where the sLSTM
    uses it and no time index on the LRU's parameter-only quantities."""
    tex = article(lang)
    names = [c.name for c in reading_order([derive.cell(n) for n in CELLS])]
    assert names[-7:] == ["mingru", "minlstm", "slstm", "lru", "lnlstm", "mlstm", "gated_deltanet"]
    assert tex.count(r"\begin{tabular}") >= 2
    tables = [t.split(r"\end{tabular}")[0] for t in tex.split(r"\begin{tabular}")[1:]]
    recent_table, = [t for t in tables if r"\texttt{mingru}" in t]
    assert all(r"\texttt{%s}" % n.replace("_", r"\_") in recent_table for n in names[-7:])
    assert r"\texttt{lstm}" not in recent_table
    assert "{sLSTM" in tex and "{minGRU" in tex and "SLSTM" not in tex and "MinGRU" not in tex
    slstm = tex.split(r"\label{app:slstm}")[1].split(r"\subsection")[0]
    assert "Heaviside" in slstm and "\\Theta(0) = \\tfrac{1}{2}" in slstm
    lru = tex.split(r"\label{app:lru}")[1].split(r"\section")[0]
    assert r"|\lambda| &= \exp" in lru and r"|\lambda|_t" not in lru
    assert r"\gamma &= \sqrt{1 - |\lambda| \odot |\lambda|}" in lru
    if lang == "zh":
        assert "出处：Orvieto、Smith" in lru and "出处：Beck、Pöppel" in slstm
