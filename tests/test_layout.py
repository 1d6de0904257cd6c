"""The house rules the layout keeps: no import cycle among the project's modules, arrows only
downward between the packages and the rooms of ``raysearch``, and nothing heavy at import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("trainables", "search_spaces", "raysearch")
# what each part may import (its own modules always): the arrows of the README's map
ALLOWED = {
    "trainables": {"trainables"},
    "search_spaces": {"search_spaces", "trainables"},
    "raysearch._version": set(),
    "raysearch.rundir": {"raysearch.rundir", "raysearch._version", "search_spaces", "trainables"},
    "raysearch.tuning": {"raysearch.tuning", "raysearch.rundir", "raysearch._version", "search_spaces", "trainables"},
    "raysearch.reporting": {"raysearch.reporting", "raysearch.rundir", "raysearch._version", "search_spaces",
                            "trainables"},
    "raysearch.commands": {"raysearch.commands", "raysearch.tuning", "raysearch.reporting", "raysearch.rundir",
                           "raysearch._version", "search_spaces", "trainables"},
    "raysearch.cli": {"raysearch.commands", "raysearch.rundir", "trainables"},
    "raysearch.__main__": {"raysearch.cli"},
    "raysearch": {"raysearch._version", "raysearch.commands"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every project module ``path`` imports, at module level or inside functions (a lazy
    import is still a dependency); ``if TYPE_CHECKING:`` blocks are types only."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path):
            while imported and imported not in modules:  # "pkg.mod.func" -> "pkg.mod"
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _part(module: str) -> str:
    for part in sorted(ALLOWED, key=len, reverse=True):
        if module == part or module.startswith(part + "."):
            return part
    raise AssertionError(f"{module} belongs to no part of the map")


def test_no_import_cycle_among_the_projects_modules() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ re-exporting its own modules is not a cycle between modules
            if nxt.startswith(node + ".") or node.startswith(nxt + ".") and graph.get(nxt) and node in graph[nxt]:
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_imports_point_only_down_the_map() -> None:
    wrong = []
    for module, targets in _graph().items():
        allowed = ALLOWED[_part(module)]
        for target in targets:
            if not any(target == a or target.startswith(a + ".") for a in allowed):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_importing_raysearch_and_its_cli_starts_nothing_heavy() -> None:
    code = ("import sys, raysearch, raysearch.cli;"
            "print(sorted(m for m in ('torch', 'ray', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # a mistyped command answers in a fraction of a second
