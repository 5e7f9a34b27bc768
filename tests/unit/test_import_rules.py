"""Imports flow one way: web/ and workers/ call engine/; engine/ never imports the front ends
or their frameworks. Checked with import-linter's contracts from pyproject.toml, plus a direct
scan so the rule holds even where import-linter is not installed."""

from __future__ import annotations

import ast
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FORBIDDEN_IN_ENGINE = ("aiohttp", "dramatiq", "web", "workers", "ops", "locust")


def _imports(path: pathlib.Path, depth: int = 1) -> set[str]:
    """The modules a file imports, cut to their first `depth` dotted parts."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {".".join(a.name.split(".")[:depth]) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(".".join(node.module.split(".")[:depth]))
    return names


def test_engine_never_imports_front_ends_or_frameworks():
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & set(FORBIDDEN_IN_ENGINE))
                 for p in (ROOT / "engine").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_pure_domain_modules_import_only_the_standard_library_and_the_domain():
    allowed = set(sys.stdlib_module_names) | {"engine.domain"}
    modules = sorted((ROOT / "engine" / "domain").glob("*.py"))
    assert len(modules) >= 7, "engine/domain/ holds the pure modules"
    for path in modules:
        imported = {name if name.startswith("engine") else name.split(".")[0] for name in _imports(path, depth=2)}
        assert imported - allowed == set(), path.name


def _import_cycles(graph, packages: tuple[str, ...]) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan), imports under TYPE_CHECKING
    included: a cycle hidden behind TYPE_CHECKING is still two ideas that know each other."""
    modules = sorted(m for m in graph.modules if m.split(".")[0] in packages)
    inside = set(modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module) & inside):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in modules:
        if module not in index:
            visit(module)
    return cycles


def test_engine_and_web_have_no_import_cycles():
    grimp = pytest.importorskip("grimp")  # comes with import-linter (test extras)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    graph = grimp.build_graph("engine", "web")
    assert _import_cycles(graph, ("engine", "web")) == []


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports", path=str(pathlib.Path(sys.executable).parent))
    assert exe, "import-linter is part of the test extras"
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# web/auth.py still reads the tenant by slug and the user row; the security work moves that out.
_WEB_STILL_QUERYING = {"web/auth.py"}
_DATABASE_CALLS = (".transaction(", ".connection(", ".fetch(", ".fetchrow(", ".fetchval(", ".execute(")


def test_web_opens_no_transaction_and_runs_no_sql():
    """Transactions open in the engine (one place decides what commits together)."""
    offenders = {}
    for path in sorted((ROOT / "web").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        text = path.read_text().replace("pipe.execute(", "")  # a Redis pipeline, not SQL
        found = [call for call in _DATABASE_CALLS if call in text]
        if found and name not in _WEB_STILL_QUERYING:
            offenders[name] = found
    assert offenders == {}
