"""Dead-lettered jobs (Redis broker): list, retry (re-enqueue with a fresh retry budget), purge.

A job lands here when its retries are exhausted or it raised one of its `throws` errors. They
are kept for the broker's dead_message_ttl (a week). Retrying a letter twice at once can
enqueue it twice; jobs are idempotent, so that is harmless.
"""

from __future__ import annotations

from typing import Any

import redis
from dramatiq.common import q_name
from dramatiq.message import Message

from engine.settings import Settings
from workers.broker import build_broker, namespace_of
from workers.queues import ALL_QUEUES as QUEUES

# Per-delivery options that must not follow a letter back onto its queue.
_DELIVERY_OPTIONS = ("redis_message_id", "retries", "traceback", "eta")


def _client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_address, socket_timeout=5)


def _queues(queue: str | None) -> tuple[str, ...]:
    return (queue,) if queue else QUEUES


def list_dead_letters(settings: Settings, queue: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest dead letters: queue, actor, arguments, message id, last error."""
    ns, out = namespace_of(settings), []
    with _client(settings) as r:
        for q in _queues(queue):
            for rid in r.zrevrange(f"{ns}:{q}.XQ", 0, limit - 1):
                data = r.hget(f"{ns}:{q}.XQ.msgs", rid)
                if data is None:
                    continue
                m = Message.decode(data)
                out.append({"queue": q, "actor": m.actor_name, "args": list(m.args), "kwargs": m.kwargs,
                            "message_id": m.message_id,
                            "error": (m.options.get("traceback") or "").strip().splitlines()[-1:] or None})
    return out[:limit]


def retry_dead_letters(settings: Settings, queue: str | None = None) -> int:
    """Re-enqueue every dead letter (of `queue`, or all queues); returns how many."""
    ns, broker, count = namespace_of(settings), build_broker(settings), 0
    with _client(settings) as r:
        for q in _queues(queue):
            xq, xmsgs = f"{ns}:{q}.XQ", f"{ns}:{q}.XQ.msgs"
            for rid in r.zrange(xq, 0, -1):
                data = r.hget(xmsgs, rid)
                if data is not None:
                    m = Message.decode(data)
                    options = {k: v for k, v in m.options.items() if k not in _DELIVERY_OPTIONS}
                    broker.enqueue(Message(queue_name=q_name(m.queue_name), actor_name=m.actor_name, args=m.args,
                                           kwargs=m.kwargs, options=options, message_id=m.message_id))
                    count += 1
                # Enqueued first, removed after: a crash in between re-drives it again (harmless).
                r.pipeline().zrem(xq, rid).hdel(xmsgs, rid).execute()
    return count


def purge_dead_letters(settings: Settings, queue: str | None = None) -> int:
    """Drop every dead letter (of `queue`, or all queues); returns how many."""
    ns, count = namespace_of(settings), 0
    with _client(settings) as r:
        for q in _queues(queue):
            count += r.zcard(f"{ns}:{q}.XQ")
            r.delete(f"{ns}:{q}.XQ", f"{ns}:{q}.XQ.msgs")
    return count
