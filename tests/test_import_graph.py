"""The package's import graph: no circles, and no private name imported across modules.

Every ``import`` statement in every module of ``rrnn_convex`` is read with :mod:`ast`, the lazy
ones inside functions included (a lazy import that closes a circle is still a circle: it only
moves the failure to run time). An edge goes from a module to each package module it names;
``from pkg import name`` points at ``pkg.name`` when that is a module, else at ``pkg`` itself
(whose ``__init__`` then has to run). Imports under ``if TYPE_CHECKING:`` are annotations only,
never run, and are left out. A private name is one with a single leading underscore
taken from another module (``from .fit import _Run``); private *modules* (``_io``,
``_validation``) are the package's shared helpers and may be imported by name.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rrnn_convex

ROOT = Path(rrnn_convex.__file__).resolve().parent
PACKAGE = "rrnn_convex"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _resolve(module: str, level: int, target: str | None) -> str:
    """The absolute name of ``from <level dots><target> import ...`` written in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def _imports(module: str):
    """(imported module, name or None, line) for every package-internal import in ``module``."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    skip = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node.level, node.module)
            if source.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                yield source, alias.name, node.lineno


def _edges(module: str) -> dict[str, int]:
    """Modules that ``module`` imports, each with the first line that does."""
    out: dict[str, int] = {}
    for source, name, line in _imports(module):
        target = f"{source}.{name}" if name and f"{source}.{name}" in MODULES else source
        if target != module and target in MODULES:
            out.setdefault(target, line)
    return out


GRAPH = {m: _edges(m) for m in MODULES}


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Every strongly connected component of two or more modules of ``graph`` (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _private_imports() -> list[str]:
    bad = []
    for module in MODULES:
        for source, name, line in _imports(module):
            if not name or not name.startswith("_") or name.startswith("__"):
                continue
            if f"{source}.{name}" in MODULES or source == module:
                continue  # a private helper module, or a module naming itself
            bad.append(f"{module}:{line} imports {name} from {source}")
    return bad


def test_the_graph_is_read():
    """The reader sees the package: the core modules and the edges everyone relies on."""
    assert {"rrnn_convex.model", "rrnn_convex.lmi", "rrnn_convex.certify", "rrnn_convex.fit"} <= set(MODULES)
    assert "rrnn_convex.shapes" in GRAPH["rrnn_convex.model"]
    assert "rrnn_convex.initial_state" in GRAPH["rrnn_convex.model"]  # a lazy import is an edge
    assert "rrnn_convex.certify" in GRAPH["rrnn_convex"]


def test_reader_finds_a_planted_circle():
    """The check can fail: a planted edge from the model up to the trainer closes a circle."""
    planted = {m: dict(e) for m, e in GRAPH.items()}
    planted["rrnn_convex.model"]["rrnn_convex.fit"] = 1
    assert any({"rrnn_convex.model", "rrnn_convex.fit"} <= set(c) for c in _cycles(planted))
    assert _resolve("rrnn_convex.baselines.barrier", 2, "fit") == "rrnn_convex.fit"
    assert _resolve("rrnn_convex", 1, "model") == "rrnn_convex.model"


def test_no_import_circle():
    cycles = _cycles(GRAPH)
    assert not cycles, "import circles (lazy imports included): " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_private_name_imported_across_modules():
    bad = _private_imports()
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_parses(module):
    ast.parse(MODULES[module].read_text())


def test_benchmark_scripts_use_only_public_names():
    """The scripts under benchmarks/ run rarely and no test imports them: a private name they
    borrow from the package (time_to_target's plot once imported plots._figure, which a
    refactoring renamed) breaks them silently. They may use only public names."""
    bench = ROOT.parent / "benchmarks"
    if not bench.is_dir():
        pytest.skip(f"no benchmarks folder beside the package ({bench}): an installed copy")
    private = []
    for path in sorted(bench.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rrnn_convex"):
                private += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert not private, private
