"""The package layout keeps its rules (docs/ARCHITECTURE.md): imports point down the layers,
there are no import cycles (function-level imports included), no module is over 500 lines
and derive/'s top level stays small."""
import ast
from pathlib import Path

import pytest

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())

# lowest first; a module may import its own package and any package of a lower layer
LAYERS = [
    {"derive.core"},
    {"derive.spec"},
    {"derive.printing"},
    {"derive.seed"},
    {"derive.codegen"},
    {"derive.analysis"},
    {"derive.document"},      # presents derived, generated and measured results (the worked example)
    {"derive.export"},
    {"derive"},               # the facade and the modules at derive/'s top: api, cli, cliutil
    {"verify"},
]


def _modules():
    out = {}
    for pkg in ("derive", "verify"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name, path):
    """Every project module that ``name`` imports, at any depth of its code."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            found.update(subs or ([target] if target in MODULES else []))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
    found.discard(name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name):
    best = None
    for i, group in enumerate(LAYERS):
        for pkg in group:
            if name == pkg or name.startswith(pkg + "."):
                if best is None or len(pkg) > len(best[1]):
                    best = (i, pkg)
    assert best is not None, f"{name} is in no layer of LAYERS"
    return best


def test_imports_point_down_the_layers():
    wrong = []
    for name, deps in GRAPH.items():
        level, pkg = _layer(name)
        for dep in deps:
            dlevel, dpkg = _layer(dep)
            if dlevel > level or (dlevel == level and dpkg != pkg):
                wrong.append(f"{name} (layer {pkg}) imports {dep} (layer {dpkg})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles():
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, cycles


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_at_most_500_lines(name):
    lines = MODULES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= 500, f"{MODULES[name].relative_to(ROOT)} has {lines} lines"


def test_derive_top_level_is_small():
    top = [p.name for p in (ROOT / "derive").glob("*.py")]
    assert len(top) <= 6, sorted(top)
