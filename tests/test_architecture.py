"""The house rules of docs/architecture.md, checked on the source: one-way imports and no cycles.

Imports are read with ``ast`` (module level and inside functions alike, since a lazy import is still a
dependency). Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``, so those count too, except the
importer's own ancestors (they ran before it) unless the import names one of them (``from a.b import X``
inside ``a/b/c.py`` uses ``a/b/__init__``). The checker itself is tested on planted fake trees below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Cycles that exist and are owned elsewhere (each listed with why it is still here); no new ones.
KNOWN_CYCLES: list[set[str]] = []


def _modules(root: Path = ROOT) -> dict[str, Path]:
    files = [*root.glob("mesm_core/**/*.py"), *root.glob("mesm_viz/**/*.py"), root / "app.py"]
    out = {}
    for path in files:
        if not path.is_file():
            continue
        parts = list(path.relative_to(root).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _import_graph(modules: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """module → the modules it runs by importing. An import names one module (the one whose names it uses,
    a parent package included: ``from pkg import X`` in ``pkg/a.py`` depends on ``pkg/__init__``); the
    packages above that module run too, except the importer's own ancestors, which ran before it."""
    modules = _modules() if modules is None else modules

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
                if target and target != module:
                    graph[module].add(target)  # the module named, even when it is the importer's own parent
                while target and (target := target.rpartition(".")[0] or None):
                    if target != module and not module.startswith(target + "."):
                        graph[module].add(target)
    return graph


def _wrong_edges(graph: dict[str, set[str]], source: str, forbidden: str) -> list[tuple[str, str]]:
    """The edges from ``source`` (or a module under it) to ``forbidden`` (or a module under it)."""
    def under(module: str, root: str) -> bool:
        return module == root or module.startswith(root + ".")

    return sorted((m, t) for m, targets in graph.items() for t in targets if under(m, source) and under(t, forbidden))


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
    ("mesm_core.models", "mesm_core.checkpoint"),  # models are built and filled from above, never load files
    ("mesm_core.models", "mesm_core.loading"),
    ("mesm_core.models", "mesm_core.presets"),     # presets name models; models do not read presets
    ("mesm_core.models", "mesm_core.families"),
    ("mesm_core.checkpoint", "mesm_core.families"),  # the format knows no builder (mesm_core.loading builds)
    ("mesm_core.checkpoint", "mesm_core.loading"),
    ("mesm_core.checkpoint", "mesm_core.models"),
])
def test_imports_run_one_way(graph, source, forbidden):
    wrong = _wrong_edges(graph, source, forbidden)
    assert not wrong, wrong


def test_no_new_import_cycles(graph):
    cycles = _cycles(graph)
    assert [c for c in cycles if c not in KNOWN_CYCLES] == []


@pytest.mark.parametrize("pair", [("mesm_core.predict", "mesm_viz.studio"), ("mesm_core.flops", "mesm_core.models"),
                                  ("mesm_core.data.sources", "mesm_core.data.folder"),
                                  ("mesm_core.models.sparse", "mesm_core.models.sparse.masked")])
def test_former_cycles_stay_open(graph, pair):
    """The cycles the layout removed: predict ↔ viz, flops ↔ models (via vgg), the data sources circle, the sparse
    package's interface ↔ its backends. (The package-level models ⇄ checkpoint ⇄ families loop is kept open by
    the forbidden pairs above.)"""
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


# --- the checker itself, on a fake tree written for the test ------------------------------------------

def _fake_tree(root: Path, files: dict[str, str]) -> dict[str, set[str]]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return _import_graph(_modules(root))


def test_the_checker_sees_a_planted_forbidden_import(tmp_path):
    graph = _fake_tree(tmp_path, {
        "mesm_core/__init__.py": "",
        "mesm_core/checkpoint.py": "",
        "mesm_core/models/__init__.py": "",
        "mesm_core/models/fe2e.py": "def load():\n    from mesm_core.checkpoint import read\n",  # lazily
    })
    assert _wrong_edges(graph, "mesm_core.models", "mesm_core.checkpoint") == [
        ("mesm_core.models.fe2e", "mesm_core.checkpoint")]


def test_the_checker_sees_a_child_parent_cycle(tmp_path):
    """A backend importing its package's interface while the package picks the backend: the former blind spot."""
    graph = _fake_tree(tmp_path, {
        "mesm_core/__init__.py": "",
        "mesm_core/models/__init__.py": "",
        "mesm_core/models/sparse/__init__.py": "from mesm_core.models.sparse.masked import block\n",
        "mesm_core/models/sparse/masked.py": "from mesm_core.models.sparse import Interface\n",
    })
    assert {"mesm_core.models.sparse", "mesm_core.models.sparse.masked"} in _cycles(graph)


def test_the_checker_does_not_count_the_parents_an_import_passes_through(tmp_path):
    """``pkg/a.py`` importing ``pkg.b`` runs ``pkg/__init__`` first, which already runs: no edge, no cycle."""
    graph = _fake_tree(tmp_path, {
        "mesm_core/__init__.py": "",
        "mesm_core/pkg/__init__.py": "from mesm_core.pkg.a import f\n",
        "mesm_core/pkg/a.py": "from mesm_core.pkg.b import g\nfrom . import b\n",
        "mesm_core/pkg/b.py": "import mesm_core.io\n",
        "mesm_core/io.py": "",
    })
    assert graph["mesm_core.pkg.a"] == {"mesm_core.pkg.b"} and _cycles(graph) == []
    assert graph["mesm_core.pkg.b"] == {"mesm_core.io"}


# --- architecture identity ------------------------------------------------------------------------------

# Where an architecture's name may be compared: where the names are declared (the config chooses the config
# section by name, the presets name their model, the registry holds the entries). Everyone else asks a
# capability of the registry entry (``get_arch(cfg.arch).supports_top_p``) or the model.
ARCH_NAMES_DECLARED = {"mesm_core.config", "mesm_core.presets", "mesm_core.models.registry"}
# Modules still comparing names (each with why); none left, and no new ones.
KNOWN_ARCH_TESTS: dict[str, str] = {}


def _arch_tests(path: Path, names: set[str]) -> list[int]:
    """Lines comparing something to an architecture name (``arch == "mesm"``, ``arch in ("fe2e", ...)``) or
    reading ``is_baseline``."""
    def is_name(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in names
        return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(is_name(e) for e in node.elts)

    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare) and any(is_name(n) for n in [node.left, *node.comparators]):
            lines.append(node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr == "is_baseline" and isinstance(node.ctx, ast.Load):
            lines.append(node.lineno)
    return lines


def test_architecture_names_are_compared_only_where_they_are_declared():
    from mesm_core.config import BASELINE_ARCHS, E2E_ARCHS

    names = set(E2E_ARCHS + BASELINE_ARCHS)
    found = {module: lines for module, path in _modules().items()
             if module not in ARCH_NAMES_DECLARED and (lines := _arch_tests(path, names))}
    assert set(found) == set(KNOWN_ARCH_TESTS), found


def test_the_name_check_sees_a_planted_comparison(tmp_path):
    path = tmp_path / "planted.py"
    path.write_text("def f(cfg, m):\n    if cfg.model.arch in ('fe2e', 'mesm'):\n        return m.arch != 'mesm'\n"
                    "    return cfg.is_baseline or cfg.arch == 'other'\n", encoding="utf-8")
    assert _arch_tests(path, {"fe2e", "mesm"}) == [2, 3, 4]
