"""What `commerce jobs` (and /metrics) show an operator, and the dead-letter re-drive.

    await queue_stats(settings) -> {"queue.payments.ready": 0, ..., "outbox.lag_count": 0, ...}
    retry_dead_letters(settings, queue=None) -> int
"""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from engine.settings import Settings
from workers.broker import namespace_of
from workers.deadletters import list_dead_letters, purge_dead_letters, retry_dead_letters
from workers.queues import ALL_QUEUES as QUEUES

__all__ = ["queue_stats", "retry_dead_letters", "list_dead_letters", "purge_dead_letters"]


async def queue_stats(settings: Settings) -> dict[str, float | int]:
    """Per queue: ready (waiting), delayed, dead (dead letters); outbox: rows due but unsent
    (lag_count), age in seconds of the oldest of them (lag_seconds), and rows scheduled later."""
    ns, stats = namespace_of(settings), {}
    r = aioredis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0", socket_timeout=5)
    try:
        for q in QUEUES:
            stats[f"queue.{q}.ready"] = await r.llen(f"{ns}:{q}")
            stats[f"queue.{q}.delayed"] = await r.hlen(f"{ns}:{q}.DQ.msgs")
            stats[f"queue.{q}.dead"] = await r.zcard(f"{ns}:{q}.XQ")
    finally:
        await r.aclose()
    conn = await asyncpg.connect(settings.database_url, timeout=5)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE not_before <= now()) AS due,"
            " coalesce(extract(epoch FROM now() - min(not_before) FILTER (WHERE not_before <= now())), 0) AS age,"
            " count(*) FILTER (WHERE not_before > now()) AS later"
            " FROM outbox WHERE sent_at IS NULL")
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
