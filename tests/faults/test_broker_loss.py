"""A broker that forgets what it accepted: nothing is lost, nothing happens twice.

Refunds of cancelled-but-paid orders (no sweep stands behind them: only the outbox) are relayed
to Redis as messages due a few seconds later; the moment the last of them is relayed, Redis is
SIGKILLed together with the worker (which would otherwise still hold copies in memory), and
Redis comes back either empty (a failover to a replica that never saw the writes) or from its
append-only file (fsynced every second: the last second may be gone, the rest comes back and is
redelivered). Checkout load runs throughout. Each refund must take effect exactly once (one
provider refund, one refund row) within the stated bound: due time + OUTBOX_RESEND_SECONDS +
the relay's poll + the job (RESEND_SECONDS + 10 s here).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import time
import uuid

import asyncpg
import pytest

from engine import outbox
from engine.db import _init_connection  # the engine's jsonb codecs, as its own pool has them
from engine.payments import settlement
from tests.faults.options import FAULT_SECONDS, RESEND_SECONDS, checkout_landed, workers_landed
from tests.faults.results import ScenarioRecord
from tests.faults.scenario import run_under_load
from tests.faults.stack import Stack
from tests.faults.toolkit import wait_until
from tests.integration.payments.shop import place_order

pytestmark = pytest.mark.slow

REFUNDS = 20
DUE_IN = dt.timedelta(seconds=2)   # relayed as delayed messages: in Redis (and the worker) at the kill
BOUND = RESEND_SECONDS + 10        # seconds after its due time by which every lost job took effect
_SELECT = "SELECT o.id, o.payment_status, x.id AS row_id, x.done_at, x.sends, x.not_before," \
          " (SELECT count(*) FROM refunds r WHERE r.order_id = o.id) AS refunds," \
          " (SELECT count(*) FROM sandbox_refunds s WHERE s.payment_ref = 'sbx_' || replace(o.id::text, '-', ''))" \
          "   AS provider_refunds" \
          " FROM orders o JOIN outbox x ON x.job = $2 AND x.payload->>'order_id' = o.id::text WHERE o.tenant_id = $1"


async def _paid_cancelled_orders(dsn: str, n: int) -> uuid.UUID:
    """A tenant of its own with `n` cancelled orders whose payment arrived late: one refund row each."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=_init_connection)
    try:
        slug = f"loss-{uuid.uuid4().hex[:10]}"
        tenant = await pool.fetchval("INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id", slug)
        user = await pool.fetchval(
            "INSERT INTO users (tenant_id, email, password_hash, name, role) VALUES ($1, $2, 'x', 'Late payer',"
            " 'customer') RETURNING id", tenant, f"late-{slug}@faults.test")
        for _ in range(n):
            order = await place_order(pool, tenant, user, expires_in=dt.timedelta(seconds=-1))
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("UPDATE orders SET status = 'CANCELLED' WHERE id = $1", order.id)
                outcome = await settlement.payment_succeeded(
                    conn, order.id, amount=order.total, currency="RUB", provider="sandbox",
                    payment_ref=f"sbx_{order.id.hex}", event_id=None, source="faults",
                    now=dt.datetime.now(dt.timezone.utc))
                assert outcome == settlement.LATE_PAYMENT_REFUNDED
                await conn.execute("UPDATE outbox SET not_before = now() + $2::interval WHERE job = $3"
                                   " AND payload->>'order_id' = $1", str(order.id), DUE_IN, outbox.REFUND_CANCELLED_ORDER)
        return tenant
    finally:
        await pool.close()


async def _rows(dsn: str, tenant: uuid.UUID) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(_SELECT, tenant, outbox.REFUND_CANCELLED_ORDER)
    finally:
        await conn.close()


