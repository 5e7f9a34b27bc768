"""The fulfilment jobs: executing approved refunds, partner commissions, and the tracking sync.

The same rules as workers/jobs.py: messages carry ids, each job is an idempotent shell around
one engine operation (which checks state and records its effect in one transaction), retries,
backoff and time limits are explicit, and errors that can never succeed dead-letter at once.

workers/assembly.py declares these next to workers/jobs.py's on one broker and adds the tracking
sync to the scheduler's ticks.
"""

from __future__ import annotations

from uuid import UUID

import dramatiq
import structlog

from engine import outbox, partners, refunds, tracking
from engine.clock import utc_now
from engine.carrier import carrier_for
from engine.domain.errors import OrderNotFound, RefundNotFound
from workers.resources import WorkerResources
from workers.declare import MINUTE, SECOND, job_on, periodic
from workers.scheduler import PeriodicTask

log = structlog.get_logger("workers.jobs_fulfilment")

SYNC_TRACKING = "sync_tracking"          # periodic: sync every shipped order with its carrier
FULFILMENT_QUEUE = "fulfilment"
PAYMENTS_QUEUE = "payments"              # refunds share the payments queue (workers/jobs.py)
QUEUES = (FULFILMENT_QUEUE,)

_NEVER_SUCCEEDS = (ValueError, TypeError, OrderNotFound, RefundNotFound)


def declare_actors(broker: dramatiq.Broker, res: WorkerResources) -> dict[str, dramatiq.Actor]:
    """Declare the fulfilment jobs on `broker`, bound to `res`; returns them by job name."""

    actor = job_on(broker)

    @actor(outbox.EXECUTE_REFUND, PAYMENTS_QUEUE, max_retries=20, min_backoff=5 * SECOND,
           max_backoff=10 * MINUTE, time_limit=2 * MINUTE, throws=_NEVER_SUCCEEDS)
    async def execute_refund(refund_id: str) -> None:
        """Refund an approved request through the provider, once (key: the request's id)."""
        await res.ready()
        outcome = await refunds.execute_refund(res.db, res.provider, UUID(refund_id),
                                               restock=res.settings.restock_on_refund, now=utc_now())
        log.info("refund request executed", refund_id=refund_id, outcome=outcome)

    @actor(outbox.ACCRUE_COMMISSION, FULFILMENT_QUEUE, max_retries=10, min_backoff=SECOND, max_backoff=5 * MINUTE,
           time_limit=30 * SECOND, throws=_NEVER_SUCCEEDS)
    async def accrue_commission(order_id: str) -> None:
        """Credit a delivered partner order's commission and points (ledger + balance), once."""
        await res.ready()
        outcome = await partners.accrue_commission(res.db, UUID(order_id))
        log.info("commission accrual", order_id=order_id, outcome=outcome)

    @actor(outbox.REVERSE_COMMISSION, FULFILMENT_QUEUE, max_retries=10, min_backoff=SECOND,
           max_backoff=5 * MINUTE, time_limit=30 * SECOND, throws=_NEVER_SUCCEEDS)
    async def reverse_commission(order_id: str) -> None:
        """Take back what a partner order's refunded units earned (recomputed: safe to repeat)."""
        await res.ready()
        outcome = await partners.reverse_commission(res.db, UUID(order_id))
        log.info("commission reversal", order_id=order_id, outcome=outcome)

    @actor(SYNC_TRACKING, FULFILMENT_QUEUE, max_retries=3, min_backoff=5 * SECOND, max_backoff=MINUTE,
           time_limit=10 * MINUTE, throws=())
    async def sync_tracking() -> None:
        """Sync every shipped order's tracking; delivered parcels make their orders DELIVERED."""
        await res.ready()
        report = await tracking.sync_shipped(res.db, carrier_for, now=utc_now())
        if report.delivered or report.failed:
            log.info("tracking synced", synced=report.synced, delivered=report.delivered,
                     failed=[str(i) for i in report.failed])

    return {a.actor_name: a for a in (execute_refund, accrue_commission, reverse_commission, sync_tracking)}


def periodic_tasks(actors: dict[str, dramatiq.Actor], tick_seconds: float) -> list[PeriodicTask]:
    """The scheduler entries of this module: the tracking sync, every `tick_seconds`."""
    return [periodic("tracking_sync", tick_seconds, actors[SYNC_TRACKING])]
