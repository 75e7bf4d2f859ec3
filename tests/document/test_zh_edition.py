"""The Chinese edition (derivations.zh.tex / .zh.md): every English prose key has a Chinese
one with the same formula slots; the .tex compiles with xelatex in two passes with no
overfull box, undefined reference or float too large; every formula of the .md parses in
KaTeX; the seed's terms and the zh/en glossary are in it; ``--lang`` picks the editions.

Skips only when the tool is absent: xelatex (CI installs texlive-xetex, texlive-lang-chinese,
texlive-fonts-recommended, fonts-noto-cjk) or node/npm.
"""
import re
import shutil
import subprocess
import types
from functools import lru_cache

import pytest

import derive
from derive.cli import main, run
from derive.document import lstm_story, prose_zh, sections, teaching
from derive.document.render import render_tex, tex_text
from derive.export import latex as E
from derive.seed.note_zh import GLOSSARY

from tests.document.test_latex_render import KATEX_DIR, _katex_ready, log_problems, tex_twice, write

TABLES = [("teaching", teaching.PROSE), ("lstm_story", lstm_story.PROSE),
          ("appendix", sections.APPENDIX_PROSE)]
SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
SEED_TERMS = ("梯度消失", "反向传播", "链式法则", "连乘", "记忆", "细胞状态", "上下文",
              "遗忘门", "输入门", "输出门")
ZH_FILES = {"derivations.zh.tex", "derivations.zh.md"}
EN_FILES = {"derivations.tex", "derivations.md"}


@lru_cache(maxsize=None)
def exported(lang="zh"):
    cells = [derive.cell(n) for n in derive.cells()]
    return E.export(cells, types.SimpleNamespace(notation=None, lang=lang))


@pytest.mark.parametrize("name,table", TABLES)
def test_every_prose_key_has_both_languages_with_the_same_slots(name, table):
    """The zh table has exactly the en keys, each with the same {slot} names (so every
    formula of the English sentence is in the Chinese one), and Chinese text."""
    en, zh = table["en"], table["zh"]
    assert set(en) == set(zh), (name, set(en) ^ set(zh))
    for key in en:
        assert set(SLOT.findall(en[key])) == set(SLOT.findall(zh[key])), (name, key)
        if re.search(r"[a-z]{3} [a-z]{3}", en[key]):          # a sentence, not a name
            assert re.search(r"[\u4e00-\u9fff]", zh[key]), (name, key)


def test_the_chinese_edition_uses_the_seed_terms_and_has_the_glossary():
    md = exported()["derivations.zh.md"]
    for term in SEED_TERMS:
        assert term in md, term
    for zh, en in GLOSSARY:
        assert "| %s | %s |" % (zh, en) in md, zh
    assert "# " + prose_zh.GLOSSARY_HEADING in md


def test_fixed_labels_are_chinese():
    tex = exported()["derivations.zh.tex"]
    assert r"\documentclass[UTF8" in tex and "{ctexart}" in tex
    assert "Noto Serif CJK SC" in tex and "Noto Sans CJK SC" in tex
    assert r"\usepackage[T1]{fontenc}" not in tex               # xelatex: Unicode fonts
    for english in (r"Section~\ref", r"Figure~\ref", r"Appendix~\ref", "{References}"):
        assert english not in tex, english
    assert r"第~\ref{sec:summary}~节" in tex and r"\renewcommand{\refname}{参考文献}" in tex
    assert "of Elman" not in tex and "Elman~\\cite{elman1990}" in tex
    md = exported()["derivations.zh.md"]
    assert "“总结”一节" in md and "the summary" not in md


def test_curly_quotes_stay_in_chinese_and_become_tex_quotes_in_english():
    assert tex_text("“法国”", "zh") == "“法国”"
    assert tex_text("“France”") == "``France''"
    assert "ctexart" not in render_tex([], "t") and "ctexart" in render_tex([], "t", "zh")


def _xelatex(where, name):
    return tex_twice("xelatex", where, name)