def _lose_everything(stack: Stack, *, keep_aof: bool, state: dict) -> None:
    """Make the refunds, wait until the relay sent the last of them, then kill -9 Redis and the worker."""
    state["tenant"] = asyncio.run(_paid_cancelled_orders(stack.dsn, REFUNDS))
    wait_until(lambda: all(r["sends"] >= 1 for r in asyncio.run(_rows(stack.dsn, state["tenant"]))), 15, 0.02,
               what="every refund relayed")
    assert stack.worker is not None
    stack.worker.kill()
    stack.redis.crash()
    if not keep_aof:
        for leftover in ("appendonlydir", "dump.rdb"):
            path = stack.redis.data_dir / leftover
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    state["lost_at"] = time.monotonic()
    state["done_before_kill"] = sum(1 for r in asyncio.run(_rows(stack.dsn, state["tenant"])) if r["done_at"])


def _bring_back(stack: Stack, state: dict) -> None:
    stack.redis.start()
    assert stack.worker is not None
    stack.worker.start(settle=0.3)
    state["restored_at"] = time.monotonic()


def _broker_loss(stack: Stack, scenario: ScenarioRecord, *, keep_aof: bool) -> None:
    if not checkout_landed() or not workers_landed() or stack.worker is None:
        pytest.skip("needs checkout and the worker")
    state: dict = {}
    how = "from its append-only file (appendfsync everysec)" if keep_aof else "empty (its AOF deleted: a failover)"
    run_under_load(stack, scenario, injected=f"{REFUNDS} refund jobs relayed as delayed messages, then SIGKILL of Redis"
                   f" and the worker at once; Redis back after {FAULT_SECONDS:.0f}s {how}",
                   inject=lambda: _lose_everything(stack, keep_aof=keep_aof, state=state),
                   restore=lambda: _bring_back(stack, state), expect_unready=True)

    def all_done() -> bool:
        rows = asyncio.run(_rows(stack.dsn, state["tenant"]))
        return len(rows) == REFUNDS and all(r["done_at"] is not None and r["provider_refunds"] == 1 for r in rows)

    wait_until(all_done, BOUND + FAULT_SECONDS + 15, 0.1, what="every refund took effect")
    effects_at = time.monotonic()
    # Let whatever the broker still had (AOF) or the dead worker's unacked jobs come back too
    # (WORKER_HEARTBEAT_TIMEOUT 5 s + WORKER_REQUEUE_INTERVAL 1 s on the fault stack).
    time.sleep(7)
    rows = asyncio.run(_rows(stack.dsn, state["tenant"]))
    late = [(r["done_at"] - r["not_before"]).total_seconds() for r in rows]
    scenario.details["refunds"] = {
        "jobs": len(rows), "done_before_the_kill": state["done_before_kill"],
        "sent_twice_or_more": sum(1 for r in rows if r["sends"] > 1),
        "provider_refunds_per_order": sorted({r["provider_refunds"] for r in rows}),
        "refund_rows_per_order": sorted({r["refunds"] for r in rows}),
        "seconds_due_to_done_max": round(max(late), 2), "bound_s": BOUND}
    scenario.recovery_seconds = round(max(scenario.recovery_seconds or 0.0, effects_at - state["restored_at"]), 2)
    scenario.invariants.append("4 every lost job took effect exactly once within due + "
                               f"{BOUND}s (one provider refund, one refund row per order)")
    assert all(r["provider_refunds"] == 1 and r["refunds"] == 1 and r["payment_status"] == "REFUNDED" for r in rows), \
        [dict(r) for r in rows if r["provider_refunds"] != 1 or r["refunds"] != 1]
    # The bound counts from the due time; Redis was down FAULT_SECONDS of it, which the relay
    # could not use (it cannot send while the broker is gone).
    assert max(late) <= BOUND + FAULT_SECONDS, f"a lost job took {max(late):.1f}s past its due time"


def test_redis_killed_after_relay_back_empty(healthy: Stack, scenario: ScenarioRecord) -> None:
    _broker_loss(healthy, scenario, keep_aof=False)


def test_redis_killed_after_relay_back_from_aof(healthy: Stack, scenario: ScenarioRecord) -> None:
    _broker_loss(healthy, scenario, keep_aof=True)
