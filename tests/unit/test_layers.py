"""The house's layers: imports point down only, no import cycle (imports inside functions
count), and few modules directly under ``src/poisonguard``."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "poisonguard"
# Lower rank = lower layer. A module may import its own package and lower ranks, never a higher
# rank nor another package of its own rank.
RANKS = {"errors": 0, "kernel": 1, "checks": 2, "io": 2, "settings": 2, "engine": 3, "store": 3, "testing": 3,
         "workflows": 4, "canary": 4, "dvc": 4, "cli": 5, "airflow": 5}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The poisonguard modules ``name`` imports at run time, anywhere in it (``if TYPE_CHECKING``
    blocks aside): ``from package import submodule`` points at the submodule."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("poisonguard"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("poisonguard"))
    return found - {name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: imports_of(name, path, modules) & set(modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_imports_point_down_only():
    wrong = []
    for module, deps in _graph().items():
        layer = _layer(module)
        if layer is None:  # the public API in poisonguard/__init__ re-exports lazily
            continue
        for dep in deps:
            target = _layer(dep)
            if target is None or target == layer:
                continue
            if RANKS[target] >= RANKS[layer]:
                wrong.append(f"{module} ({layer}) imports {dep} ({target})")
    assert wrong == []


def test_few_modules_at_the_top_and_every_package_ranked():
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top
    layers = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | \
        {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert layers == set(RANKS)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
