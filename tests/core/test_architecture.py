"""The architecture's one rule: the network core imports no array library; it only calls its backend."""

from __future__ import annotations

import ast
import pathlib

import pytest

CORE = [
    "activations",
    "callbacks",
    "distributed",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "regularizers",
    "trainers",
    "validation",
    "streaming",
]
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


def module_files(module: str) -> list[pathlib.Path]:
    """A core module's file, or every file of a core package."""
    package = ROOT / "netcore" / module
    return sorted(package.glob("*.py")) if package.is_dir() else [ROOT / "netcore" / f"{module}.py"]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_array_library(module):
    files = module_files(module)
    assert files and all(path.exists() for path in files), module
    for path in files:
        found = imported_modules(path) & ARRAY_LIBRARIES
        assert not found, f"{path.relative_to(ROOT)} imports {found}"


def test_torch_is_never_imported_by_the_library():
    for path in list((ROOT / "netcore").rglob("*.py")) + list((ROOT / "backends").rglob("*.py")):
        assert "torch" not in imported_modules(path), path
