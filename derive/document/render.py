"""Rendering the document model (:mod:`derive.document.model`) to a standalone LaTeX
article (pdflatex: T1 fonts, Latin Modern, hyperref; two passes settle every reference) and
to Markdown with ``$...$`` / ``$$...$$`` math. Prose is escaped for each target; math is
printed by :mod:`derive.printing.latex`. ``lang="zh"``: the Chinese edition, for xelatex
(ctexart, Noto CJK fonts), with Chinese fixed labels (:mod:`derive.document.prose_zh`)."""
from __future__ import annotations

from derive.document.model import (Appendix, Bibliography, Cite, Code, Display, Figure, Heading,
                                   Math, NewPage, Para, Quote, Ref, Table)
from derive.printing.latex import align_env, aligned_env

_TEX_ESCAPE = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
               "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
               "^": r"\textasciicircum{}", "\u201c": "``", "\u201d": "''", "\u2018": "`",
               "\u2019": "'", "<": r"\textless{}", ">": r"\textgreater{}",
               "|": r"\textbar{}", "\u2248": r"\ensuremath{\approx}",
               "\u00d7": r"\ensuremath{\times}"}

#: The article's preamble (pdflatex). Debian: texlive-latex-base, texlive-latex-recommended
#: (hyperref, microtype, booktabs, xcolor) and lmodern (the Latin Modern T1 fonts).
PREAMBLE = (
    r"\documentclass[10pt]{article}",
    r"\usepackage[T1]{fontenc}",
    r"\usepackage{lmodern}",
    r"\usepackage{microtype}",
    r"\usepackage{amsmath}",
    r"\usepackage{amssymb}",
    r"\usepackage{graphicx}",
    r"\usepackage{array}",
    r"\usepackage{booktabs}",
    r"\usepackage{xcolor}",
    r"\usepackage[colorlinks=true,linkcolor={blue!50!black},citecolor={blue!50!black},"
    r"urlcolor={blue!50!black},bookmarksnumbered=true]{hyperref}",
    r"\setcounter{tocdepth}{1}",
    r"\allowdisplaybreaks",
    r"\sloppy",
)

#: The Chinese edition's preamble (xelatex). Debian: texlive-xetex, texlive-lang-chinese
#: (ctex, xeCJK), fonts-noto-cjk (the Noto CJK SC fonts), texlive-fonts-recommended (the
#: pzdr metric hyperref loads under xelatex) and lmodern (Latin Modern for Latin and math).
PREAMBLE_ZH = (
    r"\documentclass[UTF8,fontset=none,zihao=5]{ctexart}",
    r"\setCJKmainfont{Noto Serif CJK SC}[BoldFont={Noto Sans CJK SC Bold},"
    r"ItalicFont={Noto Serif CJK SC},SlantedFont={Noto Serif CJK SC}]",
    r"\setCJKsansfont{Noto Sans CJK SC}[BoldFont={Noto Sans CJK SC Bold},"
    r"ItalicFont={Noto Sans CJK SC},SlantedFont={Noto Sans CJK SC}]",
    r"\setCJKmonofont{Noto Sans Mono CJK SC}",
    r"\usepackage{lmodern}",
    r"\usepackage[a4paper,hmargin=2.5cm,vmargin=2.5cm]{geometry}",
    r"\pagestyle{plain}",                  # page numbers only, as the English article
) + PREAMBLE[3:]          # microtype, amsmath, ..., hyperref (without fontenc)


def tex_text(s: str, lang: str = "en") -> str:
    """Prose for LaTeX: special characters escaped, typographic quotes as ``...''; a
    straight double quote opens and closes in turn; a straight single quote opens (`) where
    no letter, digit or closing bracket precedes it (``='tanh'``), else it is an apostrophe
    or closes ('). In Chinese (``lang="zh"``) curly quotes stay as they are (full-width CJK
    punctuation under xeCJK)."""
    out, opening = [], True
    for i, ch in enumerate(s):
        if lang == "zh" and ch in "\u201c\u201d\u2018\u2019":
            out.append(ch)
        elif ch == '"':
            out.append("``" if opening else "''")
            opening = not opening
        elif ch == "'":
            prev = s[i - 1] if i else " "
            out.append("'" if prev.isalnum() or prev in ")]}.!?" else "`")
        else:
            out.append(_TEX_ESCAPE.get(ch, ch))
    return "".join(out)


