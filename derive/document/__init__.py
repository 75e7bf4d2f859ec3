"""The article as data: blocks built from the derived results of each cell
(:mod:`~derive.document.model`, :mod:`~derive.document.equations`,
:mod:`~derive.document.bounds`, :mod:`~derive.document.sections`,
:mod:`~derive.document.seed_sections`), rendered to LaTeX and Markdown
(:mod:`~derive.document.render`) and compiled to PDF (:mod:`~derive.document.pdf`).
Imports only point down: core, spec, printing, seed."""
