"""The core is sans-IO: no module in sched_lab/core imports a driver, a clock, I/O, threads or plotting.

Walks every module's AST (plain `import x`, `from x import y`, and `importlib.import_module("x")` /
`__import__("x")` with a literal name) and fails on any forbidden top-level package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sched_lab

FORBIDDEN = frozenset({
    "asyncio", "socket", "selectors", "threading", "time", "simpy", "matplotlib", "pandas",
    "real_cluster", "multiprocessing", "subprocess",
})

CORE_DIR = Path(sched_lab.__file__).resolve().parent / "core"
CORE_MODULES = sorted(CORE_DIR.rglob("*.py"))


def imported_top_level_names(source: str) -> set[str]:
    """Top-level package names a module imports (absolute imports only; relative stay inside the core)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if fname in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value.split(".")[0])
    return names


def test_core_has_modules() -> None:
    names = {p.name for p in CORE_MODULES}
    assert {"model.py", "dependency.py"} <= names


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: str(p.relative_to(CORE_DIR)))
def test_core_module_imports_nothing_forbidden(path: Path) -> None:
    bad = imported_top_level_names(path.read_text()) & FORBIDDEN
    assert not bad, f"{path.name} imports {sorted(bad)}: the core must stay pure"


def test_walker_catches_forbidden_imports() -> None:
    """The walker itself has power: each import form is seen."""
    src = ("import os, time\nfrom asyncio import sleep\nimport simpy.core as s\n"
           "from . import model\nimport importlib\nimportlib.import_module('socket')\n__import__('pandas')\n")
    found = imported_top_level_names(src)
    assert found & FORBIDDEN == {"time", "asyncio", "simpy", "socket", "pandas"}
    assert "os" in found and "model" not in found
