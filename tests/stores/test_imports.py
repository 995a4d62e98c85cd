"""How the stores package hangs together: no import cycles, only the factory (and what opens stores through it)
reaches the backends, and an optional driver is imported only when its backend is chosen."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import prodmatch.stores

STORES = Path(prodmatch.stores.__file__).parent
DRIVERS = ("pymongo", "qdrant_client", "pgvector", "psycopg")


def module_imports() -> dict[str, set[str]]:
    """Each stores module -> the stores modules it imports when it is imported (not inside functions)."""
    graph: dict[str, set[str]] = {}
    for path in STORES.glob("*.py"):
        found = {
            node.module.removeprefix("prodmatch.stores.")
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("prodmatch.stores.")
        }
        graph[path.stem] = found
    return graph


def test_stores_modules_import_each_other_without_cycles() -> None:
    graph = module_imports()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for imported in graph.get(module, ()):
                visit(imported, (*path, module))
            done.add(module)

    for module in graph:
        visit(module, ())
    assert {"sql", "mongo", "qdrant_index", "filters"} <= done  # the walk saw the package


def test_only_the_composition_side_imports_the_factory() -> None:
    importers = {module for module, imported in module_imports().items() if "factory" in imported}
    assert importers == {"catalog_stores"}


def test_no_driver_is_imported_until_its_backend_is_chosen() -> None:
    modules = ["factory", "catalog_stores", "filters", "conditions", "protocols", "availability", "sql_filters"]
    code = (
        f"import sys\nfor name in {modules!r}: __import__('prodmatch.stores.' + name)\n"
        f"print(sorted(d for d in {DRIVERS!r} if d in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
