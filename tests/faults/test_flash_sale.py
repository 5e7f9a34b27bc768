"""The fault scenarios again, under a flash sale instead of four steady buyers.

FLASH_BUYERS buyers (64; 96 with FAULTS_LONG=1) at once for half as many units, across the two
API processes, while FLASH_BROWSERS bystanders read the catalogue and put the product in and out
of their carts. The same faults and checks as tests/faults/test_scenarios.py, plus promise 4:
every buyer told 201 has exactly that order, every buyer told an error has none, and a key the
fault left undecided gets its stored answer when asked again.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Callable

import asyncpg
import pytest

from tests.faults.options import EXPIRY_SECONDS, FAULT_SECONDS, LONG, checkout_landed, workers_landed
from tests.faults.results import ScenarioRecord
from tests.faults.scenario import run_under_load
from tests.faults.stack import Stack

pytestmark = pytest.mark.slow


def _kill_worker_after_effects(stack: Stack, kills: list[float]) -> Callable[[], None]:
    """SIGKILL the worker the moment an expiry's effect is visible (before its ack), 3 times."""
    worker = stack.worker
    assert worker is not None

    def inject() -> None:
        async def watch() -> None:
            conn = await asyncpg.connect(stack.dsn)
            try:
                count = "SELECT count(*) FROM orders WHERE status = 'CANCELLED'"
                seen = await conn.fetchval(count)
                deadline = time.monotonic() + FAULT_SECONDS + EXPIRY_SECONDS + 10
                while len(kills) < 3 and time.monotonic() < deadline:
                    if await conn.fetchval(count) > seen:
                        worker.kill()
                        kills.append(time.monotonic())
                        worker.start(settle=0.3)
                        seen = await conn.fetchval(count)
                    await asyncio.sleep(0.005)
            finally:
                await conn.close()

        asyncio.run(watch())

    return inject


# name -> (what is injected, inject, restore, options of run_under_load)
def _faults(s: Stack, kills: list[float]) -> dict[str, tuple[str, Callable[[], None], Callable[[], None], dict]]:
    api = s.apis[0]
    held = f"{FAULT_SECONDS:.0f}s"
    return {
        "api_killed": ("SIGKILL of one of two API processes mid-sale; clients retry their key on the other; "
                       "restarted after the hold", api.kill, api.start, {"recovery_from": "fault"}),
        "api_frozen": (f"SIGSTOP of one API process for {held}, then SIGCONT", api.freeze, api.thaw,
                       {"allow_slow": True}),
        "postgres_crash": (f"PostgreSQL crashed (SIGQUIT), down {held}, restarted", s.pg.crash, s.pg.restart,
                           {"expect_unready": True}),
        "postgres_hang": (f"PostgreSQL traffic black-holed for {held}", s.pg_proxy.blackhole, s.pg_proxy.heal,
                          {"expect_unready": True}),
        "postgres_slow": (f"+200 ms on every PostgreSQL round trip for {held}", lambda: s.pg_proxy.set_latency(0.2),
                          lambda: s.pg_proxy.set_latency(0), {}),
        "redis_unreachable": (f"Redis unreachable (reset and refused) for {held}", s.redis_proxy.refuse,
                              s.redis_proxy.heal, {"expect_unready": True}),
        "worker_killed": ("SIGKILL of the worker right after an expiry's effect commits (before its ack), 3 times",
                          _kill_worker_after_effects(s, kills), lambda: None, {"hold": 0.5}),
    }


FAULTS = ("api_killed", "api_frozen", "postgres_crash", "postgres_hang", "postgres_slow", "redis_unreachable",
          "worker_killed")
# CI budget: the short run covers one fault of each kind (a process, the database, the broker,
# the worker); FAULTS_LONG=1 or FAULTS_FLASH=all runs every one (RELIABILITY.md has them all).
IN_SHORT_RUN = ("api_killed", "postgres_crash", "redis_unreachable", "worker_killed")
ALL = LONG or os.environ.get("FAULTS_FLASH") == "all"


@pytest.mark.parametrize("fault", FAULTS)
def test_flash_sale_under(fault: str, healthy: Stack, scenario: ScenarioRecord) -> None:
    if not ALL and fault not in IN_SHORT_RUN:
        pytest.skip("long run only (FAULTS_LONG=1 or FAULTS_FLASH=all)")
    if not checkout_landed():
        pytest.skip("needs POST /api/v1/cart/checkout")
    if fault == "worker_killed" and (not workers_landed() or healthy.worker is None):
        pytest.skip("needs the worker")
    kills: list[float] = []
    injected, inject, restore, options = _faults(healthy, kills)[fault]
    started = time.monotonic()
    run_under_load(healthy, scenario, injected=injected, inject=inject, restore=restore, flash=True, **options)
    scenario.details["scenario_seconds"] = round(time.monotonic() - started, 1)
    if fault == "worker_killed":
        scenario.details["worker_kills"] = len(kills)
        assert kills, "no expiry effect was observed to kill the worker after"
