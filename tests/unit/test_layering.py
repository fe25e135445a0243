"""The layering of docs/architecture.md, held by the imports themselves.

Lowest first: `scim/`, `mappings/`, `lms_client/` (pure or leaf) → `core/`
→ `shadow/` → `worker/` → `ops/` → `api/` → `cli/`. A package imports
only packages below it, so no two top-level packages form a cycle.
Imports are read with `ast` (nothing is executed), including the ones
inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Each package and the project packages it may import.
LEAVES = frozenset({"scim", "mappings", "lms_client"})
ALLOWED: dict[str, frozenset[str]] = {
    "scim": frozenset(),
    "mappings": frozenset(),
    "lms_client": frozenset(),
    "core": LEAVES,
    "shadow": LEAVES | {"core"},
    "worker": LEAVES | {"core", "shadow"},
    "ops": LEAVES | {"core", "shadow", "worker"},
    "api": LEAVES | {"core", "shadow", "worker", "ops"},
    "cli": LEAVES | {"core", "shadow", "worker", "ops", "api", "lms_sandbox"},
    # A stand-alone LMS for tests and the quick start: none of the bridge.
    "lms_sandbox": frozenset(),
}
PROJECT = frozenset(ALLOWED)


def imported_packages(path: Path) -> set[str]:
    """The project's top-level packages that `path` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(top for name in names if (top := name.split(".")[0]) in PROJECT)
    return found


def package_imports(package: str) -> dict[str, set[str]]:
    """Each module of `package` and the other project packages it imports."""
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules under {package}/"
    return {str(path.relative_to(ROOT)): imported_packages(path) - {package} for path in modules}


def breaches(graph: dict[str, dict[str, set[str]]]) -> list[str]:
    return [
        f"{module} imports {other}"
        for package, modules in graph.items()
        for module, imports in modules.items()
        for other in sorted(imports - ALLOWED[package])
    ]


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle among packages (as a path that ends where it starts), or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, set[str]]]:
    return {package: package_imports(package) for package in ALLOWED}


def test_each_package_imports_only_packages_below_it(
    graph: dict[str, dict[str, set[str]]],
) -> None:
    assert breaches(graph) == []


def test_no_two_top_level_packages_import_each_other(
    graph: dict[str, dict[str, set[str]]],
) -> None:
    edges = {p: set().union(*modules.values()) for p, modules in graph.items()}
    assert cycle(edges) is None


def test_a_worker_importing_the_api_is_caught() -> None:
    """The check itself: an upward import and a cycle are both found."""
    graph = {"worker": {"worker/x.py": {"api"}}, "api": {"api/y.py": {"worker"}}}
    assert breaches(graph) == ["worker/x.py imports api"]
    assert cycle({"worker": {"api"}, "api": {"worker"}}) == ["api", "worker", "api"]
    assert cycle({"api": {"worker"}, "worker": {"shadow"}, "shadow": set()}) is None
