"""Modules copied verbatim into every generated kernel module (the primitives, the input
checks, the public API): a module's source without its docstring and
top-level imports."""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=None)
def module_body(module) -> str:
    """A module's source without its docstring and its top-level imports (copied verbatim:
the generated module imports numpy once and holds copies of what the others provide)."""
    src = Path(module.__file__).read_text(encoding="utf-8")
    tree = ast.parse(src)
    lines = src.splitlines()
    skip = set()
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str) and node is tree.body[0]:
            skip |= set(range(node.lineno - 1, node.end_lineno))
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            skip |= set(range(node.lineno - 1, node.end_lineno))
    body = [ln for i, ln in enumerate(lines) if i not in skip]
    while body and not body[0].strip():
        body.pop(0)
    return "\n".join(body).rstrip() + "\n"
