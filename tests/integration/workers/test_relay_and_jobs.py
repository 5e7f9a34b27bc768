"""Outbox relay and jobs against a real Dramatiq worker on Redis: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import datetime as dt

import dramatiq
import pytest
import redis

from engine import outbox
from engine.payments import settlement
from tests.integration.payments.shop import order_state, place_order
from tests.integration.workers.conftest import eventually
from workers import jobs
from workers.deadletters import list_dead_letters, retry_dead_letters
from workers.operations import queue_stats
from workers.relay import OutboxRelay


def relay_of(assembly, database, send=None) -> OutboxRelay:
    return OutboxRelay(database, send or jobs.sender(assembly.actors), assembly.actors.keys())


async def _outbox_row(database, job, order_id, *, tenant_id, not_before=None) -> int:
    async with database.transaction() as conn:
        return await outbox.enqueue(conn, job, {"order_id": order_id}, tenant_id=tenant_id, not_before=not_before)


async def _sent(db, row_id) -> bool:
    return await db.fetchval("SELECT sent_at IS NOT NULL FROM outbox WHERE id = $1", row_id)


async def test_outbox_row_reaches_its_job_and_takes_effect_once(tenant, db, database, assembly, worker):
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id, expires_in=dt.timedelta(seconds=-1))
    row = await _outbox_row(database, outbox.EXPIRE_ORDER, order.id, tenant_id=tenant.id)
    assert await relay_of(assembly, database).relay_once() >= 1
    assert await _sent(db, row)
    s = await eventually(lambda: _cancelled(db, order.id))
    assert (s["reserved"], s["available"]) == (0, 10)
    assert await db.fetchval("SELECT count(*) FROM order_status_history WHERE order_id = $1 AND status = 'CANCELLED'",
                             order.id) == 1


async def _cancelled(db, order_id):
    s = await order_state(db, order_id)
    return s if s["status"] == "CANCELLED" else None


async def test_delayed_rows_are_sent_with_their_delay(tenant, db, database, assembly, worker):
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id, expires_in=dt.timedelta(seconds=1))
    expires_at = await db.fetchval("SELECT expires_at FROM orders WHERE id = $1", order.id)
    await _outbox_row(database, outbox.EXPIRE_ORDER, order.id, tenant_id=tenant.id, not_before=expires_at)
    await relay_of(assembly, database).relay_once()
    assert (await order_state(db, order.id))["status"] == "PENDING_PAYMENT"   # not before its time
    await eventually(lambda: _cancelled(db, order.id), timeout=10)


async def test_a_relay_killed_between_commit_and_send_loses_nothing(tenant, db, database, assembly, worker):
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id, expires_in=dt.timedelta(seconds=-1))
    row = await _outbox_row(database, outbox.EXPIRE_ORDER, order.id, tenant_id=tenant.id)

    def crash(job, payload, delay_ms, outbox_id):   # the process dies while handing rows to the broker
        raise SystemExit("relay killed")

    with pytest.raises(SystemExit):
        await relay_of(assembly, database, send=crash).relay_once()
    assert not await _sent(db, row)
    assert (await order_state(db, order.id))["status"] == "PENDING_PAYMENT"

    # Sent but killed before marking: the row is sent again and the job runs twice, to one effect.
    real = jobs.sender(assembly.actors)

    def send_then_die(job, payload, delay_ms, outbox_id):
        real(job, payload, delay_ms, outbox_id)
        raise SystemExit("killed after send, before the mark")

    with pytest.raises(SystemExit):
        await relay_of(assembly, database, send=send_then_die).relay_once()
    assert not await _sent(db, row)
    while await relay_of(assembly, database).relay_once():
        pass
    assert await _sent(db, row)
    await eventually(lambda: _cancelled(db, order.id))
    await asyncio.sleep(0.3)
    assert await db.fetchval("SELECT count(*) FROM order_status_history WHERE order_id = $1 AND status = 'CANCELLED'",
                             order.id) == 1


async def test_refund_job_run_twice_refunds_once(tenant, db, database, assembly, worker, worker_settings):
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id, expires_in=dt.timedelta(seconds=-1))
    async with database.transaction() as conn:
        await conn.execute("UPDATE orders SET status = 'CANCELLED' WHERE id = $1", order.id)
        assert await settlement.payment_succeeded(
            conn, order.id, amount=order.total, currency="RUB", provider="sandbox", payment_ref=f"sbx_{order.id.hex}",
            event_id=None, source="test", now=dt.datetime.now(dt.timezone.utc)) == "LATE_PAYMENT_REFUNDED"
    refund = assembly.actors[outbox.REFUND_CANCELLED_ORDER]
    refund.send(str(order.id))
    refund.send(str(order.id))

    async def refunded():
        s = await order_state(db, order.id)
        return s["payment_status"] == "REFUNDED"

    await eventually(refunded)
    await asyncio.sleep(0.5)
    assert await db.fetchval("SELECT count(*) FROM sandbox_refunds WHERE payment_ref = $1", f"sbx_{order.id.hex}") == 1
    assert await db.fetchval("SELECT count(*) FROM refunds WHERE order_id = $1", order.id) == 1
    assert (await order_state(db, order.id))["refunded_amount"] == order.total


async def test_jobs_that_can_never_succeed_are_dead_lettered_and_can_be_retried(db, database, assembly, worker,
                                                                              worker_settings):
    assembly.actors[outbox.EXPIRE_ORDER].send("not-a-uuid")

    async def dead():
        return (await queue_stats(worker_settings))["queue.expiry.dead"] == 1

    await eventually(dead)
    letters = await asyncio.to_thread(list_dead_letters, worker_settings)
    assert letters[0]["actor"] == "expire_order" and letters[0]["kwargs"] == {} and letters[0]["args"] == ["not-a-uuid"]
    assert await asyncio.to_thread(retry_dead_letters, worker_settings) == 1
    await eventually(dead)     # it fails again (it can never succeed) and is back among the dead
    stats = await queue_stats(worker_settings)
    assert stats["dead_letters.total"] == 1 and "outbox.lag_count" in stats and "outbox.lag_seconds" in stats


def _commerce_jobs(settings, *args: str) -> tuple[int, object]:
    import json
    import os
    import subprocess
    import sys

    from workers.main import settings_env

    proc = subprocess.run([sys.executable, "-m", "ops.cli", "jobs", "--json", *args], capture_output=True, text=True,
                          env={**os.environ, **settings_env(settings)}, timeout=60)
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else proc.stderr)


async def test_commerce_jobs_shows_retries_and_purges_one_dead_letter_by_id(db, database, assembly, worker,
                                                                          worker_settings):
    # Two jobs that can never succeed: a malformed order id and an unexpected argument.
    assembly.actors[outbox.EXPIRE_ORDER].send("not-a-uuid")
    assembly.actors[jobs.PURGE_IDEMPOTENCY_KEYS].send("unexpected")

    async def both_dead():
        return (await queue_stats(worker_settings))["dead_letters.total"] == 2

    await eventually(both_dead)
    rc, letters = await asyncio.to_thread(_commerce_jobs, worker_settings, "--list-dead")
    assert rc == 0 and {letter["actor"] for letter in letters} == {"expire_order", jobs.PURGE_IDEMPOTENCY_KEYS}
    by_actor = {letter["actor"]: letter for letter in letters}
    purge_id, expire_id = by_actor[jobs.PURGE_IDEMPOTENCY_KEYS]["message_id"], by_actor["expire_order"]["message_id"]

    rc, shown = await asyncio.to_thread(_commerce_jobs, worker_settings, "--show-dead", purge_id)
    assert rc == 0 and shown["message_id"] == purge_id
    assert shown["traceback"].startswith("Traceback") and "TypeError" in shown["traceback"]
    assert len(shown["traceback"].splitlines()) > 3      # the whole traceback, not its last line

    rc, done = await asyncio.to_thread(_commerce_jobs, worker_settings, "--purge-dead", purge_id)
    assert rc == 0 and done["count"] == 1, done
    stats = await queue_stats(worker_settings)
    assert stats["queue.housekeeping.dead"] == 0 and stats["queue.expiry.dead"] == 1   # only that one went

    rc, done = await asyncio.to_thread(_commerce_jobs, worker_settings, "--retry-dead", expire_id)
    assert rc == 0 and done["count"] == 1
    rc, _ = await asyncio.to_thread(_commerce_jobs, worker_settings, "--retry-dead", "no-such-id")
    assert rc == 1
    await eventually(lambda: _dead_again(worker_settings, expire_id))   # it ran again and failed again


async def _dead_again(settings, message_id):
    letters = await asyncio.to_thread(list_dead_letters, settings, message_id=message_id)
    return bool(letters)
# -- sent is not done: a row is done when its job finished; a lost message is sent again ---------

async def _row(db, row_id):
    return await db.fetchrow("SELECT sent_at, done_at, resend_at, sends FROM outbox WHERE id = $1", row_id)


async def test_a_row_is_done_only_when_its_job_finished(tenant, db, database, assembly, worker):
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id, expires_in=dt.timedelta(seconds=-1))
    row = await _outbox_row(database, outbox.EXPIRE_ORDER, order.id, tenant_id=tenant.id)
    await relay_of(assembly, database).relay_once()

    async def done():
        r = await _row(db, row)
        return r if r["done_at"] is not None else None

    r = await eventually(done)
    assert r["sends"] == 1 and r["done_at"] >= r["sent_at"]
    assert (await order_state(db, order.id))["status"] == "CANCELLED"


async def test_messages_the_broker_lost_are_sent_again_and_take_effect_once(tenant, db, database, assembly,
                                                                           worker_settings):
    # No worker yet: a running one would already hold the delayed message in memory, and Redis
    # forgetting it would then change nothing. Here Redis holds the only copy when it forgets.
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id, expires_in=dt.timedelta(seconds=-1))
    # Due in 1 s: relayed now as a delayed message, which Redis then forgets (restarted empty).
    row = await _outbox_row(database, outbox.EXPIRE_ORDER, order.id, tenant_id=tenant.id,
                            not_before=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1))
    relay = OutboxRelay(database, jobs.sender(assembly.actors), assembly.actors.keys(),
                        resend_after=dt.timedelta(seconds=1))
    assert await relay.relay_once() == 1
    r = redis.Redis.from_url(worker_settings.redis_url)
    try:
        lost = list(r.scan_iter(f"{worker_settings.redis_prefix}:dramatiq*"))
        assert lost, "the delayed message should be in Redis"
        r.delete(*lost)
    finally:
        r.close()
    w = dramatiq.Worker(assembly.broker, worker_threads=2, worker_timeout=100)
    w.start()
    try:
        await asyncio.sleep(1.5)
        assert (await order_state(db, order.id))["status"] == "PENDING_PAYMENT"   # the message is gone
        assert await relay.relay_once() == 0              # not overdue before due time + resend_after
        await asyncio.sleep(1.0)
        assert (await _row(db, row))["done_at"] is None
        assert await relay.relay_once() == 1                                       # overdue: sent again
        await eventually(lambda: _cancelled(db, order.id))
        await _check_lost_row_done(db, relay, row, order)
    finally:
        await asyncio.to_thread(w.stop, 10_000)


async def _check_lost_row_done(db, relay, row, order):
    async def done():
        got = await _row(db, row)
        return got if got["done_at"] is not None else None

    assert (await eventually(done))["sends"] == 2
    assert await relay.relay_once() == 0
    assert await db.fetchval("SELECT count(*) FROM order_status_history WHERE order_id = $1 AND status = 'CANCELLED'",
                             order.id) == 1


async def test_a_row_not_yet_overdue_is_not_sent_twice(tenant, db, database, assembly):
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id)
    row = await _outbox_row(database, outbox.EXPIRE_ORDER, order.id, tenant_id=tenant.id)
    sent: list[int] = []
    relay = OutboxRelay(database, lambda job, payload, delay, outbox_id: sent.append(outbox_id),
                        assembly.actors.keys(), resend_after=dt.timedelta(minutes=2))
    await relay.relay_once()
    await relay.relay_once()
    assert sent.count(row) == 1
    assert (await _row(db, row))["resend_at"] > dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=100)


async def test_a_job_that_can_never_succeed_is_done_once_dead_lettered(tenant, db, database, assembly, worker):
    async with database.transaction() as conn:
        row = await outbox.enqueue(conn, outbox.EXPIRE_ORDER, {"order_id": "not-a-uuid"}, tenant_id=tenant.id)
    await relay_of(assembly, database).relay_once()

    async def done():
        return (await _row(db, row))["done_at"] is not None

    await eventually(done)
