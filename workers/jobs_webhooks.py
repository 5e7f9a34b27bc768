"""The webhook jobs: deliver one subscription's due events, and the sweep that wakes stalled ones.

Same rules as workers/jobs.py. `deliver_webhooks(subscription_id)` is written to the outbox by
the capture triggers (migration 0015), by "send again", "ping", and by a failed attempt (delayed
to its next attempt). It runs on its own queue, so a backlog of slow receivers never delays
payments or expiry; one subscription is delivered by one job at a time (engine lease), and a
receiver holds a worker thread at most WEBHOOK_TIMEOUT_SECONDS per attempt.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

import dramatiq
import structlog

from engine.webhooks import deliveries
from engine.webhooks.subscriptions import DELIVER_WEBHOOKS
from workers.declare import MINUTE, SECOND, job_on, periodic
from workers.resources import WorkerResources
from workers.scheduler import PeriodicTask
from workers.webhook_http import WebhookClient

log = structlog.get_logger("workers.jobs_webhooks")

SWEEP_WEBHOOKS = "sweep_webhooks"   # periodic: wake subscriptions whose kick was lost
PURGE_WEBHOOK_LOG = "purge_webhook_log"   # periodic: finished deliveries past WEBHOOK_LOG_DAYS
WEBHOOKS_QUEUE = "webhooks"
QUEUES = (WEBHOOKS_QUEUE,)


async def deliver(res: WorkerResources, subscription_id: UUID) -> str:
    """One delivery run for a subscription (the job's body; tests call it to drive the same path)."""
    s = res.settings
    async with WebhookClient(timeout=s.webhook_timeout_seconds, cap=s.webhook_response_cap_bytes,
                             dev_mode=s.dev_mode) as post:
        return await deliveries.deliver_subscription(
            res.db, subscription_id, post, retry=deliveries.retry_policy(s), lease=deliveries.lease_seconds(s),
            batch=s.webhook_batch)


def declare_actors(broker: dramatiq.Broker, res: WorkerResources) -> dict[str, dramatiq.Actor]:
    """Declare the webhook jobs on `broker`, bound to `res`; returns them by job name."""

    actor = job_on(broker)

    # Failures of a receiver are recorded and retried by the engine (backoff for a day), not by
    # Dramatiq; Dramatiq's retries cover our own database being briefly unavailable.
    @actor(DELIVER_WEBHOOKS, WEBHOOKS_QUEUE, max_retries=5, min_backoff=SECOND, max_backoff=MINUTE,
           time_limit=10 * MINUTE, throws=(ValueError, TypeError))
    async def deliver_webhooks(subscription_id: str) -> None:
        """Deliver a subscription's due events in order (no-op if another job holds it)."""
        await res.ready()
        outcome = await deliver(res, UUID(subscription_id))
        log.info("webhook deliveries", subscription_id=subscription_id, outcome=outcome)

    @actor(SWEEP_WEBHOOKS, WEBHOOKS_QUEUE, max_retries=0, time_limit=MINUTE, throws=())
    async def sweep_webhooks() -> None:
        """Send a delivery job for every active subscription with due deliveries and no live lease."""
        await res.ready()
        due = await deliveries.due_subscriptions(res.db)
        for sub_id in due:
            await asyncio.to_thread(deliver_webhooks.send, str(sub_id))
        if due:
            log.info("webhook sweep woke subscriptions", count=len(due))

    @actor(PURGE_WEBHOOK_LOG, WEBHOOKS_QUEUE, max_retries=0, time_limit=5 * MINUTE, throws=())
    async def purge_webhook_log() -> None:
        await res.ready()
        purged = await deliveries.purge_log(res.db, older_than_days=res.settings.webhook_log_days)
        if purged:
            log.info("purged webhook delivery log", count=purged)

    return {a.actor_name: a for a in (deliver_webhooks, sweep_webhooks, purge_webhook_log)}


def periodic_tasks(actors: dict[str, dramatiq.Actor], tick_seconds: float) -> list[PeriodicTask]:
    """The scheduler entries of this module, every `tick_seconds`: the webhook sweep and log purge."""
    return [periodic("webhook_sweep", tick_seconds, actors[SWEEP_WEBHOOKS]),
            periodic("webhook_log_purge", tick_seconds, actors[PURGE_WEBHOOK_LOG])]