def md_text(s: str) -> str:
    """Prose for Markdown: escape what could start emphasis, code, links, HTML or math
    (an underscore only where it could open emphasis, not inside a word like W_hh)."""
    out = []
    for i, ch in enumerate(s):
        if ch in "\\*`[]<$|" or (ch == "_" and (i == 0 or not s[i - 1].isalnum())):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


_REF_TEX = {"eq": r"\eqref{%s}", "sec": r"Section~\ref{%s}", "fig": r"Figure~\ref{%s}",
            "app": r"Appendix~\ref{%s}", "tab": r"Table~\ref{%s}"}


def _zh():
    from derive.document import prose_zh
    return prose_zh


def _cite_text(part, lang):
    return _zh().CITE_TEXT.get(part.key, part.text) if lang == "zh" else part.text


def is_ideograph(ch: str) -> bool:
    """A CJK ideograph (not CJK punctuation): xeCJK spaces it from Latin text and numbers."""
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def _tex_parts(parts, lang="en") -> str:
    """Parts as LaTeX. In Chinese a reference (``图~\\ref``, ``\\eqref``) beside an ideograph
    gets the space xeCJK would put between a number and a CJK character (the link box
    hides the number from xeCJK: "图 1在", "见(9)" otherwise)."""
    refs = _zh().REF_TEX if lang == "zh" else _REF_TEX
    out, after_ref = [], False
    for part in parts:
        if isinstance(part, Math):
            out.append("$%s$" % part.tex)
        elif isinstance(part, Code):
            out.append(r"\texttt{%s}" % tex_text(part.text, lang))
        elif isinstance(part, Ref):
            tex = refs[part.kind] % part.label
            if lang == "zh" and out and out[-1] and is_ideograph(out[-1][-1]) \
                    and tex.startswith("\\"):         # 图~\ref, 第~\ref~节 start with their word
                tex = "~" + tex
            out.append(tex)
        elif isinstance(part, Cite):
            out.append(r"%s~\cite{%s}" % (tex_text(_cite_text(part, lang), lang), part.key))
        else:
            text = tex_text(part, lang)
            if after_ref and text and is_ideograph(text[0]) and not out[-1].endswith("~"):
                text = "~" + text
            out.append(text)
        after_ref = lang == "zh" and isinstance(part, Ref) and out[-1].endswith("}")
    return "".join(out)


def _md_parts(parts, cites, lang="en") -> str:
    out = []
    for part in parts:
        if isinstance(part, Math):
            out.append("$%s$" % part.tex)
        elif isinstance(part, Code):
            out.append("`%s`" % part.text.replace("`", ""))
        elif isinstance(part, Ref):
            text = _zh().REF_TEXT.get(part.label, part.text) if lang == "zh" else part.text
            out.append(md_text(text))
        elif isinstance(part, Cite):
            out.append("%s [%d]" % (md_text(_cite_text(part, lang)), cites[part.key]))
        else:
            out.append(md_text(part))
    return "".join(out)


def _cell_parts(cell):
    return [cell] if isinstance(cell, (str, Math, Code)) else list(cell)


