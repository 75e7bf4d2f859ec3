"""The exporters ``python -m derive`` runs. Each module has ``export(cells, options) -> {path: content}``;
paths are relative to the output directory."""
from __future__ import annotations

import importlib

EXPORTERS = [
    "derive.export_summary",
    "derive.export_latex",
    "derive.export_kernels",
    "derive.export_flow",
]


def render_all(cells, options) -> dict:
    """Every file of every exporter, built in memory; a path written twice is an error."""
    files: dict = {}
    for modname in EXPORTERS:
        mod = importlib.import_module(modname)
        for path, content in mod.export(cells, options).items():
            if path in files:
                raise RuntimeError(f"two exporters write {path}")
            files[path] = content
    return dict(sorted(files.items()))
