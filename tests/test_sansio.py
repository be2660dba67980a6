"""The protocol core stays sans-IO: no sockets, no asyncio, no clock reads."""

import ast
import pathlib

import pytest

CORE = ["sip", "csta", "switch", "tr87"]
#: Sans-IO modules inside packages that also hold adapters.
CORE_MODULES = ["cluster/rules.py", "cluster/bus.py"]
FORBIDDEN = {"asyncio", "socket", "ssl", "time", "selectors", "threading"}
SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "uacsta"


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", CORE)
def test_core_layer_imports_no_io(layer: str) -> None:
    files = sorted((SRC / layer).rglob("*.py"))
    assert files, f"layer {layer} has no modules"
    for path in files:
        bad = _imports(path) & FORBIDDEN
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_no_io(module: str) -> None:
    bad = _imports(SRC / module) & FORBIDDEN
    assert not bad, f"{module} imports {sorted(bad)}"


def test_core_layers_depend_only_downwards() -> None:
    allowed = {
        "sip": {"sip"},
        "csta": {"csta"},
        "switch": {"switch", "csta"},
        "tr87": {"tr87", "sip", "csta"},
    }
    for layer, ok in allowed.items():
        for path in (SRC / layer).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module:
                    parts = node.module.split(".")
                    if node.level == 0 and parts[0] == "uacsta" and len(parts) > 1:
                        assert parts[1] in ok, f"{path.name} imports {node.module}"
                    if node.level >= 2:
                        assert parts[0] in ok, f"{path.name} imports ..{node.module}"
