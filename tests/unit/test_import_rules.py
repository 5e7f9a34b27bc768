"""Imports flow one way: web/ and workers/ call engine/; engine/ never imports the front ends
or their frameworks. Checked with import-linter's contracts from pyproject.toml, plus a direct
scan so the rule holds even where import-linter is not installed."""

from __future__ import annotations

import ast
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
FORBIDDEN_IN_ENGINE = ("aiohttp", "dramatiq", "web", "workers", "ops", "locust")
PURE_DOMAIN = ("money", "pricing", "order_status", "shipping_rules", "principal", "errors")


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_never_imports_front_ends_or_frameworks():
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & set(FORBIDDEN_IN_ENGINE))
                 for p in (ROOT / "engine").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_pure_domain_modules_import_only_the_standard_library_and_engine():
    allowed = set(sys.stdlib_module_names) | {"engine"}
    for name in PURE_DOMAIN:
        path = ROOT / "engine" / f"{name}.py"
        if path.exists():
            assert _imports(path) - allowed == set(), name


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports", path=str(pathlib.Path(sys.executable).parent))
    assert exe, "import-linter is part of the test extras"
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
