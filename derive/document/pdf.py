"""``python -m derive --pdf``: compile ``derivations.tex`` with pdflatex and the Chinese
edition ``derivations.zh.tex`` with xelatex (ctex, Noto CJK fonts)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from derive.document.model import FIGURE

TEX_ENGINE = "pdflatex"
ZH_ENGINE = "xelatex"
INSTALL_HINT = ("install a TeX engine: Debian/Ubuntu 'apt-get install texlive-latex-base "
                "texlive-latex-recommended lmodern', macOS 'brew install --cask mactex-no-gui', "
                "Windows MiKTeX (https://miktex.org)")
ZH_INSTALL_HINT = ("install xelatex with ctex and the Noto CJK fonts: Debian/Ubuntu 'apt-get "
                   "install texlive-xetex texlive-lang-chinese texlive-fonts-recommended "
                   "fonts-noto-cjk lmodern', macOS 'brew install --cask mactex-no-gui "
                   "font-noto-serif-cjk-sc font-noto-sans-cjk-sc'")
#: (source, engine, install hint) of each edition, by language.
EDITIONS = {"en": ("derivations.tex", TEX_ENGINE, INSTALL_HINT),
            "zh": ("derivations.zh.tex", ZH_ENGINE, ZH_INSTALL_HINT)}


class PdfError(RuntimeError):
    """No TeX engine, or the document did not compile; the message says which and what to do."""


def editions(lang="all") -> list:
    """The (source, engine, hint) triples ``--lang`` asks for."""
    return [EDITIONS[k] for k in (("en", "zh") if lang in (None, "all") else (lang,))]


def missing_engine(lang="all"):
    """The first (engine, hint) not on PATH among the editions asked for, else None."""
    for _, engine, hint in editions(lang):
        if shutil.which(engine) is None:
            return engine, hint
    return None


def compile_all(out_dir, lang="all") -> list:
    """Compile every edition ``lang`` asks for; the paths of the PDFs written."""
    return [compile_pdf(out_dir, src, engine) for src, engine, _ in editions(lang)]


def compile_pdf(out_dir, name="derivations.tex", engine_name=TEX_ENGINE) -> str:
    """Compile ``out_dir/<name>`` with ``engine_name`` (twice, for the references and the
    table of contents) in a scratch directory; move only the PDF into ``out_dir``."""
    hint = next((h for _, e, h in EDITIONS.values() if e == engine_name), INSTALL_HINT)
    engine = shutil.which(engine_name)
    if engine is None:
        raise PdfError(f"--pdf needs {engine_name}, which is not on PATH; {hint}")
    out = Path(out_dir)
    src = out / name
    stem = name[:-len(".tex")]
    if not src.is_file():
        raise PdfError(f"{src} does not exist; run python -m derive --out {out_dir} first")
    with tempfile.TemporaryDirectory(prefix="derive-pdf-") as tmp:
        shutil.copy(src, Path(tmp) / src.name)
        fig = out / FIGURE
        if fig.is_file():
            (Path(tmp) / FIGURE).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(fig, Path(tmp) / FIGURE)
        for _ in range(2):                  # two passes settle references and contents
            r = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error",
                                src.name], cwd=tmp, capture_output=True, text=True,
                               errors="replace", timeout=600)
            log = (Path(tmp) / (stem + ".log"))
            text = log.read_text(errors="replace") if log.is_file() else r.stdout
            if r.returncode != 0:
                first = next((ln for ln in text.splitlines() if ln.startswith("!")),
                             f"{engine_name} exited with status {r.returncode}")
                raise PdfError(f"{engine_name} failed on {src}: {first.lstrip('! ')}")
            if "Rerun to get" not in text:
                break
        target = out / (stem + ".pdf")
        staged = out / (".%s.pdf.tmp" % stem)
        shutil.copy(Path(tmp) / (stem + ".pdf"), staged)
        os.replace(staged, target)
    return str(target)
