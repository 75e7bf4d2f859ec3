"""``python -m derive --pdf``: compile ``derivations.tex`` with pdflatex."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from derive.document.model import FIGURE

TEX_ENGINE = "pdflatex"
INSTALL_HINT = ("install a TeX engine: Debian/Ubuntu 'apt-get install texlive-latex-base "
                "texlive-latex-recommended lmodern', macOS 'brew install --cask mactex-no-gui', "
                "Windows MiKTeX (https://miktex.org)")


class PdfError(RuntimeError):
    """No TeX engine, or the document did not compile; the message says which and what to do."""


def compile_pdf(out_dir) -> str:
    """Compile ``out_dir/derivations.tex`` with pdflatex (twice, for the references and the
    table of contents) in a scratch directory; move only ``derivations.pdf`` into ``out_dir``."""
    engine = shutil.which(TEX_ENGINE)
    if engine is None:
        raise PdfError(f"--pdf needs {TEX_ENGINE}, which is not on PATH; {INSTALL_HINT}")
    out = Path(out_dir)
    src = out / "derivations.tex"
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
            log = (Path(tmp) / "derivations.log")
            text = log.read_text(errors="replace") if log.is_file() else r.stdout
            if r.returncode != 0:
                first = next((ln for ln in text.splitlines() if ln.startswith("!")),
                             f"{TEX_ENGINE} exited with status {r.returncode}")
                raise PdfError(f"{TEX_ENGINE} failed on {src}: {first.lstrip('! ')}")
            if "Rerun to get" not in text:
                break
        target = out / "derivations.pdf"
        staged = out / ".derivations.pdf.tmp"
        shutil.copy(Path(tmp) / "derivations.pdf", staged)
        os.replace(staged, target)
    return str(target)
