"""The corrected seed note read as its author would (issue 15, item 5), beyond the errata:

* every link resolves: an inline link goes to one of the sources or papers the note lists
  (absolute URL) or to a file beside the note; every reference-style ``[label]`` has its
  ``[label]: url`` definition; footnote references and definitions match one to one; the
  note's own pictures (``graph/*.jpg``, not shipped in ``out/``) are named, never linked;
* one quantity, one name: the recurrent matrix's size is ``\\lVert W_{hh} \\rVert_2``
  throughout (never ``\\lambda_1``, as in the article);
* symbols are defined before they are used (``J_j``, ``\\nabla_{h_t} L_t``, the LSTM's
  ``\\Delta`` and ``\\delta^{(t)}``), and no correction is a lone inequality or an undefined
  ``\\delta W_{hh}``;
* the papers are listed as link, title, venue, use (no doubled colon); citations read
  "等人，年份" everywhere.
"""
from __future__ import annotations

import re
import types

from derive.document.seed_note import seed_note_markdown
from derive.export import seed_note as exporter
from derive.seed import note_zh as Z

NOTE = seed_note_markdown()
BODY = NOTE.split("\n[^1]:")[0]
INLINE_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(([^)\s]*)\)")
FOOTNOTE_REF = re.compile(r"\[\^(\d+)\](?!:)")
FOOTNOTE_DEF = re.compile(r"(?m)^\[\^(\d+)\]: ")
REF_DEF = re.compile(r"(?m)^\[([^\]^][^\]]*)\]: (\S+)$")


def _math_free(text):
    """The text with every $...$ / $$...$$ formula removed (brackets in LaTeX are not links)."""
    return re.sub(r"\$\$.*?\$\$|\$[^$\n]*\$", "", text, flags=re.S)


def test_every_inline_link_resolves_to_a_listed_source_or_a_shipped_file():
    known = {url for _, url, _ in Z.SOURCES} | {p[1] for p in Z.PAPERS}
    shipped = set(exporter.export([], types.SimpleNamespace(notation=None)))
    links = INLINE_LINK.findall(_math_free(NOTE))
    assert links, "the note links its sources"
    for bang, text, url in links:
        assert not bang, f"image link {url!r}: the note's pictures are not shipped beside it"
        if url.startswith(("http://", "https://")):
            assert url in known, f"[{text}]({url}) is not one of the listed sources"
        else:
            assert url.split("#")[0] in shipped, f"[{text}]({url}) points to no file in out/"


def test_every_reference_style_link_has_its_definition():
    text = _math_free(NOTE)
    defs = dict(REF_DEF.findall(text))
    assert set(defs) == {label for label, _, _ in Z.SOURCES}
    for label, url, _ in Z.SOURCES:
        assert defs[label] == url
    used = re.findall(r"(?<![!\]])\[([^\]\n^]+)\](?![(:\[])", text)
    assert used, "the prose cites colah by its reference-style link"
    for label in used:
        assert label in defs, f"[{label}] has no definition"


def test_footnote_references_and_definitions_match_one_to_one():
    refs, defs = FOOTNOTE_REF.findall(NOTE), FOOTNOTE_DEF.findall(NOTE)
    assert sorted(set(refs), key=int) == defs == [str(i) for i in range(1, len(defs) + 1)]
    assert len(refs) == len(set(refs))


def test_the_notes_pictures_are_named_not_linked():
    for path in ("graph/RNN-unrolled.jpg", "graph/lstm-lhy.jpg"):
        assert "`%s`" % path in NOTE and "(%s)" % path not in NOTE
    assert "![" not in NOTE


def test_one_name_for_the_spectral_norm():
    assert r"\lambda" not in NOTE and "λ" not in NOTE
    assert NOTE.count(r"\lVert W_{hh} \rVert_2 < 4") >= 3        # body, summary, footnotes
    assert "谱范数" in BODY


def _first(_body, needle):
    i = BODY.find(needle)
    assert i >= 0, f"{needle!r} does not occur in the body"
    return i


def test_symbols_are_defined_before_they_are_used():
    j_def = _first(BODY, r"J_j = \frac{\partial h_j}{\partial h_{j-1}}")
    assert j_def < _first(BODY, r"$J_t J_{t-1} \cdots J_{k+1}$") < _first(BODY, r"\Delta h_k = \sum")
    bptt_display = _first(BODY, r"J_t J_{t-1} \cdots J_{k+1} \, \frac")
    assert BODY.rfind("\n\n", 0, j_def) > bptt_display      # defined right after its display
    assert _first(BODY, r"\nabla_{h_t}") == _first(BODY, r"\nabla_{h_t} L_{t} = W_{hy}^{\top}")
    assert BODY.index(r"\nabla_{y_t} L_t$ 是本步损失") < BODY.index(r"\Delta h_k = \sum")
    lstm_back = BODY.index(r"\delta^{(t)} c_{t-1} &=")
    assert BODY.index(r"$\delta^{(t)} c_{t-1}$ 是经由") < lstm_back
    assert BODY.index(r"$\Delta h_t, \Delta c_t$ 是从这一步之外") < lstm_back


def test_no_correction_is_a_lone_inequality_or_an_undefined_delta():
    notes = dict(re.findall(r"(?m)^\[\^(\d+)\]: (.*)$", NOTE))
    corrections = [n.split(Z.CORRECTED_LABEL)[1] for n in notes.values() if Z.CORRECTED_LABEL in n]
    assert r"\delta W" not in NOTE
    for c in corrections:
        assert not re.fullmatch(r"\$[^$]*<[^$]*\$。", c.strip()), f"a lone inequality: {c}"
    vanish = next(n for n in notes.values() if "推不出梯度一定消失" in n)
    fix = vanish.split(Z.CORRECTED_LABEL)[1]
    assert r"\le \bigl(\frac{1}{4}" in fix and r"\Rightarrow" in fix and "(t-k" in fix


def test_papers_are_listed_once_each_without_a_doubled_colon():
    lines = [ln for ln in NOTE.splitlines() if ln.startswith("* [")]
    assert len(lines) == len(Z.SOURCES) + len(Z.PAPERS)
    for ln in lines:
        assert ln.count("：") == 1 or ln.startswith("* [") and "：*" in ln and \
            ln.count("：") == 2 and "用于：" in ln, ln
    for label, url, title, venue, _ in Z.PAPERS:
        assert "[%s](%s)：*%s*，%s。" % (label, url, title, venue) in NOTE


def test_citations_read_the_same_way_everywhere():
    assert not re.search(r"等 ?\d{4}", NOTE), "write 等人，年份"
    assert not re.search(r"[A-Z][a-z]+ 等（", NOTE)
    for who in ("Pascanu 等人", "Gers 等人", "Jozefowicz 等人"):
        assert who in NOTE, who


def test_erratum_two_names_the_lstm_gates_sigma():
    """Erratum 2 of equations.md section 9 also says sigma is reused for the LSTM gates,
    where it is certainly the logistic sigmoid."""
    note = next(n for n in re.findall(r"(?m)^\[\^\d+\]: (.*)$", NOTE) if n.startswith("勘误 2："))
    assert "LSTM 的各门也用 σ" in note and "logistic sigmoid" in note and r"$\phi$" in note
