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

from tests.document.test_latex_render import KATEX_DIR, _katex_ready, log_problems, write

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
    exe = shutil.which("xelatex")
    if exe is None:
        pytest.skip("xelatex is not installed")
    for _ in range(2):
        r = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", name], cwd=where,
                           capture_output=True, text=True, errors="replace", timeout=600)
        log = (where / name.replace(".tex", ".log")).read_text(errors="replace")
        assert r.returncode == 0, "\n".join(ln for ln in log.splitlines() if ln.startswith("!"))
    return log


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
