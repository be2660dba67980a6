"""The layering holds: no import cycles among the server's packages, and nothing but the
entry points imports :mod:`uacsta.server` (the parts get what they need passed in).

Imports are read with :mod:`ast`, so those under ``TYPE_CHECKING`` and inside functions count
too: a cycle hidden from the interpreter is still a cycle in the design.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import uacsta

ROOT = Path(uacsta.__file__).parent
#: The packages (and modules) whose graph must stay acyclic.
UNITS = ("server", "operations", "web", "control", "phones", "net", "gateways", "cluster")
#: Who may import the server: the entry points that run it.
MAY_IMPORT_SERVER = {"uacsta.cli", "uacsta.demo", "uacsta.__main__", "uacsta.server"}
#: Modules still typed against the server while they move to uacsta.operations (the JSON API
#: is being split); each entry must still import it, so a finished move removes the entry.
PENDING: set[str] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, absolute, wherever the import statement sits."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # ``from uacsta.web import admin`` imports the module uacsta.web.admin.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def unit_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "uacsta" or parts[1] not in UNITS:
        return None
    return parts[1]


def graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    """Edges between units, and for each edge one module that makes it (for the message)."""
    edges: dict[str, set[str]] = {unit: set() for unit in UNITS}
    why: dict[tuple[str, str], str] = {}
    for path in sorted(ROOT.rglob("*.py")):
        source = module_name(path)
        here = unit_of(source)
        if here is None:
            continue
        for target in imports(path):
            if source in PENDING and target.startswith("uacsta.server"):
                continue
            there = unit_of(target)
            if there is not None and there != here:
                edges[here].add(there)
                why.setdefault((here, there), f"{source} imports {target}")
    return edges, why


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(unit: str) -> list[str] | None:
        state[unit] = 1
        path.append(unit)
        for nxt in sorted(edges[unit]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[unit] = 2
        return None

    for unit in UNITS:
        if unit not in state and (found := visit(unit)) is not None:
            return found
    return None


def test_no_cycles_among_the_server_packages() -> None:
    edges, why = graph()
    cycle = find_cycle(edges)
    if cycle is not None:
        steps = [why[(a, b)] for a, b in itertools.pairwise(cycle)]
        raise AssertionError("import cycle " + " -> ".join(cycle) + ":\n  " + "\n  ".join(steps))


def test_only_the_entry_points_import_the_server() -> None:
    offenders = sorted(
        f"{module_name(path)} imports {target}"
        for path in ROOT.rglob("*.py")
        if module_name(path) not in MAY_IMPORT_SERVER | PENDING
        for target in imports(path)
        if target == "uacsta.server" or target.startswith("uacsta.server.")
    )
    assert offenders == []


def test_pending_modules_still_need_their_exception() -> None:
    for name in PENDING:
        path = ROOT.joinpath(*name.split(".")[1:]).with_suffix(".py")
        assert not path.exists() or "uacsta.server" in set(imports(path)), (
            f"{name} no longer imports uacsta.server: remove it from PENDING"
        )


def test_the_checker_finds_a_cycle() -> None:
    cycle = find_cycle({"server": {"web"}, "web": {"control"}, "control": {"web"}})
    assert cycle == ["web", "control", "web"]


def test_the_checker_reads_relative_and_hidden_imports() -> None:
    found = set(imports(ROOT / "web" / "app.py"))
    assert "uacsta.web.auth" in found  # at the top
    assert "uacsta.store.db" in found  # under TYPE_CHECKING
    assert "uacsta.web.metrics" in found  # inside a function
