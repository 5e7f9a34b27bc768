"""Hostile-input suite: every test here is also a row of RELIABILITY.md (area = its module's
first docstring line). HOSTILE_LONG=1 makes the schema fuzzing run long."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.faults.results import ScenarioRecord, outcome_of, write
from tests.faults.results import pytest_runtest_makereport  # noqa: F401 - the hook pytest must see


@pytest.fixture(autouse=True)
def _hostile_record(request: pytest.FixtureRequest) -> Iterator[None]:
    doc = (request.module.__doc__ or "").strip().splitlines()
    record = ScenarioRecord(name=request.node.name, kind="hostile", injected=doc[0] if doc else "")
    yield
    record.outcome, record.reason = outcome_of(request.node)
    write(record)
