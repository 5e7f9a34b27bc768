"""A worker that boots while PostgreSQL is unreachable starts working once it is back (found by
the nemesis: such a worker used to live on with no pool, no relay and no scheduler)."""

from __future__ import annotations

import asyncio
import datetime as dt
from urllib.parse import urlsplit, urlunsplit

import dramatiq

from engine import outbox
from tests.faults.proxy import TcpProxy
from tests.integration.payments.shop import order_state, place_order
from tests.integration.workers.conftest import FAST, eventually
from workers.assembly import assemble


def _through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)
    netloc = (host[0] + "@" if len(host) == 2 else "") + f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def test_worker_booted_without_database_relays_once_it_is_back(tenant, db, database, worker_settings):
    upstream = urlsplit(worker_settings.database_url)
    proxy = TcpProxy(upstream.port or 5432, target_host=upstream.hostname or "127.0.0.1").start()
    proxy.refuse()
    settings = worker_settings.with_(database_url=_through(proxy, worker_settings.database_url), db_command_timeout=2)
    asm = assemble(settings, tuning=FAST, background=True)
    w = dramatiq.Worker(asm.broker, worker_threads=2, worker_timeout=100)
    try:
        await asyncio.to_thread(w.start)          # boots with the database unreachable
        assert not asm.resources.is_open
        buyer = await tenant.user()
        order = await place_order(db, tenant.id, buyer.id, expires_in=dt.timedelta(seconds=-1))
        async with database.transaction() as conn:
            row = await outbox.enqueue(conn, outbox.EXPIRE_ORDER, {"order_id": order.id}, tenant_id=tenant.id)
        proxy.heal()

        async def done():
            return await db.fetchval("SELECT done_at IS NOT NULL FROM outbox WHERE id = $1", row)

        await eventually(done, timeout=30)
        assert (await order_state(db, order.id))["status"] == "CANCELLED"
    finally:
        await asyncio.to_thread(w.stop, 10_000)
        proxy.stop()
