"""Transactional outbox: work that must happen after a commit is recorded in that same commit.

Call `enqueue` with the connection of the transaction that caused the work; the relay
(workers/) sends unsent rows to the broker and marks them sent. A crash between commit and
send loses nothing: the row is still unsent and the relay picks it up again. Payloads carry
ids only, never objects, and every job is idempotent, so a resend is harmless.

Sent is not done: a broker can lose a message it accepted (Redis killed before its AOF fsync,
a failover to a replica that lagged). So a row is done only when its job finished (`mark_done`,
called by the worker after the job's transaction committed, or when the job failed for good),
and a row sent but not done by its `resend_at` is presumed lost and sent again. `resend_at` is
the due time plus OUTBOX_RESEND_SECONDS at each send, and is pushed forward while the job runs
(`mark_running`) or waits for a retry, so a slow or retrying job is not sent twice needlessly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

import asyncpg

# Job names the workers implement (workers/jobs.py maps each to a Dramatiq actor).
EXPIRE_ORDER = "expire_order"                      # {"order_id"}; not_before = the order's expires_at
REFUND_CANCELLED_ORDER = "refund_cancelled_order"  # {"order_id"}: a paid order was cancelled
EXECUTE_REFUND = "execute_refund"                  # {"refund_id"}: an approved refund request
ACCRUE_COMMISSION = "accrue_commission"            # {"order_id"}: a delivered partner order
REVERSE_COMMISSION = "reverse_commission"          # {"order_id"}: a refunded partner order
ORDER_PAID = "order_paid"                          # {"order_id"}: notifications, fulfilment hand-off


async def enqueue(conn: asyncpg.Connection, job: str, payload: dict[str, Any], *,
                  tenant_id: UUID | None = None, not_before: dt.datetime | None = None) -> int:
    """Record `job(payload)` in the caller's transaction; returns the outbox row id."""
    if not conn.is_in_transaction():
        raise RuntimeError("outbox.enqueue must run inside the transaction that caused the work")
    return await conn.fetchval(
        "INSERT INTO outbox (tenant_id, job, payload, not_before) VALUES ($1, $2, $3, coalesce($4, now()))"
        " RETURNING id", tenant_id, job, {k: str(v) if isinstance(v, UUID) else v for k, v in payload.items()},
        not_before)


async def mark_done(conn: asyncpg.Connection, row_id: int) -> bool:
    """The job of row `row_id` finished (its effect is recorded, or it failed for good)."""
    return await conn.fetchval(
        "UPDATE outbox SET done_at = now() WHERE id = $1 AND done_at IS NULL RETURNING true", row_id) or False


async def mark_running(conn: asyncpg.Connection, row_id: int, *, for_at_least: dt.timedelta) -> None:
    """The job of row `row_id` started (or waits for a retry): not lost before `for_at_least` from now."""
    await conn.execute("UPDATE outbox SET resend_at = greatest(resend_at, now() + $2::interval)"
                       " WHERE id = $1 AND done_at IS NULL", row_id, for_at_least)
