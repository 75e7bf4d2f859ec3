"""The article (derive.document) and its exporters: one Namer per (cell, notation); the
figure is an explicit option and the output never depends on whether matplotlib is
installed; the seed records carry their references and say which verdicts are stated."""
import re
import sys
import types

import pytest

import derive
from derive.export import flow as ef
from derive.export import latex as export_latex
from derive.document import sections
from derive.document.equations import Ctx
from derive.document.model import Figure
from derive.seed.claims import SEED_CLAIMS, SeedClaim

ALL = [derive.cell(n) for n in derive.cells()]


def _no_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import matplotlib -> ImportError


def _latex(cells=ALL, **opts):
    return export_latex.export(cells, types.SimpleNamespace(**{"notation": None, **opts}))


@pytest.fixture(scope="module")
def article():
    return _latex()


def test_one_namer_per_cell_and_notation(monkeypatch):
    """One LaTeX export of every cell builds at most one Namer per (cell, notation) and one
    for expressions outside any cell (the old exporter built 1,339); the crosswalk table
    prints names in every notation map, which may add one Namer per (crosswalk cell, map)."""
    from derive.printing import notation
    made = []
    orig = notation.Namer.__init__

    def counting(self, *a, **k):
        made.append(a)
        orig(self, *a, **k)
    monkeypatch.setattr(notation.Namer, "__init__", counting)
    for n in ("greff", "seed"):
        made.clear()
        _latex(notation=n)
        keys = {(id(a[0]) if a else None, a[1] if len(a) > 1 else None) for a in made}
        assert len(made) == len(keys), (n, len(made), len(keys))       # no (cell, notation) twice
        assert len(made) <= len(ALL) + 1 + 2 * len(notation.MAPS), (n, len(made))
    assert Ctx.of(ALL[0], "greff") is Ctx.of(ALL[0], "greff")


def test_the_figure_is_part_of_the_article_by_default(article):
    md, tex = article["derivations.md"], article["derivations.tex"]
    assert "](figures/gradient_flow.png)" in md
    assert "{figures/gradient_flow.png}" in tex and r"\includegraphics" in tex
    caption = tex.split(r"\caption{", 1)[1].split("}", 1)[0]
    assert "figures/" not in caption and "forget" in caption


def test_figure_off_leaves_it_out_of_both_renderings():
    out = _latex(figure=False)
    assert "gradient_flow" not in out["derivations.md"]
    assert "gradient_flow" not in out["derivations.tex"]
    blocks = sections.document_blocks(ALL[:1], figure=False)
    assert not any(isinstance(b, Figure) for b in blocks)
    assert any(isinstance(b, Figure) for b in sections.document_blocks(ALL[:1]))


def test_without_matplotlib_the_article_with_figure_stops_naming_matplotlib(monkeypatch):
    _no_matplotlib(monkeypatch)
    for export in (export_latex.export, ef.export):
        with pytest.raises(ef.MissingDependencyError) as err:
            export(ALL[:1], None)
        msg = str(err.value)
        assert "\n" not in msg and "needs matplotlib" in msg
        assert "pip install 'rnn-calculus[plot]'" in msg


def test_output_does_not_depend_on_matplotlib_being_installed(monkeypatch, article):
    """With the figure off the files are the same with and without matplotlib; with it on
    and matplotlib present they are the default article (not a reduced one)."""
    pytest.importorskip("matplotlib")
    cells = [derive.cell("rnn_tanh")]
    opts = types.SimpleNamespace(notation=None, figure=False)
    with_mpl = export_latex.export(cells, opts)
    flow_with = ef.export(cells, opts)
    assert set(flow_with) == {ef.CSV_PATH}
    _no_matplotlib(monkeypatch)
    assert export_latex.export(cells, opts) == with_mpl
    assert ef.export(cells, opts) == flow_with
    assert article["derivations.md"].count("](figures/gradient_flow.png)") == 1


def test_cli_without_matplotlib_exits_2_with_one_line(monkeypatch, tmp_path, capsys):
    """python -m derive with matplotlib missing: exit 2, one line naming matplotlib, nothing
    written (the run stops before the exporters' long work)."""
    from derive.cli import main
    _no_matplotlib(monkeypatch)
    out = tmp_path / "out"
    assert main(["--out", str(out), "--quiet", "--cells", "rnn_tanh"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matplotlib" in err[0] and "Traceback" not in err[0]
    assert not out.exists()


def test_seed_references_point_at_labelled_equations(article):
    """Every (cell, label) a seed record references is a \\label of the article."""
    tex = article["derivations.tex"]
    labels = set(re.findall(r"\\label\{(eq:[^}]*)\}", tex))
    refs = [c for c in SEED_CLAIMS if c.refs]
    assert len(refs) >= 9
    for c in refs:
        cell, names = c.refs
        assert isinstance(names, tuple) and names
        for lab in names:
            assert "eq:%s:%s" % (cell, lab) in labels, (c.id, lab)
            assert r"\eqref{eq:%s:%s}" % (cell, lab) in tex


def test_constant_verdicts_are_stated_records():
    """The four verdicts that only compare constants are stated, with the reason as data;
    a record cannot be both derived and stated."""
    stated = {c.id for c in SEED_CLAIMS if c.stated_because}
    assert stated == {"seed.vanishing", "seed.typo", "seed.bptt", "seed.bptt.immediate_partial"}
    for c in SEED_CLAIMS:
        if c.stated_because:
            assert c.holds_from == "stated" and c.holds is False
    with pytest.raises(ValueError, match="exactly one"):
        SeedClaim(id="x", statement="", quote_latex="", explanation="",
                  _decide=lambda: True, _stated=True)
    with pytest.raises(ValueError, match="exactly one"):
        SeedClaim(id="x", statement="", quote_latex="", explanation="")


def test_latex_lives_in_the_api_layer():
    import derive.api
    import derive.printing.latex
    assert derive.latex is derive.api.latex
    assert not hasattr(derive.printing.latex, "latex")
    assert derive.latex("rnn_tanh") == _latex([derive.cell("rnn_tanh")])["latex/rnn_tanh.tex"]
