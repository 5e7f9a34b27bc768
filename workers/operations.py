"""What `commerce jobs` (and /metrics) show an operator, and the dead-letter re-drive.

    await queue_stats(settings) -> {"queue.payments.ready": 0, ..., "outbox.lag_count": 0, ...}
    retry_dead_letters(settings, queue=None) -> int
"""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from engine.db import Database
from engine.settings import Settings
from workers.broker import namespace_of
from workers.deadletters import list_dead_letters, purge_dead_letters, retry_dead_letters
from workers.queues import ALL_QUEUES as QUEUES

__all__ = ["queue_stats", "retry_dead_letters", "list_dead_letters", "purge_dead_letters"]


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
    return stats
