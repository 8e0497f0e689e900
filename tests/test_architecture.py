"""The house rules of docs/architecture.md, checked on the source: one-way imports and no cycles.

Imports are read with ``ast`` (module level and inside functions alike, since a lazy import is still a
dependency). Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``, so those count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Cycles that exist and are owned elsewhere (each listed with why it is still here); no new ones.
KNOWN_CYCLES = [
    # The sparse package's __init__ holds the shared interface and picks a backend; both backends import
    # that interface back. It is the models code's to split (this layout left models/ alone).
    {"mesm_core.models.sparse", "mesm_core.models.sparse.masked", "mesm_core.models.sparse.spconv_backend"},
]


def _modules() -> dict[str, Path]:
    files = [*ROOT.glob("mesm_core/**/*.py"), *ROOT.glob("mesm_viz/**/*.py"), ROOT / "app.py"]
    out = {}
    for path in files:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for name in names:
                target = resolve(name)
                while target and target != module:
                    if not module.startswith(target + "."):  # a module's own parents ran before it
                        graph[module].add(target)
                    target = target.rpartition(".")[0] or None
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return _import_graph()


@pytest.mark.parametrize("source, forbidden", [
    ("mesm_core", "mesm_viz"),           # core draws nothing: app.py → mesm_viz → mesm_core
    ("mesm_core", "app"),
    ("mesm_viz", "app"),
    ("mesm_core.models", "mesm_core.data"),  # preprocessing stays out of nn.Modules
    ("mesm_core.features", "mesm_core.models"),  # the baselines' input (FeatureBatch) is a type, in types.py
    ("mesm_core.data", "mesm_core.models"),      # the pipeline feeds models, never builds them
    ("mesm_core.data", "mesm_core.inference"),   # the Predictor calls the pipeline, not the reverse
    ("mesm_core.geometry", "mesm_core"),         # plain arithmetic under models, the synthetic faces and facs
    ("mesm_core.data.folder", "mesm_core.data.sources"),  # sources import scan, never the registry
    ("mesm_core.data.iemocap", "mesm_core.data.sources"),
    ("mesm_core.data.mosei", "mesm_core.data.sources"),
    ("mesm_core.data.synthetic", "mesm_core.data.sources"),
])
def test_imports_run_one_way(graph, source, forbidden):
    wrong = sorted((m, t) for m, targets in graph.items() for t in targets
                   if (m == source or m.startswith(source + ".")) and (t == forbidden or t.startswith(forbidden + ".")))
    assert not wrong, wrong


def test_no_new_import_cycles(graph):
    cycles = _cycles(graph)
    assert [c for c in cycles if c not in KNOWN_CYCLES] == []


@pytest.mark.parametrize("pair", [("mesm_core.predict", "mesm_viz.studio"), ("mesm_core.flops", "mesm_core.models"),
                                  ("mesm_core.data.sources", "mesm_core.data.folder")])
def test_former_cycles_stay_open(graph, pair):
    """The cycles this layout removed: predict ↔ viz, flops ↔ models (via vgg), the data sources circle."""
    assert not any(set(pair) <= cycle for cycle in _cycles(graph))


def test_the_checker_sees_a_cycle(graph):
    graph = {k: set(v) for k, v in graph.items()}
    graph["mesm_core.types"].add("mesm_core.io")
    graph["mesm_core.io"].add("mesm_core.types")
    assert {"mesm_core.types", "mesm_core.io"} in _cycles(graph)


def test_every_import_is_visible_to_the_checker():
    """No module reaches another by name (``importlib.import_module``, ``__import__``): such an edge is
    invisible to the rules above. The one exception is the package face's lazy ``mesm_core.X`` names."""
    found = []
    for module, path in _modules().items():
        if module == "mesm_core":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                if name in ("import_module", "__import__"):
                    found.append(f"{module}:{node.lineno}")
    assert not found, found
