"""What every job module shares: time units, declaring a job on a broker, and periodic ticks.

Jobs are declared per broker (not with a module-level @dramatiq.actor) so tests and embedded
workers can build as many brokers as they like; each job module's `declare_actors(broker, res)`
uses `job_on(broker)` for that.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import dramatiq

from workers.scheduler import PeriodicTask

SECOND, MINUTE = 1000, 60_000  # Dramatiq counts in milliseconds


def job_on(broker: dramatiq.Broker) -> Callable[..., Callable[[Callable[..., Any]], dramatiq.Actor]]:
    """A decorator factory: `@job(name, queue, **options)` declares the function as the job
    `name` on `broker`'s queue `queue` (options: max_retries, backoff, time_limit, throws)."""

    def job(name: str, queue: str, **options: Any) -> Callable[[Callable[..., Any]], dramatiq.Actor]:
        def deco(fn: Callable[..., Any]) -> dramatiq.Actor:
            return dramatiq.actor(fn, actor_name=name, queue_name=queue, broker=broker, **options)
        return deco

    return job


def periodic(task: str, tick_seconds: float, job: dramatiq.Actor) -> PeriodicTask:
    """A scheduler entry that sends `job` (no arguments) every `tick_seconds`."""
    return PeriodicTask(task, tick_seconds, lambda: asyncio.to_thread(job.send))
