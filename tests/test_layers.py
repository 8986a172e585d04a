"""Imports point down the layers of DESIGN §2: core < records (+ theory) < sim | real_cluster < apps.

Every module of sched_lab/ and real_cluster/ is parsed; every import is resolved to a full module
name (`import x`, `from x import y` including `from pkg import submodule`, relative imports, and
`importlib.import_module("...")` / `__import__("...")` with a literal name, relative ones too) and
checked against the rules:

- core imports only the standard library, and none of the clock/IO/thread modules (sans-IO);
- records and sched_lab/theory.py import only the standard library, core, numpy and pandas;
- sim and real_cluster never import each other;
- nothing below apps imports apps (sched_lab/__main__ is the console entry point: apps);
- the sched_lab package itself (`sched_lab/__init__.py`) may import core and records only.

The checker is shown to fail: scratch package trees, each with exactly one bad edge, must report
exactly that edge.
"""

from __future__ import annotations

import ast
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("sched_lab", "real_cluster")
LAYERS = ("core", "records", "sim", "live", "apps", "root")

# sans-IO: the core never touches these even though they are standard library
NOT_IN_CORE = frozenset({"asyncio", "socket", "selectors", "threading", "time", "multiprocessing", "subprocess",
                         "concurrent", "logging", "sqlite3"})
RECORDS_MAY_USE = frozenset({"numpy", "pandas"})


@dataclass(frozen=True, slots=True)
class Edge:
    """One import that breaks a layering rule: `source` module imports `target` module."""

    source: str
    target: str
    rule: str


