"""Housekeeping: deleting rows whose job is done, in short batches the scheduler runs each tick.

Each function deletes at most `batch_size` rows per statement (a short transaction each, so a
large backlog never holds locks or bloats one transaction) and stops after `max_batches`,
leaving the rest for the next tick; each returns how many rows it deleted. Running two at once
is harmless: both delete what is there, neither deletes anything still needed.
"""

from __future__ import annotations

import datetime as dt

from engine import idempotency
from engine.db import Database

# Done outbox rows are only kept for an operator looking into a recent incident.
SENT_OUTBOX_KEPT = dt.timedelta(days=1)


async def purge_sent_outbox(db: Database, *, older_than: dt.timedelta = SENT_OUTBOX_KEPT,
                            batch_size: int = 5000, max_batches: int = 20) -> int:
    """Delete outbox rows done more than `older_than` ago; rows not done (unsent, or sent and
    perhaps lost by the broker) are never touched."""
    total = 0
    for _ in range(max_batches):
        async with db.connection() as conn:
            gone = await conn.fetchval(
                "WITH gone AS (DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
                "  WHERE done_at < now() - $1::interval LIMIT $2) RETURNING 1) SELECT count(*) FROM gone",
                older_than, batch_size)
        total += gone
        if gone < batch_size:
            break
    return total


async def purge_idempotency_keys(db: Database, *, batch_size: int = 10_000, max_batches: int = 20) -> int:
    """Delete expired idempotency keys (engine.idempotency.purge_expired), batch by batch."""
    total = 0
    for _ in range(max_batches):
        gone = await idempotency.purge_expired(db, limit=batch_size)
        total += gone
        if gone < batch_size:
            break
    return total
