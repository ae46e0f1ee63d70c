"""The house has no import circles and every import points the declared way (DESIGN.md, "Layout"):
``labeling → classification ← sitemaps``, ``datasets → classification``, all of them over ``core``, ``config``
on top. Read statically with ``ast`` from the project's files, function-level (lazy) imports included.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "core", "classification", "datasets", "sitemaps", "labeling")

# Which apps each app may import (besides itself). Nothing may import config: settings are read through
# django.conf, the Celery app through celery.current_app.
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "classification": frozenset({"core"}),
    "sitemaps": frozenset({"classification", "core"}),
    "labeling": frozenset({"classification", "core"}),
    "datasets": frozenset({"classification", "core"}),
    "config": frozenset({"core", "classification", "datasets", "sitemaps", "labeling"}),
}


def project_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of the packages, by dotted name (a package is its ``__init__``)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _resolve(name: str, known: Mapping[str, Path]) -> str | None:
    """The longest project module that ``name`` is or lies in (None: not ours)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def _imported_names(module: str, path: Path, tree: ast.AST) -> Iterable[tuple[str, int]]:
    """(dotted name, line) of everything the module imports, anywhere in it; ``from a import b`` yields
    ``a.b`` (a submodule when there is one, else resolved to ``a``)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                drop = node.level - 1 if is_package else node.level
                base = base[: len(base) - drop] if drop else base
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            for alias in node.names:
                yield (f"{prefix}.{alias.name}" if alias.name != "*" else prefix), node.lineno


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, dict[str, int]]:
    """module → {imported project module: first line}; imports of the module itself are left out."""
    known = project_modules(root, packages)
    graph: dict[str, dict[str, int]] = {}
    for module, path in known.items():
        edges: dict[str, int] = {}
        for name, line in _imported_names(module, path, ast.parse(path.read_text(), str(path))):
            target = _resolve(name, known)
            if target is not None and target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def circles(graph: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def against_the_layers(graph: Mapping[str, Mapping[str, int]], allowed: Mapping[str, frozenset[str]]) -> list[str]:
    """Every import from one app into another that ``allowed`` does not list, as "a.b:line -> c.d"."""
    wrong = []
    for module, edges in sorted(graph.items()):
        app = module.split(".")[0]
        for target, line in sorted(edges.items()):
            other = target.split(".")[0]
            if other != app and other not in allowed.get(app, frozenset()):
                wrong.append(f"{module}:{line} -> {target}")
    return wrong


# --- the project ----------------------------------------------------------------------------------


def test_the_project_has_no_import_circle():
    assert circles(import_graph(ROOT, PACKAGES)) == []


def test_every_import_between_apps_points_the_declared_way():
    assert against_the_layers(import_graph(ROOT, PACKAGES), ALLOWED) == []


def test_the_check_reads_the_whole_project_including_lazy_imports():
    graph = import_graph(ROOT, PACKAGES)
    assert {m.split(".")[0] for m in graph} == set(PACKAGES)
    # datasets/models.py imports ModelVersion at module level; datasets/training.py imports the builtin
    # classifier inside a function: both must be arrows.
    assert "classification.models" in graph["datasets.models"]
    assert "classification.classifiers.builtin" in graph["datasets.training"]


# --- the checker, on tiny planted trees -------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_planted_circle_through_a_lazy_import_is_found(tmp_path):
    root = _tree(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/a.py": "from app.b import thing\n",
            "app/b.py": "thing = 1\n\ndef later():\n    from app import c\n",
            "app/c.py": "from . import a\n",
            "app/d.py": "import app.a\n",
        },
    )
    assert circles(import_graph(root, ["app"])) == [["app.a", "app.b", "app.c"]]


def test_a_tree_without_circles_passes(tmp_path):
    root = _tree(
        tmp_path,
        {"app/__init__.py": "", "app/a.py": "from app.b import x\n", "app/b.py": "import os\nx = os.sep\n"},
    )
    assert circles(import_graph(root, ["app"])) == []


def test_an_import_against_the_layers_is_reported_with_its_line(tmp_path):
    root = _tree(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/jobs.py": "import os\n\n\ndef f():\n    from classification.models import Image\n",
            "classification/__init__.py": "",
            "classification/models.py": "from core.jobs import f\n",
            "datasets/__init__.py": "",
            "datasets/x.py": "from classification import models\nfrom config import settings\n",
            "config/__init__.py": "",
            "config/settings.py": "",
        },
    )
    graph = import_graph(root, ["core", "classification", "datasets", "config"])
    assert against_the_layers(graph, ALLOWED) == [
        "core.jobs:5 -> classification.models",
        "datasets.x:2 -> config.settings",
    ]
