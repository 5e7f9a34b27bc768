"""What `commerce jobs` (and /metrics) show an operator, and the dead-letter re-drive.

    await queue_stats(settings) -> {"queue.payments.ready": 0, ..., "outbox.lag_count": 0, ...}
    retry_dead_letters(settings, queue=None) -> int
"""

from __future__ import annotations

from typing import Any

import asyncpg
import redis.asyncio as aioredis

from engine.db import Database
from engine.settings import Settings
from workers.broker import namespace_of
from workers.deadletters import list_dead_letters, purge_dead_letters, retry_dead_letters
from workers.queues import ALL_QUEUES as QUEUES

__all__ = ["queue_stats", "overview", "retry_dead_letters", "list_dead_letters", "purge_dead_letters"]


_OUTBOX_LAG = ("SELECT count(*) FILTER (WHERE not_before <= now()) AS due,"
               " coalesce(extract(epoch FROM now() - min(not_before) FILTER (WHERE not_before <= now())), 0) AS age,"
               " count(*) FILTER (WHERE not_before > now()) AS later"
               " FROM outbox WHERE sent_at IS NULL")


async def queue_stats(settings: Settings, *, redis: aioredis.Redis | None = None,
                      db: Database | None = None) -> dict[str, float | int]:
    """Per queue: ready (waiting), delayed, dead (dead letters); outbox: rows due but unsent
    (lag_count), age in seconds of the oldest of them (lag_seconds), and rows scheduled later.

    With `redis` / `db` (the API's pools, for /metrics) no connection is opened: a scrape loop
    must not cost a PostgreSQL backend and a Redis client per scrape. Without them (the CLI),
    one of each is opened and closed."""
    ns, stats = namespace_of(settings), {}
    r = redis or aioredis.from_url(settings.redis_address, socket_timeout=5)
    try:
        async with r.pipeline(transaction=False) as pipe:
            for q in QUEUES:
                pipe.llen(f"{ns}:{q}")
                pipe.hlen(f"{ns}:{q}.DQ.msgs")
                pipe.zcard(f"{ns}:{q}.XQ")
            counts = await pipe.execute()
        for i, q in enumerate(QUEUES):
            stats[f"queue.{q}.ready"], stats[f"queue.{q}.delayed"], stats[f"queue.{q}.dead"] = counts[3 * i:3 * i + 3]
    finally:
        if redis is None:
            await r.aclose()
    if db is not None:
        async with db.connection() as conn:
            row = await conn.fetchrow(_OUTBOX_LAG, timeout=5)
    else:
        conn = await asyncpg.connect(settings.database_url, timeout=5)
        try:
            row = await conn.fetchrow(_OUTBOX_LAG)
        finally:
            await conn.close()
    stats["outbox.lag_count"] = row["due"]
    stats["outbox.lag_seconds"] = round(float(row["age"]), 3)
    stats["outbox.scheduled"] = row["later"]
    stats["dead_letters.total"] = sum(v for k, v in stats.items() if k.endswith(".dead"))
    # Sent but not done (engine/outbox.py): in flight, and overdue = presumed lost by the broker.
    conn = await asyncpg.connect(settings.database_url, timeout=5)
    try:
        flight = await conn.fetchrow(
            "SELECT count(*) AS in_flight, count(*) FILTER (WHERE resend_at < now()) AS overdue"
            " FROM outbox WHERE done_at IS NULL AND sent_at IS NOT NULL")
    finally:
        await conn.close()
    stats["outbox.in_flight"] = flight["in_flight"]
    stats["outbox.overdue"] = flight["overdue"]
    return stats


async def overview(settings: Settings, *, dead_limit: int = 50) -> dict[str, Any]:
    """Everything the staff operations page shows (and `commerce jobs` is built on): queue
    figures, jobs in flight per queue, dead letters with their errors, the scheduler's latest
    tick per task, and unpaid orders waiting for their expiry."""
    import asyncio

    ns, in_flight, ticks = namespace_of(settings), {q: 0 for q in QUEUES}, {}
    r = aioredis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0", socket_timeout=5)
    try:
        # Fetched but not yet acknowledged, per worker: <ns>:__acks__.<worker>.<queue> sets.
        async for key in r.scan_iter(match=f"{ns}:__acks__.*", count=500):
            queue = key.decode().rsplit(".", 1)[-1]
            if queue in in_flight:
                in_flight[queue] += await r.scard(key)
        async for key in r.scan_iter(match=f"{settings.redis_prefix}:scheduler:*", count=500):
            _, _, task, tick = key.decode().rsplit(":", 3)
            if int(tick) > ticks.get(task, {}).get("tick", -1):
                owner = await r.get(key)
                ticks[task] = {"tick": int(tick), "owner": owner.decode() if owner else None}
    finally:
        await r.aclose()
    conn = await asyncpg.connect(settings.database_url, timeout=5)
    try:
        expiry = dict(await conn.fetchrow(
            "SELECT count(*) AS pending, count(*) FILTER (WHERE expires_at <= now()) AS overdue,"
            " min(expires_at) AS next_expiry FROM orders WHERE status = 'PENDING_PAYMENT'"))
    finally:
        await conn.close()
    return {"queues": await queue_stats(settings), "in_flight": in_flight,
            "dead_letters": await asyncio.to_thread(list_dead_letters, settings, None, dead_limit),
            "scheduler": ticks, "orders_awaiting_expiry": expiry}
