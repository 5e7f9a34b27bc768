"""Housekeeping: expired idempotency keys and day-old relayed outbox rows are purged in
batches, nothing still needed goes; the scheduler fires each periodic job once per tick across
worker processes, and a real worker runs them."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets

import dramatiq
import pytest
import redis
import redis.asyncio as aioredis

from engine import housekeeping
from engine.stock import hold_grace
from tests.integration.conftest_orders import make_product, stock_of
from workers import jobs
from workers.assembly import assemble
from workers.scheduler import Scheduler


@pytest.fixture
def assembly(base_settings):
    settings = base_settings.with_(redis_prefix=f"hk{secrets.token_hex(4)}")
    asm = assemble(settings, background=False)
    yield asm
    r = redis.Redis.from_url(settings.redis_url)
    keys = list(r.scan_iter(f"{settings.redis_prefix}:*"))
    if keys:
        r.delete(*keys)
    r.close()


@pytest.fixture
async def worker(assembly):
    w = dramatiq.Worker(assembly.broker, worker_threads=2, worker_timeout=100)
    w.start()
    yield w
    await asyncio.to_thread(w.stop, 10_000)


async def eventually(check, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"not done within {timeout}s"
        await asyncio.sleep(0.05)


async def _keys(db, tenant_id, expired: int, fresh: int) -> None:
    await db.executemany(
        "INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, expires_at)"
        " VALUES ($1, 'user:x', $2, '\\x00', now() + make_interval(secs => $3))",
        [(tenant_id, f"k{i}-{secrets.token_hex(4)}", -60 if i < expired else 3600) for i in range(expired + fresh)])


async def _outbox(db, tenant_id, sent_ago: dt.timedelta | None, n: int, *, done: bool = True) -> None:
    at = None if sent_ago is None else dt.datetime.now(dt.timezone.utc) - sent_ago
    await db.executemany(
        "INSERT INTO outbox (tenant_id, job, payload, created_at, not_before, sent_at, done_at)"
        " VALUES ($1, 'housekeeping_test', '{}', now() - interval '3 days', now() - interval '3 days', $2, $3)",
        [(tenant_id, at, at if done else None)] * n)


async def _count(db, sql: str, tenant_id) -> int:
    return await db.fetchval(sql, tenant_id)


async def test_expired_idempotency_keys_are_purged_in_batches_and_live_ones_kept(database, db, tenant):
    await _keys(db, tenant.id, expired=7, fresh=3)
    assert await housekeeping.purge_idempotency_keys(database, batch_size=2) >= 7
    assert await _count(db, "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1 AND expires_at <= now()",
                        tenant.id) == 0
    assert await _count(db, "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1", tenant.id) == 3


async def test_only_outbox_rows_done_more_than_a_day_ago_are_purged(database, db, tenant):
    await _outbox(db, tenant.id, dt.timedelta(days=2), 5)
    await _outbox(db, tenant.id, dt.timedelta(hours=1), 2)
    await _outbox(db, tenant.id, None, 2)                     # unsent, however old: still owed
    await _outbox(db, tenant.id, dt.timedelta(days=2), 1, done=False)   # sent, never finished: still owed
    assert await housekeeping.purge_sent_outbox(database, batch_size=2) >= 5
    left = await db.fetch("SELECT sent_at IS NULL AS unsent FROM outbox WHERE tenant_id = $1 AND done_at IS NULL",
                          tenant.id)
    assert sorted(r["unsent"] for r in left) == [False, True, True]
    assert await _count(db, "SELECT count(*) FROM outbox WHERE tenant_id = $1", tenant.id) == 2 + 3
    # A capped run leaves the rest for the next tick.
    await _outbox(db, tenant.id, dt.timedelta(days=2), 5)
    assert await housekeeping.purge_sent_outbox(database, batch_size=2, max_batches=1) == 2
    assert await _count(db, "SELECT count(*) FROM outbox WHERE tenant_id = $1", tenant.id) == 5 + 3


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


async def test_a_worker_runs_the_housekeeping_jobs(assembly, worker, database, db, tenant):
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


async def _effects(db, order_id):
    o = await db.fetchrow("SELECT status, payment_status, cancel_reason, cancelled_at IS NOT NULL AS stamped,"
                          " expires_at, stock_state, updated_at > created_at AS touched FROM orders WHERE id = $1",
                          order_id)
    history = await db.fetch("SELECT status, note, changed_by FROM order_status_history WHERE order_id = $1"
                             " ORDER BY id", order_id)
    outbox_rows = await db.fetchval("SELECT count(*) FROM outbox WHERE payload->>'order_id' = $1", str(order_id))
    return dict(o), [tuple(h) for h in history], outbox_rows


async def test_the_batched_expiry_sweep_has_exactly_the_effects_of_change_status(database, db, tenant):
    from engine import expiry
    from tests.integration.payments.shop import place_order

    buyer = await tenant.user()
    overdue = dt.timedelta(seconds=-1)
    one = await place_order(db, tenant.id, buyer.id, quantity=3, on_hand=20, expires_in=overdue)
    sid = one.stock_id
    swept = [await place_order(db, tenant.id, buyer.id, quantity=q, stock_id=sid, expires_in=overdue) for q in (4, 2)]
    other = await place_order(db, tenant.id, buyer.id, quantity=5, on_hand=5, expires_in=overdue)
    # An order whose units were already given back (stock_state says so): cancelled, not released twice.
    odd = await place_order(db, tenant.id, buyer.id, quantity=1, stock_id=sid, expires_in=overdue)
    await db.execute("UPDATE stock SET reserved = reserved - 1 WHERE id = $1", sid)
    await db.execute("UPDATE orders SET stock_state = 'RELEASED' WHERE id = $1", odd.id)
    fresh = await place_order(db, tenant.id, buyer.id, quantity=1, stock_id=sid)

    now = dt.datetime.now(dt.timezone.utc)
    assert await expiry.expire_by_id(database, one.id, now=now) is True          # change_status, one by one
    assert await expiry.sweep_overdue(database, now=now, batch_size=2) >= 4       # the set-based batches
    reference = await _effects(db, one.id)
    assert reference[0]["status"] == "CANCELLED" and reference[0]["stock_state"] == "RELEASED"
    assert reference[1][-1] == ("CANCELLED", expiry.NOTE, expiry.ACTOR) and reference[2] == 0
    for o in swept + [other, odd]:
        assert await _effects(db, o.id) == reference, o
    assert await db.fetchrow("SELECT reserved, available FROM stock WHERE id = $1", sid) == (1, 19)  # fresh's 1
    assert await db.fetchrow("SELECT reserved, available FROM stock WHERE id = $1", other.stock_id) == (0, 5)
    assert (await _effects(db, fresh.id))[0]["status"] == "PENDING_PAYMENT"
    assert await expiry.sweep_overdue(database, now=now) == 0
    assert await db.fetchrow("SELECT reserved, available FROM stock WHERE id = $1", sid) == (1, 19)
