"""Fixtures of the fault suite: the shared stack (tests/faults/stack.py), a healed stack per
scenario, and the scenario's RELIABILITY.md record."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.faults.results import ScenarioRecord, outcome_of, write
from tests.faults.results import pytest_runtest_makereport  # noqa: F401 - the hook pytest must see
from tests.faults.stack import Stack, running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("faults")) as s:
        yield s


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Iterator[ScenarioRecord]:
    """The test's row of RELIABILITY.md; written with the test's outcome when it ends."""
    record = ScenarioRecord(name=request.node.name)
    yield record
    record.outcome, record.reason = outcome_of(request.node)
    write(record)


@pytest.fixture
def healthy(stack: Stack) -> Stack:
    stack.heal()
    return stack
