"""The Dramatiq broker, built from settings: Redis (default) or RabbitMQ (BROKER=rabbitmq).

Redelivery of a killed worker's job (Redis). Dramatiq keeps each fetched-but-unacked message
in a per-worker "acks" set and moves it back to its queue during "maintenance", once the worker
has sent no heartbeat for `heartbeat_timeout`. Stock Dramatiq runs maintenance on a random
0.1% of commands, which on a quiet queue can strand a job for many minutes; `CommerceRedisBroker`
also runs it whenever `requeue_interval` has passed for a queue, so a SIGKILLed worker's job is
back on its queue within heartbeat_timeout + requeue_interval (defaults: 20 s + 5 s).
A live worker heartbeats at least every second (its delay-queue consumer polls), so the timeout
only needs headroom for pauses; a worker wrongly presumed dead just causes a redelivery, which
idempotent jobs absorb.

Production Redis (operators): run it with `appendonly yes` and `appendfsync everysec` (or
`always` for zero loss) and `maxmemory-policy noeviction`, so neither a restart nor memory
pressure drops queued jobs. Whatever Redis still loses (the last second before a kill -9, what a
failover's replica never received), the outbox sends again: a row is done only when its job
finished (workers/middleware/outbox_done.py), and the expiry sweep re-finds overdue orders too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

import dramatiq
from dramatiq.brokers.redis import MAINTENANCE_COMMAND_BLACKLIST, MAINTENANCE_SCALE, RedisBroker
from dramatiq.common import current_millis
from dramatiq.middleware import Middleware, default_middleware

from engine.settings import Settings


@dataclass(frozen=True, slots=True)
class BrokerTuning:
    """Redelivery and dead-letter timings, in seconds (see the module docstring)."""

    heartbeat_timeout: float = 20.0
    requeue_interval: float = 5.0
    dead_message_ttl: float = 7 * 86400.0  # dead letters kept a week for `commerce jobs --retry-dead`
    maintenance_chance: int = 1000          # per million commands, Dramatiq's own random maintenance

    @classmethod
    def from_settings(cls, settings: Settings) -> "BrokerTuning":
        return cls(heartbeat_timeout=settings.worker_heartbeat_timeout,
                   requeue_interval=settings.worker_requeue_interval,
                   dead_message_ttl=settings.dead_letter_ttl)


class CommerceRedisBroker(RedisBroker):
    """RedisBroker whose maintenance (requeueing dead workers' messages) runs at least every
    `requeue_interval_ms` per queue, not only by chance."""

    def __init__(self, *, requeue_interval_ms: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requeue_interval_ms = requeue_interval_ms
        self._last_maintenance: dict[str, int] = {}

    def _maintenance_due(self, command: str, queue_name: str, now_ms: int) -> int:
        if command in MAINTENANCE_COMMAND_BLACKLIST:
            return 0
        if now_ms - self._last_maintenance.get(queue_name, 0) >= self.requeue_interval_ms:
            self._last_maintenance[queue_name] = now_ms
            return 1
        return int(random.randint(1, MAINTENANCE_SCALE) <= self.maintenance_chance)

    def _dispatch(self, command: str):  # same as RedisBroker._dispatch, with our maintenance rule
        dispatch = self.scripts["dispatch"]
        keys = [self.namespace]

        def do_dispatch(queue_name: str, *args: Any) -> Any:
            timestamp = current_millis()
            return dispatch(args=[command, timestamp, queue_name, self.broker_id, self.heartbeat_timeout,
                                  self.dead_message_ttl, self._maintenance_due(command, queue_name, timestamp),
                                  self._max_unpack_size(), *args], keys=keys)

        return do_dispatch


def namespace_of(settings: Settings) -> str:
    """Redis key prefix of every Dramatiq key of this deployment."""
    return f"{settings.redis_prefix}:dramatiq"


def build_broker(settings: Settings, *, middleware: Sequence[Middleware] = (),
                 tuning: BrokerTuning | None = None) -> dramatiq.Broker:
    """A broker with Dramatiq's default middleware followed by `middleware`, in that order."""
    stack = [m() for m in default_middleware] + list(middleware)
    if settings.broker == "rabbitmq":
        if not settings.rabbitmq_url:
            raise ValueError("BROKER=rabbitmq needs RABBITMQ_URL")
        from dramatiq.brokers.rabbitmq import RabbitmqBroker  # needs the `pika` package

        return RabbitmqBroker(url=settings.rabbitmq_url, middleware=stack)
    if settings.broker != "redis":
        raise ValueError(f"BROKER={settings.broker!r}: use redis or rabbitmq")
    t = tuning or BrokerTuning.from_settings(settings)
    return CommerceRedisBroker(
        url=settings.redis_address, middleware=stack, namespace=namespace_of(settings),
        heartbeat_timeout=int(t.heartbeat_timeout * 1000), dead_message_ttl=int(t.dead_message_ttl * 1000),
        maintenance_chance=t.maintenance_chance, requeue_interval_ms=int(t.requeue_interval * 1000))
