"""The shape of the code, checked: dependencies point one way (the layers in README.md, "Layout"), no import cycles,
and no module or function too long to read at once."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "prodmatch"
# Low to high. A module imports its own package and lower layers only; packages in one layer never import each other.
LAYERS: list[set[str]] = [
    {"prodmatch", "config", "errors", "batching"},  # "prodmatch": the package itself (its version)
    {"models", "stores"},
    {"catalog", "matching"},
    {"composition"},
    {"application"},
    {"eval", "bench"},
    {"api"},
    {"cli"},
    {"__main__"},
]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50
# Alembic migrations are append-only history, written once in the shape Alembic generates.
EXEMPT = ("stores/migrations/versions/",)


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SOURCE.rglob("*.py")):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        name = ".".join(("prodmatch", *(parts[:-1] if parts[-1] == "__init__" else parts)))
        yield name, path


def imports_of(name: str, path: Path) -> set[str]:
    """The prodmatch modules NAME imports anywhere (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).rstrip(".")
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    known = dict(modules())
    return {module for module in found if module in known and module != name}


def layer_of(module: str) -> tuple[int, str]:
    top = module.split(".")[1] if "." in module else module  # "prodmatch.stores.sql" -> "stores"
    for number, packages in enumerate(LAYERS):
        if top in packages:
            return number, top
    raise AssertionError(f"{module} belongs to no layer: add its package to LAYERS and to the README's Layout")


def graph() -> dict[str, set[str]]:
    return {name: imports_of(name, path) for name, path in modules() if name != "prodmatch"}


def test_every_package_has_a_layer() -> None:
    for name, _path in modules():
        if name != "prodmatch":
            layer_of(name)


def test_dependencies_point_down_the_layers() -> None:
    wrong = []
    for module, imported in graph().items():
        (own_layer, own_top) = layer_of(module)
        for target in imported:
            (target_layer, target_top) = layer_of(target)
            if target_top != own_top and target_layer >= own_layer:
                wrong.append(f"{module} -> {target}")
    assert wrong == [], "imports that point up or sideways:\n" + "\n".join(sorted(wrong))


def test_there_are_no_import_cycles() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                cycles.append([*trail[trail.index(target) :], target] if target in trail else [node, target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize(("name", "path"), list(modules()), ids=lambda value: str(value))
def test_modules_and_functions_are_short(name: str, path: Path) -> None:
    if any(part in str(path) for part in EXEMPT):
        return
    lines = path.read_text().splitlines()
    assert len(lines) <= MAX_MODULE_LINES, f"{name} has {len(lines)} lines (at most {MAX_MODULE_LINES})"
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{name}.{node.name} has {length} lines (at most {MAX_FUNCTION_LINES})"
