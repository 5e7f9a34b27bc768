"""Faults under steady checkout load: after each, nothing is lost and the API healed itself.

Each test is one row of RELIABILITY.md (`python -m ops.reliability` regenerates it). The
recipe (warm-up, inject, hold, restore, measure recovery, check promises 1-3) is
tests/faults/scenario.py; these tests only say what breaks and how it is undone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import asyncpg
import pytest

from tests.faults.options import BUYERS, EXPIRY_SECONDS, FAULT_SECONDS, checkout_landed, workers_landed
from tests.faults.promises import jobs_promise, order_count
from tests.faults.results import ScenarioRecord
from tests.faults.scenario import run_under_load
from tests.faults.stack import Stack
from tests.faults.toolkit import wait_until

pytestmark = pytest.mark.slow


def test_api_process_killed_mid_checkout(healthy: Stack, scenario: ScenarioRecord) -> None:
    """SIGKILL one API process while checkouts are in flight: clients retry the same
    Idempotency-Key against the other process and get exactly one order per key."""
    victim = healthy.apis[0]
    run_under_load(healthy, scenario, injected="SIGKILL of one of two API processes mid-checkout; "
                   "clients retry their Idempotency-Key on the other; the victim is restarted after the hold",
                   inject=victim.kill, restore=victim.start, recovery_from="fault")


def test_api_process_frozen(healthy: Stack, scenario: ScenarioRecord) -> None:
    """SIGSTOP one API process (a stalled VM), SIGCONT after the hold: requests it held finish,
    clients that gave up retried elsewhere, no key produced two orders."""
    victim = healthy.apis[0]
    run_under_load(healthy, scenario, injected=f"SIGSTOP of one API process for {FAULT_SECONDS:.0f}s, then SIGCONT",
                   inject=victim.freeze, restore=victim.thaw, allow_slow=True)


def test_postgres_crash_and_restart(healthy: Stack, scenario: ScenarioRecord) -> None:
    """Immediate PostgreSQL shutdown (SIGQUIT: no checkpoint, crash recovery on start), down for
    the hold, restarted on the same port: 503 + Retry-After meanwhile, then back by itself."""
    run_under_load(healthy, scenario, injected=f"PostgreSQL crashed (SIGQUIT, immediate), down {FAULT_SECONDS:.0f}s, "
                   "restarted on the same port", inject=healthy.pg.crash, restore=healthy.pg.restart,
                   expect_unready=True)


def test_postgres_network_hang(healthy: Stack, scenario: ScenarioRecord) -> None:
    """PostgreSQL stops answering without closing anything (a black-holed network): statements
    time out into 503s, never a request hanging past its timeout."""
    run_under_load(healthy, scenario, injected=f"PostgreSQL traffic black-holed for {FAULT_SECONDS:.0f}s (no RST, no answer)",
                   inject=healthy.pg_proxy.blackhole, restore=healthy.pg_proxy.heal, expect_unready=True)


def test_redis_unreachable_then_back(healthy: Stack, scenario: ScenarioRecord) -> None:
    """Every Redis connection reset and refused for the hold: writes answer 503 + Retry-After
    (tokens cannot be checked against the deny list), reads go on, and all heals by itself."""
    run_under_load(healthy, scenario, injected=f"Redis unreachable (connections reset and refused) for {FAULT_SECONDS:.0f}s",
                   inject=healthy.redis_proxy.refuse, restore=healthy.redis_proxy.heal, expect_unready=True)


def test_database_latency(healthy: Stack, scenario: ScenarioRecord) -> None:
    """200 ms added to every client->PostgreSQL chunk for the hold: slower, never wrong."""
    run_under_load(healthy, scenario, injected=f"+200 ms latency on every PostgreSQL round trip for {FAULT_SECONDS:.0f}s",
                   inject=lambda: healthy.pg_proxy.set_latency(0.2), restore=lambda: healthy.pg_proxy.set_latency(0))


def test_scarce_stock_never_oversold(healthy: Stack, scenario: ScenarioRecord) -> None:
    """No fault, but contention: more buyers than units, on two processes (two sets of product
    actors): 2xx checkouts never exceed the stock."""
    if not checkout_landed():
        scenario.load, scenario.injected = f"{BUYERS} buyers, 10 units", "none (contention only)"
        pytest.skip("needs POST /api/v1/cart/checkout (web/routes/orders.py, engine/checkout.py) - not landed")
    report = run_under_load(healthy, scenario, injected="none: 10 units for more buyers than units, 2 API processes",
                            inject=lambda: None, restore=lambda: None, hold=FAULT_SECONDS, stock=10)

    async def orders_by_state() -> tuple[int, int]:
        conn = await asyncpg.connect(healthy.dsn)
        try:
            row = await conn.fetchrow("SELECT count(*) FILTER (WHERE status <> 'CANCELLED') AS live,"
                                      " count(*) FILTER (WHERE status = 'CANCELLED') AS cancelled FROM orders")
            return row["live"], row["cancelled"]
        finally:
            await conn.close()

    live, cancelled = asyncio.run(orders_by_state())
    # Unpaid orders expire during the run (PAYMENT_EXPIRY_SECONDS is short here) and give their
    # units back, which later buyers may take: only the orders still holding units count.
    assert live <= 10
    assert len(report.successes("checkout")) <= 10 + cancelled


def test_worker_killed_between_effect_and_ack(healthy: Stack, scenario: ScenarioRecord) -> None:
    """Orders expire during the run (PAYMENT_EXPIRY_SECONDS=3). The moment the worker's effect is
    visible in the database (an order turned CANCELLED) the worker is SIGKILLed, before it can ack;
    it is restarted. Every unpaid order still ends CANCELLED exactly once, stock comes back once."""
    scenario.load = f"{BUYERS} buyers checking out, orders unpaid, expiry {EXPIRY_SECONDS}s"
    scenario.injected = "SIGKILL of the worker right after an expiry job's effect commits (before its ack), 3 times"
    if not checkout_landed():
        pytest.skip("needs POST /api/v1/cart/checkout (web/routes/orders.py, engine/checkout.py) - not landed")
    if not workers_landed() or healthy.worker is None:
        pytest.skip("needs the worker (workers/main.py, `commerce worker`) - not landed")
    worker = healthy.worker
    kills: list[float] = []

    def kill_after_effects() -> None:
        async def watch() -> None:
            conn = await asyncpg.connect(healthy.dsn)
            try:
                seen = await conn.fetchval("SELECT count(*) FROM orders WHERE status = 'CANCELLED'")
                deadline = time.monotonic() + FAULT_SECONDS + EXPIRY_SECONDS + 10
                while len(kills) < 3 and time.monotonic() < deadline:
                    now_seen = await conn.fetchval("SELECT count(*) FROM orders WHERE status = 'CANCELLED'")
                    if now_seen > seen:
                        worker.kill()   # the effect committed; the ack is still to come
                        kills.append(time.monotonic())
                        worker.start(settle=0.3)
                        seen = await conn.fetchval("SELECT count(*) FROM orders WHERE status = 'CANCELLED'")
                    await asyncio.sleep(0.005)
            finally:
                await conn.close()

        asyncio.run(watch())

    report = run_under_load(healthy, scenario, injected=scenario.injected, inject=kill_after_effects,
                            restore=lambda: None, hold=0.5)
    scenario.details["worker_kills"] = len(kills)
    assert kills, "no expiry effect was observed to kill the worker after"

    async def settled() -> list[str]:
        conn = await asyncpg.connect(healthy.dsn)
        try:
            tenant = await conn.fetchval("SELECT tenant_id FROM orders ORDER BY created_at DESC LIMIT 1")
            return await jobs_promise(conn, tenant, outbox_drained=True,
                                      expiry_bound=dt.timedelta(seconds=EXPIRY_SECONDS + 20))
        finally:
            await conn.close()

    wait_until(lambda: not asyncio.run(settled()), EXPIRY_SECONDS + 25, 0.5, what="every expired order settled")
    assert report.successes("checkout")
    assert asyncio.run(_orders(healthy)) > 0


async def _orders(stack: Stack) -> int:
    conn = await asyncpg.connect(stack.dsn)
    try:
        tenant = await conn.fetchval("SELECT tenant_id FROM orders ORDER BY created_at DESC LIMIT 1")
        return await order_count(conn, tenant)
    finally:
        await conn.close()
