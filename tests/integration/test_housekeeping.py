"""Housekeeping: expired idempotency keys and day-old relayed outbox rows are purged in
batches, nothing still needed goes; the scheduler fires each periodic job once per tick across
worker processes, and a real worker runs them."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets

import redis.asyncio as aioredis

from engine import housekeeping
from engine.stock import hold_grace
from tests.integration.conftest_orders import make_product, stock_of
from tests.integration.workers.conftest import assembly, database, eventually, worker, worker_settings  # noqa: F401
from workers import jobs
from workers.scheduler import Scheduler


async def _keys(db, tenant_id, expired: int, fresh: int) -> None:
    await db.executemany(
        "INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, expires_at)"
        " VALUES ($1, 'user:x', $2, '\\x00', now() + make_interval(secs => $3))",
        [(tenant_id, f"k{i}-{secrets.token_hex(4)}", -60 if i < expired else 3600) for i in range(expired + fresh)])


async def _outbox(db, tenant_id, sent_ago: dt.timedelta | None, n: int) -> None:
    await db.executemany(
        "INSERT INTO outbox (tenant_id, job, payload, created_at, not_before, sent_at)"
        " VALUES ($1, 'housekeeping_test', '{}', now() - interval '3 days', now() - interval '3 days', $2)",
        [(tenant_id, None if sent_ago is None else dt.datetime.now(dt.timezone.utc) - sent_ago)] * n)


async def _count(db, sql: str, tenant_id) -> int:
    return await db.fetchval(sql, tenant_id)


async def test_expired_idempotency_keys_are_purged_in_batches_and_live_ones_kept(database, db, tenant):
    await _keys(db, tenant.id, expired=7, fresh=3)
    assert await housekeeping.purge_idempotency_keys(database, batch_size=2) >= 7
    assert await _count(db, "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1 AND expires_at <= now()",
                        tenant.id) == 0
    assert await _count(db, "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1", tenant.id) == 3


async def test_only_outbox_rows_relayed_more_than_a_day_ago_are_purged(database, db, tenant):
    await _outbox(db, tenant.id, dt.timedelta(days=2), 5)
    await _outbox(db, tenant.id, dt.timedelta(hours=1), 2)
    await _outbox(db, tenant.id, None, 2)                     # unsent, however old: still owed
    assert await housekeeping.purge_sent_outbox(database, batch_size=2) >= 5
    left = await db.fetch("SELECT sent_at IS NULL AS unsent FROM outbox WHERE tenant_id = $1", tenant.id)
    assert sorted(r["unsent"] for r in left) == [False, False, True, True]
    # A capped run leaves the rest for the next tick.
    await _outbox(db, tenant.id, dt.timedelta(days=2), 5)
    assert await housekeeping.purge_sent_outbox(database, batch_size=2, max_batches=1) == 2
    assert await _count(db, "SELECT count(*) FROM outbox WHERE tenant_id = $1", tenant.id) == 4 + 3


class _Recorder:
    def __init__(self, name: str, fired: list[str]) -> None:
        self.name, self._fired = name, fired

    def send(self) -> None:
        self._fired.append(self.name)


async def test_each_periodic_job_fires_once_per_tick_across_two_worker_processes(redis_url):
    names = (jobs.SWEEP_OVERDUE_ORDERS, jobs.RECLAIM_STOCK_HOLDS, jobs.PURGE_IDEMPOTENCY_KEYS, jobs.PURGE_SENT_OUTBOX)
    fired: list[str] = []
    actors = {n: _Recorder(n, fired) for n in names}
    prefix = f"hk{secrets.token_hex(4)}"
    now = [2_000_000.0]
    clients = [aioredis.from_url(redis_url) for _ in range(2)]
    try:
        schedulers = [Scheduler(c, prefix, jobs.periodic_tasks(actors, 15.0), clock=lambda: now[0]) for c in clients]
        for _ in range(3):
            await asyncio.gather(*(s.tick() for s in schedulers))
            now[0] += 15.0
        assert sorted(fired) == sorted(names * 3)
    finally:
        for c in clients:
            keys = [k async for k in c.scan_iter(f"{prefix}*")]
            if keys:
                await c.delete(*keys)
            await c.aclose()


async def test_a_worker_runs_the_housekeeping_jobs(assembly, worker, database, db, tenant):  # noqa: F811
    pid = await make_product(db, tenant.id, stock=6)
    sid = await db.fetchval("SELECT id FROM stock WHERE product_id = $1", pid)
    # An orphaned hold past the grace period (its checkout's process died), by hand.
    await db.execute("UPDATE stock SET reserved = 2 WHERE id = $1", sid)
    await db.execute("INSERT INTO stock_holds (id, tenant_id, stock_id, quantity, created_at)"
                     " VALUES (gen_random_uuid(), $1, $2, 2, now() - $3::interval)",
                     tenant.id, sid, hold_grace(assembly.settings) + dt.timedelta(seconds=5))
    await _keys(db, tenant.id, expired=2, fresh=1)
    await _outbox(db, tenant.id, dt.timedelta(days=3), 3)
    for name in (jobs.RECLAIM_STOCK_HOLDS, jobs.PURGE_IDEMPOTENCY_KEYS, jobs.PURGE_SENT_OUTBOX):
        await asyncio.to_thread(assembly.actors[name].send)

    async def done():
        return ((await stock_of(db, pid))["reserved"] == 0
                and await _count(db, "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1", tenant.id) == 1
                and await _count(db, "SELECT count(*) FROM outbox WHERE tenant_id = $1", tenant.id) == 0)

    await eventually(done)
    assert await stock_of(db, pid) == {"on_hand": 6, "available": 6, "reserved": 0, "sold": 0}
