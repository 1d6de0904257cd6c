"""The house rules the layout keeps: no import cycle among the project's modules, arrows only
downward between the packages and the rooms of ``raysearch`` (the map in ``tests/rooms.py``,
drawn in the README), and nothing heavy at import.

Every import counts: module level, inside functions, and inside ``if TYPE_CHECKING:`` blocks
(a type-only import is still an arrow between two rooms, and a circle of them is a tangle a
reader has to hold in their head even when Python never executes it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import rooms
from rooms import ROOMS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("trainables", "search_spaces", "raysearch")


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every name ``module`` imports anywhere in its source: at module level, inside functions
    and classes, and inside ``if TYPE_CHECKING:`` blocks (``ast.walk`` visits them all).
    Relative imports are resolved against ``module``."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module → the project modules it imports ("pkg.mod.func" counts as "pkg.mod")."""
    paths = {_module_name(p, root): p for package in PACKAGES for p in (root / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets = set()
        for imported in _imports(path.read_text(), name, path.name == "__init__.py"):
            while imported and imported not in paths:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: for every module in a strongly connected component (Tarjan's
    algorithm) the shortest circle through it, as a path ``[a, b, ..., a]`` that starts at its
    alphabetically first module; each circle once."""
    edges = {node: sorted(t for t in targets if t in graph) for node, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                connect(nxt)
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
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)

    cycles: list[list[str]] = []
    for component in sorted(components):
        members = set(component)
        for start in component:  # the shortest way back to each member names every circle in it
            came_from: dict[str, str] = {}
            frontier = [start]
            while start not in came_from:  # breadth first
                reached = []
                for node in frontier:
                    for nxt in edges[node]:
                        if nxt in members and nxt not in came_from:
                            came_from[nxt] = node
                            reached.append(nxt)
                frontier = reached
            path = [start]  # walked backwards: start, the module importing start, ...
            while came_from[path[-1]] != start:
                path.append(came_from[path[-1]])
            path.reverse()
            first = path.index(min(path))
            cycle = [*path[first:], *path[:first]]
            if [*cycle, cycle[0]] not in cycles:
                cycles.append([*cycle, cycle[0]])
    return cycles


def _part(module: str) -> str:
    for part in sorted(ROOMS, key=len, reverse=True):
        if module == part or module.startswith(part + "."):
            return part
    raise AssertionError(f"{module} belongs to no part of the map")


def test_no_import_cycle_among_the_projects_modules() -> None:
    cycles = _cycles(_graph())
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_imports_point_only_down_the_map() -> None:
    wrong = []
    for module, targets in _graph().items():
        allowed = rooms.allowed(_part(module))
        wrong += [f"{module} -> {target}" for target in targets if _part(target) not in allowed]
    assert sorted(wrong) == []


def test_the_graph_sees_type_checking_and_function_level_imports(tmp_path: Path) -> None:
    (tmp_path / "raysearch").mkdir()
    (tmp_path / "raysearch" / "__init__.py").write_text("")
    (tmp_path / "raysearch" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from raysearch.b import B\n")
    (tmp_path / "raysearch" / "b.py").write_text("def f():\n    from raysearch import c\n")
    (tmp_path / "raysearch" / "c.py").write_text("class C:\n    def g(self):\n        from . import a\n")
    graph = _graph(tmp_path)
    assert graph["raysearch.a"] == {"raysearch.b"}
    assert graph["raysearch.b"] == {"raysearch.c", "raysearch"}
    assert graph["raysearch.c"] == {"raysearch.a", "raysearch"}
    assert _cycles(graph) == [["raysearch.a", "raysearch.b", "raysearch.c", "raysearch.a"]]


def test_the_readmes_map_of_rooms_is_the_one_the_code_draws() -> None:
    assert rooms.readme_table(rooms.README.read_text()) == rooms.table(), \
        "README.md's map of rooms has drifted from the code: run python tests/rooms.py"


def test_every_module_lives_in_a_room_of_the_map() -> None:
    homeless = []
    for module in _graph():
        try:
            _part(module)
        except AssertionError:
            homeless.append(module)
    assert homeless == []


def test_importing_raysearch_and_its_cli_starts_nothing_heavy() -> None:
    code = ("import sys, raysearch, raysearch.cli;"
            "print(sorted(m for m in ('torch', 'ray', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # a mistyped command answers in a fraction of a second


COMMAND_LINES, FUNCTION_LINES = 250, 60  # issue 25: commands stay thin, functions stay readable


def _function_lengths(source: str) -> list[tuple[int, str]]:
    """(lines from the first decorator to the last line, name) of every function in ``source``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            out.append((node.end_lineno - start + 1, f"{node.name}:{node.lineno}"))
    return out


def test_commands_are_thin() -> None:
    long = {p.name: n for p in (ROOT / "raysearch" / "commands").glob("*.py")
            if (n := len(p.read_text().splitlines())) > COMMAND_LINES}
    assert not long, f"commands over {COMMAND_LINES} lines (move the work into raysearch/pipeline): {long}"


def test_no_function_is_longer_than_sixty_lines() -> None:
    long = [f"{p.relative_to(ROOT)}:{name} ({n} lines)" for package in ("raysearch", "trainables", "search_spaces")
            for p in sorted((ROOT / package).rglob("*.py")) for n, name in _function_lengths(p.read_text())
            if n > FUNCTION_LINES]
    assert not long, f"functions over {FUNCTION_LINES} lines: {long}"


def test_the_length_rule_counts_decorators_and_bodies() -> None:
    source = "@decorator\ndef f():\n" + "    x = 1\n" * 60 + "\ndef g():\n    pass\n"
    assert sorted(_function_lengths(source)) == [(2, "g:64"), (62, "f:2")]