def test_zh_tex_compiles_with_xelatex_twice_cleanly(tmp_path):
    """Two xelatex passes: no error, no undefined or multiply defined reference, nothing to
    rerun, no overfull box, no float too large; the PDF has the Chinese text."""
    write(exported(), tmp_path)
    log = _xelatex(tmp_path, "derivations.zh.tex")
    assert log_problems(log) == []
    assert not re.search(r"Font shape `[^']*' undefined", log)
    pdftotext = shutil.which("pdftotext")
    if pdftotext:
        text = subprocess.run([pdftotext, str(tmp_path / "derivations.zh.pdf"), "-"],
                              capture_output=True, text=True, timeout=120).stdout
        assert "目录" in text and "长程依赖问题" in text and "梯度消失" in text
        assert "¡" not in text and "¿" not in text


def test_every_formula_of_the_zh_md_parses_in_katex(tmp_path):
    node = _katex_ready()
    write({"derivations.zh.md": exported()["derivations.zh.md"]}, tmp_path)
    r = subprocess.run([node, str(KATEX_DIR / "check.js"), str(tmp_path / "derivations.zh.md")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"(\d+) of (\d+) math items parsed", r.stdout)
    assert m and m.group(1) == m.group(2) and int(m.group(2)) > 100


def test_lang_selects_the_editions():
    """en: only the English article; zh: only the Chinese one; all (the default, also when
    the option is absent): both; the snippets are written in every case."""
    cells = [derive.cell("rnn_sigmoid")]

    def names(**opts):
        files = E.export(cells, types.SimpleNamespace(notation=None, figure=False, **opts))
        assert "latex/rnn_sigmoid.tex" in files
        return {f for f in files if f.startswith("derivations")}
    assert names(lang="en") == EN_FILES
    assert names(lang="zh") == ZH_FILES
    assert names(lang="all") == names() == EN_FILES | ZH_FILES


@pytest.mark.parametrize("lang,wanted,unwanted", [("en", EN_FILES, ZH_FILES),
                                                  ("zh", ZH_FILES, EN_FILES)])
def test_cli_lang_writes_only_that_edition(tmp_path, capsys, lang, wanted, unwanted):
    out = tmp_path / "out"
    assert run(["--cells", "rnn_sigmoid", "--no-figure", "-q", "--lang", lang,
                "--out", str(out)]) == 0
    written = {p.name for p in out.iterdir()}
    assert wanted <= written and not (unwanted & written)
    assert (out / "latex" / "rnn_sigmoid.tex").is_file()            # language-neutral


def test_cli_rejects_an_unknown_language(capsys):
    assert main(["--lang", "fr"], prog="derive") == 2
    err = capsys.readouterr().err
    assert "--lang" in err and "fr" in err and "Traceback" not in err


def _leaves(table, path=()):
    """(key path, text) of every string of a nested prose table."""
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _leaves(value, path + (key,))
        else:
            yield path + (key,), value


def _keys(table):
    return {k: _keys(v) if isinstance(v, dict) else None for k, v in table.items()}


def test_seed_text_has_both_languages_with_the_same_keys_and_slots():
    """SEED_TEXT["zh"] has the en keys at every level (each claim: heading, said, note,
    why), every string the same {slot} names, and every sentence Chinese text."""
    from derive.document.seed_text import SEED_TEXT
    from derive.seed.claims import SEED_CLAIMS
    en, zh = SEED_TEXT["en"], SEED_TEXT["zh"]
    assert _keys(en) == _keys(zh)
    assert {c.id for c in SEED_CLAIMS} <= set(zh)
    zh_text = dict(_leaves(zh))
    for path, text in _leaves(en):
        assert set(SLOT.findall(text)) == set(SLOT.findall(zh_text[path])), path
        if re.search(r"[a-z]{3} [a-z]{3}", text):
            assert re.search(r"[\u4e00-\u9fff]", zh_text[path]), path


def test_the_zh_seed_section_is_chinese():
    """No heading or sentence of the English seed section is in the Chinese edition; its
    headings and the terms of the corrected note are; the English edition is unchanged."""
    from derive.document.seed_text import SEED_TEXT
    en, zh = SEED_TEXT["en"], SEED_TEXT["zh"]
    md, tex = exported()["derivations.zh.md"], exported()["derivations.zh.tex"]
    for table in (en, zh):
        assert all(isinstance(table[k], str) for k in ("h", "intro", "holds", "not"))
    headings = [en["h"]] + [v["h"] for v in en.values() if isinstance(v, dict) and "h" in v]
    for english in headings + [en["intro"][:40], en["corrected"], en["see"],
                               "needs a correction"]:
        assert english not in md, english
    assert "# %s\n" % zh["h"] in md and zh["h"] in tex
    assert "### %s：正确" % zh["seed.eq1"]["h"] in md
    assert "### %s：需要修正" % zh["seed.typo"]["h"] in md
    seed = md[md.index("# %s\n" % zh["h"]):]
    for term in ("梯度消失", "反向传播", "链式法则", "连乘", "细胞状态", "遗忘门", "输入门",
                 "输出门", "候选记忆", "循环权重矩阵"):
        assert term in seed, term
    en_md = exported("en")["derivations.md"]
    assert "# %s\n" % en["h"] in en_md and "### %s: correct" % en["seed.eq1"]["h"] in en_md


def test_appendix_cell_descriptions_and_reference_lines_are_chinese():
    """CELL_WHAT has the same cells in both languages; the zh table and headings use the
    Chinese description and the reference lines read 出处：… in Chinese (prose_zh's
    reference lines, full-width brackets), never "Reference:"."""
    what = sections.CELL_WHAT
    assert set(what["en"]) == set(what["zh"])
    for name, text in what["zh"].items():
        if re.search(r"[a-z]{3} [a-z]{3}", what["en"][name]):
            assert re.search(r"[\u4e00-\u9fff]", text), name
    md, tex = exported()["derivations.zh.md"], exported()["derivations.zh.tex"]
    for name, english in what["en"].items():
        assert english not in md and english[:1].upper() + english[1:] not in md, name
    assert "Reference:" not in md and "Reference:" not in tex
    assert "出处：Elman（1990）" in md and "出处：Elman (1990)" not in md
    assert "出处：Feng、Tung、Ahmed" in md          # the new cells too (prose_zh.CELL_REFERENCE)
    assert "## Graves 的带窥视孔 LSTM；Greff 的基准模型" in md
    en_md = exported("en")["derivations.md"]
    assert "Reference: Elman (1990)" in en_md and "出处" not in en_md


def test_text_inside_formulas_is_in_the_edition_language():
    """The direct cell path's subscript: \\text{各门固定} in zh, \\text{gates fixed} in en."""
    zh, en = exported()["derivations.zh.tex"], exported("en")["derivations.tex"]
    assert r"\text{%s}" % lstm_story.GATES_FIXED["zh"] in zh and "gates fixed" not in zh
    assert r"\text{gates fixed}" in en and lstm_story.GATES_FIXED["zh"] not in en


def test_the_crosswalk_uses_the_documents_terms():
    """One term per concept: 候选记忆 and 循环权重矩阵, not 候选值 or a bare 循环矩阵."""
    from derive.document.crosswalk import PROSE
    text = "".join(PROSE["zh"].values())
    assert "候选值" not in text and "循环矩阵" not in text
    assert "候选记忆" in PROSE["zh"]["g"] and "循环权重矩阵" in PROSE["zh"]["rnn_w"]


@pytest.mark.parametrize("edition", ["derivations", "derivations.zh"])
def test_a_staged_pdf_of_either_edition_is_a_leftover(tmp_path, edition):
    """A half-written ``.<edition>.pdf.tmp`` (derive.document.pdf's staging name) is reported
    stray and removed by the next run; a similar name the generator never writes is kept."""
    from derive.export.output import stray_files, write_tree
    out, files = tmp_path / "out", {"%s.md" % edition: b"x"}
    write_tree(files, out)
    (out / (".%s.pdf.tmp" % edition)).write_text("half")
    (out / ".derivations.fr.pdf.tmp").write_text("not ours")
    assert stray_files(files, out) == [out / (".%s.pdf.tmp" % edition)]
    write_tree(files, out)
    assert sorted(p.name for p in out.iterdir()) == [".derivations.fr.pdf.tmp", "%s.md" % edition]
