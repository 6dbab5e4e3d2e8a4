"""The architecture's one rule: the network core imports no array library; it only calls its backend."""

from __future__ import annotations

import ast
import pathlib

import pytest

CORE = ["activations", "initializers", "layers", "losses", "metrics", "model", "optimizers", "regularizers"]
ARRAY_LIBRARIES = {"numpy", "cupy", "cupyx", "numba", "scipy", "torch"}
ROOT = pathlib.Path(__file__).resolve().parents[2]


def imported_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_array_library(module):
    found = imported_modules(ROOT / "netcore" / f"{module}.py") & ARRAY_LIBRARIES
    assert not found, f"netcore/{module}.py imports {found}"


def test_torch_is_never_imported_by_the_library():
    for path in list((ROOT / "netcore").rglob("*.py")) + list((ROOT / "backends").rglob("*.py")):
        assert "torch" not in imported_modules(path), path
