"""Scenario results for RELIABILITY.md.

A test fills a `ScenarioRecord` (what load, what was injected, which promises were checked,
the recovery time); when the test ends, its outcome (passed / failed / skipped with reason) is
added and the record is appended as one JSON line to the file named by FAULTS_RESULTS (nothing
is written when it is unset). Hostile-input tests get a line each too, so the report can
summarise them. `ops.reliability` renders the file.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

_LOCK = threading.Lock()


@dataclass
class ScenarioRecord:
    name: str
    load: str = ""
    injected: str = ""
    invariants: list[str] = field(default_factory=list)
    recovery_seconds: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    kind: str = "fault"
    outcome: str = "unknown"
    reason: str = ""


def write(record: ScenarioRecord) -> None:
    path = os.environ.get("FAULTS_RESULTS")
    if not path:
        return
    with _LOCK, open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(asdict(record), default=str) + "\n")


def outcome_of(item: pytest.Item) -> tuple[str, str]:
    """(passed|failed|skipped, reason) from the reports stashed by `pytest_runtest_makereport`."""
    for when in ("setup", "call"):
        rep = getattr(item, f"_rep_{when}", None)
        if rep is None:
            continue
        if rep.skipped:
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            return "skipped", reason.removeprefix("Skipped: ")
        if rep.failed:
            return "failed", str(rep.longreprtext).strip().splitlines()[-1][:300] if rep.longreprtext else ""
    return "passed", ""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:  # noqa: ARG001
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"_rep_{rep.when}", rep)
