"""A worker SIGKILLed after a refund's effect but before acknowledging: the job is delivered
again (within the broker's heartbeat timeout) and the customer is refunded exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import pathlib
import signal
import subprocess

import dramatiq

from engine import outbox
from engine.payments import settlement
from tests.integration.payments.shop import order_state, place_order
from tests.integration.workers.conftest import eventually
from workers.main import spawn

ROOT = pathlib.Path(__file__).resolve().parents[3]


async def test_sigkilled_worker_does_not_refund_twice(tenant, db, database, assembly, worker_settings):
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id, expires_in=dt.timedelta(seconds=-1))
    ref = f"sbx_{order.id.hex}"
    async with database.transaction() as conn:
        await conn.execute("UPDATE orders SET status = 'CANCELLED' WHERE id = $1", order.id)
        await settlement.payment_succeeded(conn, order.id, amount=order.total, currency="RUB", provider="sandbox",
                                           payment_ref=ref, event_id=None, source="test",
                                           now=dt.datetime.now(dt.timezone.utc))

    proc = spawn(worker_settings, 1, 1, target="tests.integration.workers.slow_refund_worker:boot",
                 cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assembly.actors[outbox.REFUND_CANCELLED_ORDER].send(str(order.id))

        async def refunded_at_provider():
            return await db.fetchval("SELECT count(*) FROM sandbox_refunds WHERE payment_ref = $1", ref)

        await eventually(refunded_at_provider, timeout=30)
        # The money moved; the job has not finished or acknowledged. Kill every process of it.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert (await order_state(db, order.id))["payment_status"] == "PAID"     # not recorded yet

    # A healthy worker takes the stranded job over once the dead one's heartbeat expires.
    healthy = dramatiq.Worker(assembly.broker, worker_threads=1, worker_timeout=100)
    healthy.start()
    try:
        async def refunded():
            return (await order_state(db, order.id))["payment_status"] == "REFUNDED"

        await eventually(refunded, timeout=30)
    finally:
        await asyncio.to_thread(healthy.stop, 10_000)
    assert await db.fetchval("SELECT count(*) FROM sandbox_refunds WHERE payment_ref = $1", ref) == 1
    assert await db.fetchval("SELECT count(*) FROM refunds WHERE order_id = $1 AND status = 'SUCCEEDED'", order.id) == 1
    assert (await order_state(db, order.id))["refunded_amount"] == order.total
