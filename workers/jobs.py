"""The Dramatiq actors: each a thin, idempotent shell around one engine operation.

Rules every job here keeps (a message can be delivered more than once):
- messages carry ids (strings), never objects;
- the engine operation checks the current state and records its effect in one transaction,
  so a second run finds the effect and changes nothing;
- retries, backoff and time limit are explicit per job; errors that can never succeed are
  listed in `throws` and go straight to the dead-letter queue instead of being retried.

The fulfilment jobs (execute_refund, accrue_commission, reverse_commission, sync_tracking) live
in workers/jobs_fulfilment.py under the same rules; workers/assembly.py declares both modules'
jobs on one broker and hands the relay and the scheduler all of them.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import dramatiq
import structlog

from engine import expiry, housekeeping, outbox, stock
from engine.clock import utc_now
from engine.domain.errors import CannotRefund, OrderNotFound
from engine.payments import refund_execution
from workers.resources import WorkerResources
from workers.declare import MINUTE, SECOND, job_on, periodic
from workers.scheduler import PeriodicTask

log = structlog.get_logger("workers.jobs")

# Periodic jobs (see `periodic_tasks`): the scheduler sends each once per tick across processes.
SWEEP_OVERDUE_ORDERS = "sweep_overdue_orders"     # expire every overdue unpaid order
RECLAIM_STOCK_HOLDS = "reclaim_stock_holds"       # units of checkouts whose process died
PURGE_IDEMPOTENCY_KEYS = "purge_idempotency_keys"  # expired Idempotency-Key records
PURGE_SENT_OUTBOX = "purge_sent_outbox"           # outbox rows done more than a day ago
PAYMENTS_QUEUE, EXPIRY_QUEUE, HOUSEKEEPING_QUEUE = "payments", "expiry", "housekeeping"
QUEUES = (PAYMENTS_QUEUE, EXPIRY_QUEUE, HOUSEKEEPING_QUEUE)

# Malformed ids and orders that do not exist will not get better with retries.
_NEVER_SUCCEEDS = (ValueError, TypeError, OrderNotFound)


def declare_actors(broker: dramatiq.Broker, res: WorkerResources) -> dict[str, dramatiq.Actor]:
    """Declare every job on `broker`, bound to `res`; returns them by job name."""

    actor = job_on(broker)

    @actor(outbox.EXPIRE_ORDER, EXPIRY_QUEUE, max_retries=10, min_backoff=SECOND, max_backoff=MINUTE,
           time_limit=30 * SECOND, throws=_NEVER_SUCCEEDS)
    async def expire_order(order_id: str) -> None:
        """Cancel an order still unpaid at its deadline (no-op if paid, cancelled or not yet due)."""
        await res.ready()
        await expiry.expire_by_id(res.db, UUID(order_id), now=utc_now())

    @actor(SWEEP_OVERDUE_ORDERS, EXPIRY_QUEUE, max_retries=3, min_backoff=5 * SECOND, max_backoff=MINUTE,
           time_limit=10 * MINUTE, throws=())
    async def sweep_overdue_orders() -> None:
        """Expire every overdue unpaid order (catches whatever the delayed jobs missed)."""
        await res.ready()
        expired = await expiry.sweep_overdue(res.db, now=utc_now())
        if expired:
            log.info("expired overdue orders", count=expired)

    # Housekeeping: a missed or failed run is caught up by the next tick, so no retries pile up.
    @actor(RECLAIM_STOCK_HOLDS, HOUSEKEEPING_QUEUE, max_retries=0, time_limit=5 * MINUTE, throws=())
    async def reclaim_stock_holds() -> None:
        """Give back the units held by checkouts that died between reserving and ordering."""
        await res.ready()
        reclaimed = await stock.reclaim_orphaned_holds(res.db, older_than=stock.hold_grace(res.settings))
        if reclaimed:
            log.warning("reclaimed orphaned stock holds", count=reclaimed)

    @actor(PURGE_IDEMPOTENCY_KEYS, HOUSEKEEPING_QUEUE, max_retries=0, time_limit=5 * MINUTE, throws=())
    async def purge_idempotency_keys() -> None:
        await res.ready()
        purged = await housekeeping.purge_idempotency_keys(res.db)
        if purged:
            log.info("purged expired idempotency keys", count=purged)

    @actor(PURGE_SENT_OUTBOX, HOUSEKEEPING_QUEUE, max_retries=0, time_limit=5 * MINUTE, throws=())
    async def purge_sent_outbox() -> None:
        await res.ready()
        purged = await housekeeping.purge_sent_outbox(res.db)
        if purged:
            log.info("purged relayed outbox rows", count=purged)

    @actor(outbox.REFUND_CANCELLED_ORDER, PAYMENTS_QUEUE, max_retries=20, min_backoff=5 * SECOND,
           max_backoff=10 * MINUTE, time_limit=2 * MINUTE, throws=_NEVER_SUCCEEDS + (CannotRefund,))
    async def refund_cancelled_order(order_id: str) -> None:
        """Refund a cancelled order's payment in full, once (provider idempotency key = the order's)."""
        await res.ready()
        outcome = await refund_execution.refund_cancelled_order(res.db, res.provider, UUID(order_id), now=utc_now())
        log.info("refund of cancelled order", order_id=order_id, outcome=outcome)

    @actor(outbox.ORDER_PAID, PAYMENTS_QUEUE, max_retries=5, min_backoff=SECOND, max_backoff=MINUTE,
           time_limit=30 * SECOND, throws=_NEVER_SUCCEEDS)
    async def order_paid(order_id: str) -> None:
        """Hook after payment (notifications, fulfilment hand-off): nothing to do yet, and
        running it twice does nothing twice. A malformed id dead-letters."""
        UUID(order_id)
        await res.ready()

    return {a.actor_name: a for a in (expire_order, sweep_overdue_orders, reclaim_stock_holds, purge_idempotency_keys,
                                      purge_sent_outbox, refund_cancelled_order, order_paid)}


def periodic_tasks(actors: dict[str, dramatiq.Actor], tick_seconds: float) -> list[PeriodicTask]:
    """The scheduler entries of this module, each every `tick_seconds`: the expiry sweep, the
    stock hold reconciler and the purges."""
    names = {"expiry_sweep": SWEEP_OVERDUE_ORDERS, "stock_hold_reclaim": RECLAIM_STOCK_HOLDS,
             "idempotency_purge": PURGE_IDEMPOTENCY_KEYS, "outbox_purge": PURGE_SENT_OUTBOX}

    return [periodic(task, tick_seconds, actors[job]) for task, job in names.items()]


def sender(actors: dict[str, dramatiq.Actor]):
    """The relay's send function: job name + payload (+ delay) -> a message on that actor."""

    def send(job: str, payload: dict[str, Any], delay_ms: int | None, outbox_id: int | None = None) -> None:
        # outbox_id rides along as a message option: the worker marks that row done when the
        # job finishes (workers/middleware/outbox_done.py).
        options = {} if outbox_id is None else {"outbox_id": outbox_id}
        actors[job].send_with_options(kwargs=payload, delay=delay_ms, **options)

    return send