def _tex_table(t: Table, lang="en") -> str:
    def row(cells):
        return " & ".join(_tex_parts(_cell_parts(c), lang) for c in cells) + r" \\"
    lines = [r"\begin{center}\small", r"\begin{tabular}{%s}" % "".join(t.widths), r"\toprule",
             row(t.header), r"\midrule"]
    lines += [row(r) for r in t.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if t.caption:
        lines.append(r"\par\smallskip %s" % tex_text(t.caption, lang))
    lines.append(r"\end{center}")
    return "\n".join(lines)


def _md_table(t: Table, cites, lang="en") -> str:
    def row(cells):
        return "| " + " | ".join(_md_parts(_cell_parts(c), cites, lang) for c in cells) + " |"
    lines = [row(t.header), "|" + "---|" * len(t.header)] + [row(r) for r in t.rows]
    if t.caption:
        lines += ["", md_text(t.caption)]
    return "\n".join(lines)


def _tex_figure(b: Figure, lang="en") -> list:
    out = [r"\IfFileExists{%s}{" % b.path]
    out += [_tex_parts(p.parts, lang) + "\n" for p in b.intro]
    out.append(r"\begin{figure}[tbp]\centering")
    out.append(r"\includegraphics[width=0.98\linewidth,height=0.72\textheight,keepaspectratio]{%s}%%"
               % b.path)
    out.append(r"\caption{%s}\label{%s}" % (tex_text(b.caption, lang), b.label))
    out.append(r"\end{figure}}{}")
    return out


def render_tex(blocks, title, lang="en") -> str:
    """The standalone article; ``lang="zh"`` the xelatex/ctex edition."""
    tt = lambda s: tex_text(s, lang)  # noqa: E731
    out = ["% Generated by python -m derive (rnn-calculus) from derive/cells; do not edit.",
           *(PREAMBLE_ZH if lang == "zh" else PREAMBLE),
           r"\hypersetup{pdftitle={%s},pdfauthor={rnn-calculus}}" % tt(title),
           r"\title{%s}" % tt(title), r"\author{rnn-calculus}", r"\date{}",
           r"\begin{document}", r"\maketitle", r"\tableofcontents", r"\clearpage", ""]
    for b in blocks:
        if isinstance(b, Heading):
            cmd = {1: "section", 2: "subsection"}.get(b.level, "subsubsection")
            out.append(r"\%s{%s}" % (cmd, tt(b.text)) +
                       (r"\label{%s}" % b.label if b.label else ""))
        elif isinstance(b, Para):
            out.append(_tex_parts(b.parts, lang))
        elif isinstance(b, Display):
            out.append(align_env(b.eqs).rstrip("\n"))
        elif isinstance(b, Quote):
            out.append("\\begin{gather*}\n" + " \\\\\n".join(b.rows) + "\n\\end{gather*}")
        elif isinstance(b, Figure):
            out += _tex_figure(b, lang)
        elif isinstance(b, Table):
            out.append(_tex_table(b, lang))
        elif isinstance(b, Appendix):
            out.append(r"\clearpage" + "\n" + r"\appendix")
        elif isinstance(b, NewPage):
            out.append(r"\clearpage")
        elif isinstance(b, Bibliography):
            out.append(r"\renewcommand{\refname}{%s}\phantomsection"
                       r"\addcontentsline{toc}{section}{%s}" % (tt(b.title), tt(b.title)))
            out.append(r"\begin{thebibliography}{%d}" % len(b.items))
            out += [r"\bibitem{%s} %s" % (key, tt(text)) for key, text in b.items]
            out.append(r"\end{thebibliography}")
        out.append("")
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"


def render_md(blocks, title, lang="en") -> str:
    cites = {key: n for b in blocks if isinstance(b, Bibliography)
             for n, (key, _) in enumerate(b.items, 1)}
    out = ["<!-- Generated by python -m derive (rnn-calculus) from derive/cells; do not edit. -->",
           "", "# " + md_text(title), ""]
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * (b.level + 1) + " " + md_text(b.text))
        elif isinstance(b, Para):
            out.append(_md_parts(b.parts, cites, lang))
        elif isinstance(b, Display):
            out.append("$$\n" + aligned_env(b.eqs) + "\n$$")
        elif isinstance(b, Quote):
            out.append("$$\n\\begin{gathered}\n" + " \\\\\n".join(b.rows) +
                       "\n\\end{gathered}\n$$")
        elif isinstance(b, Figure):
            out += [_md_parts(p.parts, cites, lang) + "\n" for p in b.intro]
            out.append("![%s](%s)\n" % (md_text(b.alt or b.caption), b.path))
            out.append("*%s*" % md_text(b.caption))
        elif isinstance(b, Table):
            out.append(_md_table(b, cites, lang))
        elif isinstance(b, Bibliography):
            out.append("## " + md_text(b.title) + "\n")
            out += ["%d. %s" % (n, md_text(text)) for n, (_, text) in enumerate(b.items, 1)]
        else:
            continue
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
