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
from workers.middleware.tracebacks import tracebacks_key
from workers.queues import ALL_QUEUES as QUEUES

# Per-delivery options that must not follow a letter back onto its queue.
_DELIVERY_OPTIONS = ("redis_message_id", "retries", "traceback", "eta", "commerce_traceback")


def _client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_address, socket_timeout=5)


def _queues(queue: str | None) -> tuple[str, ...]:
    return (queue,) if queue else QUEUES


def _letter(q: str, m: Message, dead_at_ms: float | None, tb: str) -> dict[str, Any]:
    tb = tb.strip()
    return {"queue": q, "actor": m.actor_name, "args": list(m.args), "kwargs": m.kwargs,
            "message_id": m.message_id, "dead_at_ms": int(dead_at_ms) if dead_at_ms is not None else None,
            "retries": m.options.get("retries", 0),
            "error": tb.splitlines()[-1] if tb else None, "traceback": tb or None}


def list_dead_letters(settings: Settings, queue: str | None = None, limit: int = 100,
                      message_id: str | None = None) -> list[dict[str, Any]]:
    """The newest dead letters (or the one with `message_id`): queue, actor, arguments, message
    id, when it died, its last error line and the whole traceback."""
    ns, out = namespace_of(settings), []
    with _client(settings) as r:
        for q in _queues(queue):
            for rid, score in r.zrevrange(f"{ns}:{q}.XQ", 0, -1 if message_id else limit - 1, withscores=True):
                data = r.hget(f"{ns}:{q}.XQ.msgs", rid)
                if data is None:
                    continue
                m = Message.decode(data)
                if message_id and message_id not in (m.message_id, rid.decode()):
                    continue
                tb = r.hget(tracebacks_key(ns, q), m.message_id)
                out.append(_letter(q, m, score, tb.decode() if tb else (m.options.get("traceback") or "")))
    out.sort(key=lambda letter: letter["dead_at_ms"] or 0, reverse=True)
    return out[:limit]


def retry_dead_letters(settings: Settings, queue: str | None = None, message_id: str | None = None) -> int:
    """Re-enqueue every dead letter (of `queue`, or all queues), or only the one with
    `message_id`; returns how many."""
    ns, broker, count = namespace_of(settings), build_broker(settings), 0
    with _client(settings) as r:
        for q in _queues(queue):
            xq, xmsgs = f"{ns}:{q}.XQ", f"{ns}:{q}.XQ.msgs"
            for rid in r.zrange(xq, 0, -1):
                data = r.hget(xmsgs, rid)
                if message_id and (data is None or message_id not in (Message.decode(data).message_id, rid.decode())):
                    continue
                mid = rid
                if data is not None:
                    m = Message.decode(data)
                    mid = m.message_id
                    options = {k: v for k, v in m.options.items() if k not in _DELIVERY_OPTIONS}
                    broker.enqueue(Message(queue_name=q_name(m.queue_name), actor_name=m.actor_name, args=m.args,
                                           kwargs=m.kwargs, options=options, message_id=m.message_id))
                    count += 1
                # Enqueued first, removed after: a crash in between re-drives it again (harmless).
                r.pipeline().zrem(xq, rid).hdel(xmsgs, rid).hdel(tracebacks_key(ns, q), mid).execute()
    return count


def purge_dead_letters(settings: Settings, queue: str | None = None, message_id: str | None = None) -> int:
    """Drop every dead letter (of `queue`, or all queues), or only the one with `message_id`;
    returns how many."""
    ns, count = namespace_of(settings), 0
    with _client(settings) as r:
        for q in _queues(queue):
            xq, xmsgs = f"{ns}:{q}.XQ", f"{ns}:{q}.XQ.msgs"
            if not message_id:
                count += r.zcard(xq)
                r.delete(xq, xmsgs, tracebacks_key(ns, q))
                continue
            for rid in r.zrange(xq, 0, -1):
                data = r.hget(xmsgs, rid)
                mid = Message.decode(data).message_id if data is not None else rid.decode()
                if message_id in (mid, rid.decode()):
                    count += r.pipeline().zrem(xq, rid).hdel(xmsgs, rid).hdel(tracebacks_key(ns, q), mid).execute()[0]
    return count