def module_name(root: Path, path: Path) -> str:
    """Dotted module name of a file under `root` (a package's __init__ is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path) -> dict[str, Path]:
    """Every module of the checked packages under `root`, by name."""
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            mods[module_name(root, path)] = path
    return mods


def _absolute(name: str, level: int, package: str) -> str:
    """Resolve a relative import `level` dots up from `package` (the importing module's package)."""
    if level == 0:
        return name
    base = package.split(".")
    if level - 1 >= len(base):
        raise ImportError(f"relative import beyond the top-level package from {package!r}")
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(source: str, module: str, is_package: bool) -> set[str]:
    """Full names of the modules `source` (module `module`) imports, in any form the checker knows."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module or "", node.level, package)
            # `from pkg import name`: name may be a submodule or not; the resolver takes the longest known prefix
            found.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if fname not in ("import_module", "__import__") or not node.args:
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                name = arg.value
                level = len(name) - len(name.lstrip("."))
                found.add(_absolute(name[level:], level, package))
    return found


def layer_of(module: str) -> str | None:
    """The layer of one of our modules; None for anything outside sched_lab and real_cluster."""
    top, _, rest = module.partition(".")
    if top == "real_cluster":
        return "live"
    if top != "sched_lab":
        return None
    sub = rest.partition(".")[0]
    if sub in ("core", "records", "sim", "apps"):
        return sub
    if sub == "theory":
        return "records"
    if sub == "__main__":
        return "apps"
    return "root"


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest prefix of `name` that is one of our modules; None if it is not ours."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def _rule_broken(src_layer: str, target: str, target_layer: str | None) -> str | None:
    """Which rule the arrow source-layer -> target breaks, or None."""
    top = target.split(".")[0]
    external_std = target_layer is None and top in sys.stdlib_module_names
    if target_layer == "root":               # sched_lab/__init__ runs on every import of sched_lab.*: always allowed
        return None
    if src_layer == "core":
        if target_layer not in (None, "core"):
            return "core imports only the standard library"
        if target_layer is None and (not external_std or top in NOT_IN_CORE):
            return "core imports only the standard library, and no clock, IO or threads"
    elif src_layer == "records":
        if target_layer not in (None, "core", "records") or (
                target_layer is None and not external_std and top not in RECORDS_MAY_USE):
            return "records imports only core, numpy and pandas"
    elif src_layer == "root":
        if target_layer not in (None, "core", "records") or (target_layer is None and not external_std):
            return "the sched_lab package imports core and records only"
    elif src_layer in ("sim", "live"):  # any third-party library, core, records
        other = "live" if src_layer == "sim" else "sim"
        if target_layer == other:
            return "sim and real_cluster never import each other"
        if target_layer == "apps":
            return "nothing below apps imports apps"
    return None


def graph(root: Path) -> dict[str, set[str]]:
    """Every import between and out of our modules: module -> full names of the modules it imports."""
    known = find_modules(root)
    out: dict[str, set[str]] = {}
    for mod, path in known.items():
        targets = set()
        for name in imports_of(path.read_text(), mod, path.name == "__init__.py"):
            ours = _resolve(name, known)
            if ours is not None:
                targets.add(ours)
            elif layer_of(name) is None:        # outside our packages: its top-level distribution
                targets.add(name.split(".")[0])
        targets.discard(mod)
        out[mod] = targets
    return out


def violations(root: Path) -> list[Edge]:
    """Every import under `root` that breaks a rule of DESIGN §2, sorted."""
    bad = set()
    for mod, targets in graph(root).items():
        src_layer = layer_of(mod)
        assert src_layer is not None
        for target in targets:
            rule = _rule_broken(src_layer, target, layer_of(target))
            if rule is not None:
                bad.add(Edge(mod, target, rule))
    return sorted(bad, key=lambda e: (e.source, e.target))


def layer_table(root: Path) -> dict[tuple[str, str], int]:
    """(importing layer, imported layer) -> number of module-to-module imports."""
    counts: dict[tuple[str, str], int] = {}
    for mod, targets in graph(root).items():
        for target in targets:
            tl = layer_of(target)
            if tl is not None:
                key = (layer_of(mod) or "?", tl)
                counts[key] = counts.get(key, 0) + 1
    return counts


# --------------------------------------------------------------------------------------------- the repository
def test_the_repository_has_the_five_layers() -> None:
    layers = {layer_of(m) for m in find_modules(REPO)}
    assert {"core", "records", "sim", "live", "apps"} <= layers
    assert "sched_lab.core.scheduler" in find_modules(REPO) and "real_cluster.controller" in find_modules(REPO)


def test_no_import_breaks_the_layers() -> None:
    bad = violations(REPO)
    assert bad == [], "\n".join(f"{e.source} -> {e.target}: {e.rule}" for e in bad)


def test_request_handlers_do_not_reach_into_the_controller() -> None:
    """hub_requests does not import the controller: both import real_cluster.task_table instead."""
    g = graph(REPO)
    assert "real_cluster.controller" not in g["real_cluster.hub_requests"]
    assert "real_cluster.task_table" in g["real_cluster.hub_requests"] & g["real_cluster.controller"]


def test_core_imports_no_clock_io_or_threads() -> None:
    """What tests/core/test_purity.py checked: the sans-IO core (every core module seen, none reaching out)."""
    g = graph(REPO)
    core = {m: t for m, t in g.items() if layer_of(m) == "core"}
    assert len(core) >= 5
    for mod, targets in core.items():
        tops = {t.split(".")[0] for t in targets}
        assert not tops & (NOT_IN_CORE | {"simpy", "matplotlib", "pandas", "numpy", "real_cluster"}), mod


# ------------------------------------------------------------------------------- the checker has power
CLEAN_TREE = {
    "sched_lab/__init__.py": "from .core import model\n",
    "sched_lab/theory.py": "import math\nimport numpy as np\n",
    "sched_lab/core/__init__.py": "from .model import Spec\n",
    "sched_lab/core/model.py": "import dataclasses\nimport random\nSpec = 1\n",
    "sched_lab/records/__init__.py": "",
    "sched_lab/records/summary.py": "import pandas as pd\nfrom ..core import model\nfrom sched_lab.theory import np\n",
    "sched_lab/sim/__init__.py": "",
    "sched_lab/sim/driver.py": "import simpy\nfrom ..records import summary\nfrom sched_lab.core.model import Spec\n",
    "sched_lab/apps/__init__.py": "",
    "sched_lab/apps/cli.py": "from sched_lab.sim import driver\nimport real_cluster.client\n",
    "sched_lab/__main__.py": "from .apps.cli import main\n",
    "real_cluster/__init__.py": "from .client import Client\n",
    "real_cluster/client.py": "import asyncio\nfrom sched_lab.core import model\nfrom sched_lab import records\n",
}

BAD_EDGES = {
    "relative import up": ("sched_lab/core/model.py", "from ..sim import driver\n",
                           "sched_lab.core.model", "sched_lab.sim.driver"),
    "import_module string": ("sched_lab/records/summary.py",
                             "import importlib\nimportlib.import_module('sched_lab.apps.cli')\n",
                             "sched_lab.records.summary", "sched_lab.apps.cli"),
    "__import__ string": ("real_cluster/client.py", "__import__('sched_lab.sim.driver')\n",
                          "real_cluster.client", "sched_lab.sim.driver"),
    "relative import_module string": ("sched_lab/core/model.py",
                                      "import importlib\nimportlib.import_module('..apps.cli', __package__)\n",
                                      "sched_lab.core.model", "sched_lab.apps.cli"),
    "sim -> real_cluster": ("sched_lab/sim/driver.py", "from real_cluster.client import Client\n",
                            "sched_lab.sim.driver", "real_cluster.client"),
    "real_cluster -> sim via from-package": ("real_cluster/client.py", "from sched_lab.sim import driver\n",
                                             "real_cluster.client", "sched_lab.sim.driver"),
    "records -> sim": ("sched_lab/records/summary.py", "from sched_lab.sim import driver\n",
                       "sched_lab.records.summary", "sched_lab.sim.driver"),
    "core -> time": ("sched_lab/core/model.py", "import time\n", "sched_lab.core.model", "time"),
    "theory -> scipy": ("sched_lab/theory.py", "from scipy import stats\n", "sched_lab.theory", "scipy"),
    "package root -> sim": ("sched_lab/__init__.py", "from . import sim\n", "sched_lab", "sched_lab.sim"),
}


def build(root: Path, extra: dict[str, str]) -> Path:
    for rel, text in {**CLEAN_TREE, **extra}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_a_clean_scratch_tree_passes(tmp_path: Path) -> None:
    root = build(tmp_path, {})
    assert violations(root) == []
    assert ("apps", "live") in layer_table(root) and ("live", "core") in layer_table(root)


@pytest.mark.parametrize("case", sorted(BAD_EDGES))
def test_one_bad_edge_is_reported_exactly(tmp_path: Path, case: str) -> None:
    rel, line, source, target = BAD_EDGES[case]
    root = build(tmp_path, {rel: CLEAN_TREE[rel] + line})
    assert [(e.source, e.target) for e in violations(root)] == [(source, target)]


def test_a_relative_import_beyond_the_top_is_an_error() -> None:
    with pytest.raises(ImportError):
        imports_of("from ... import x\n", "sched_lab.core", is_package=True)
