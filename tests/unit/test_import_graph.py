"""celeriac's modules import one another in one direction: no run-time import cycle.

The graph is read from the source (every ``import`` that runs, including those inside
functions; those under ``if TYPE_CHECKING:`` are for the type checker only and are left out),
so a cycle fails here even where Python would tolerate it at import time. ``lint-imports``
checks the direction of the layers (docs/design/architecture.md); this checks what it cannot
see: imports made inside functions, and cycles inside one layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import celeriac

ROOT = Path(celeriac.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                skipped.update(id(n) for sub in node.body for n in ast.walk(sub))
    return skipped


def _imported(node: ast.AST, module: str, is_package: bool, modules: set[str]) -> list[str]:
    """What ``node`` imports: ``from package import module`` names the module, not the
    package's ``__init__``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, *([node.module] if node.module else [])])
    named = (f"{base}.{alias.name}" for alias in node.names)
    return [name if name in modules else base for name in named]


def import_graph() -> dict[str, set[str]]:
    """Module -> the celeriac modules it imports at run time."""
    files = {_module_name(path): path for path in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        skipped = _type_checking_only(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            for target in _imported(node, name, path.name == "__init__.py", set(files)):
                if target in files and target != name:
                    graph[name].add(target)
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for following in graph[todo.pop()] - seen:
            seen.add(following)
            todo.append(following)
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that reach one another through their imports (each a cycle)."""
    reach = {module: _reachable(graph, module) for module in graph}
    found: list[list[str]] = []
    placed: set[str] = set()
    for module in sorted(graph):
        if module in placed or module not in reach[module]:
            continue
        group = sorted(m for m in reach[module] if module in reach[m])
        placed.update(group)
        found.append(group)
    return found


def test_there_is_no_run_time_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_check_finds_a_cycle_when_there_is_one() -> None:
    graph = import_graph()
    graph["celeriac.message"].add("celeriac.app")  # the core reaching up to the top
    assert any({"celeriac.app", "celeriac.message"} <= set(c) for c in cycles(graph))


def test_imports_inside_functions_count() -> None:
    graph = import_graph()
    # celeriac.testing imports the worker inside its functions only.
    assert "celeriac.worker" in graph["celeriac.testing"]
