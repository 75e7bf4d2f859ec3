"""Typography of the rendered prose (issue 15, items 2 and 4), checked on the renderer and on
the exported Chinese edition:

* a reference whose LaTeX starts or ends with a control sequence (``\\eqref{..}``,
  ``图~\\ref{..}``) beside a CJK ideograph is separated from it by ``~`` (xeCJK cannot see
  through the link box: "图 1在", "见(9)" otherwise); never a space inside 在图 or 第…节;
* a straight single quote opens (`) after a non-letter (``nonlinearity='tanh'``) and is an
  apostrophe or closing quote (') after a letter (``Greff's``);
* the Chinese data for the appendix has no English prose: every built-in cell has a Chinese
  reference line (:data:`prose_zh.CELL_REFERENCE`) and every notation map a Chinese
  description (:data:`prose_zh.NOTATION_DESC`), with English left only in titles inside
  “…”, code names and paper names (no two consecutive lower-case English words).
"""
from __future__ import annotations

import re
import types
from functools import lru_cache

import derive
from derive.document import prose_zh
from derive.document.model import Ref
from derive.document.render import _tex_parts, is_ideograph, tex_text
from derive.export import latex as E
from derive.printing.notation import notation_map

IDEO = "[\u3400-\u9fff]"


@lru_cache(maxsize=None)
def zh_tex():
    cells = [derive.cell(n) for n in derive.cells()]
    return E.export(cells, types.SimpleNamespace(notation=None, lang="zh"))["derivations.zh.tex"]


def test_a_reference_beside_an_ideograph_is_spaced_in_chinese():
    eq, eq2 = Ref("eq:a", "(1)"), Ref("eq:b", "(2)")
    assert _tex_parts(["推导见", eq, "、", eq2, "。"], "zh") == \
        r"推导见~\eqref{eq:a}、\eqref{eq:b}。"
    assert _tex_parts([Ref("fig:f", "f", "fig"), "在随机网络上"], "zh") == r"图~\ref{fig:f}~在随机网络上"
    assert _tex_parts(["在", Ref("sec:s", "s", "sec"), "中"], "zh") == r"在第~\ref{sec:s}~节中"
    assert _tex_parts(["见", eq, "，"], "zh") == r"见~\eqref{eq:a}，"
    assert _tex_parts(["see ", eq, " and"], "en") == r"see \eqref{eq:a} and"


def test_no_reference_touches_an_ideograph_in_the_exported_zh_tex():
    tex = zh_tex()
    assert r"\eqref" in tex
    assert not re.search(IDEO + r"\\(eq)?ref\{", tex)
    assert not re.search(r"\\(eq)?ref\{[^}]*\}" + IDEO, tex)


def test_is_ideograph_excludes_cjk_punctuation():
    assert is_ideograph("图") and is_ideograph("见")
    assert not any(is_ideograph(c) for c in "，。、：；（）“”a1")


def test_straight_single_quotes_open_after_a_non_letter():
    assert tex_text("torch.nn.RNN (nonlinearity='tanh')") == "torch.nn.RNN (nonlinearity=`tanh')"
    assert tex_text("Greff's 'vanilla' model") == "Greff's `vanilla' model"
    assert tex_text("'x'") == "`x'"
    assert tex_text("'tanh'", "zh") == "`tanh'"


def _english_prose(text):
    """Runs of two lower-case English words outside “…” titles (code names have no spaces)."""
    return re.findall(r"\b[a-z]{2,} [a-z]{2,}\b", re.sub(r"“[^”]*”", "", text))


def test_every_builtin_cell_has_a_chinese_reference_line():
    for name in derive.cells():
        c = derive.cell(name)
        if not c.reference:
            continue
        line = prose_zh.reference_line(c)
        assert line != c.reference and re.search(IDEO, line), name
        assert not _english_prose(line), (name, _english_prose(line))
    assert set(prose_zh.CELL_REFERENCE) == {n for n in derive.cells() if derive.cell(n).reference}


def test_a_user_cell_keeps_its_own_reference():
    c = types.SimpleNamespace(name="my_cell", reference="My paper (2025)")
    assert prose_zh.reference_line(c) == "My paper (2025)"


def test_every_notation_map_has_a_chinese_description():
    for name in ("seed", "greff", "pytorch"):
        assert notation_map(name).name == name
        desc = prose_zh.NOTATION_DESC[name]
        assert desc.startswith(name + "（") and re.search(IDEO, desc)
        assert not _english_prose(desc) and "_" not in desc, desc
