"""`commerce dev`'s embedded workers: relay, scheduler and jobs inside one process."""

from __future__ import annotations

import asyncio
import datetime as dt

from engine import outbox
from tests.integration.payments.shop import order_state, place_order
from tests.integration.workers.conftest import eventually
from workers.embedded import start_embedded_workers


async def test_embedded_workers_relay_outbox_rows_and_sweep(tenant, db, database, worker_settings, assembly):
    buyer = await tenant.user()
    by_job = await place_order(db, tenant.id, buyer.id, expires_in=dt.timedelta(seconds=-1))
    async with database.transaction() as conn:
        await outbox.enqueue(conn, outbox.EXPIRE_ORDER, {"order_id": by_job.id}, tenant_id=tenant.id)
    by_sweep = await place_order(db, tenant.id, buyer.id, expires_in=dt.timedelta(seconds=-1))   # no outbox row
    handle = await asyncio.to_thread(start_embedded_workers, worker_settings.with_(scheduler_tick_seconds=0.5))
    try:
        for order in (by_job, by_sweep):
            async def cancelled(o=order):
                return (await order_state(db, o.id))["status"] == "CANCELLED"

            await eventually(cancelled, timeout=20)
    finally:
        await asyncio.to_thread(handle.stop)
