"""The product actor: owns the reservations of one stock row in this process (engine.stock).

It drains whatever reservations are waiting (up to `actor_max_batch`) and applies them in ONE
statement (`reserve_stock`, migration 0010). A caller that gives up (ask timeout) never leaks
units: each request carries a state that the actor and the caller settle without an await in
between, so exactly one of them knows the units were reserved - the caller keeps them, or the
actor gives them back at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from uuid import UUID, uuid4

from engine.actors.actor import Actor
from engine.db import Database
from engine.domain.errors import InsufficientStock
from engine.stock_holds import _RESERVE, release_holds

PENDING, APPLIED, ABANDONED = "pending", "applied", "abandoned"


@dataclass(slots=True, eq=False)
class _Change:
    """One message to a product actor: reserve `quantity` (> 0) units of its stock row."""

    stock_id: UUID
    quantity: int
    hold_id: UUID | None = None   # set by the actor when it grants the reservation
    state: str = PENDING


def _name_holds(granted: list[_Change]) -> None:
    # One random id per batch, numbered in its low bits: uuid4() per reservation costs more
    # CPU (a urandom call each) than the rest of the actor's Python work for it.
    base = uuid4().int & ~_HOLD_NUMBER_MASK
    for n, change in enumerate(granted):
        change.hold_id = UUID(int=base | n)


_HOLD_NUMBER_MASK = (1 << 20) - 1   # room for batches far above any sane actor_max_batch


def _shortfall(available: int, stock_id: UUID) -> InsufficientStock:
    return InsufficientStock(f"Only {available} available.", extra={"available": available, "stockId": str(stock_id)})


class ProductActor(Actor):
    """Owns the reservations of one stock row in this process. When a batch leaves the row
    with nothing available it tells `ran_out` (the service's sold-out memory), unless a
    notice of units coming back arrived while the batch was in flight (`epoch` moved)."""

    __slots__ = ("_db", "_ran_out", "_epoch")

    def __init__(self, db: Database, ran_out: Callable[[UUID, int], None] | None = None,
                 epoch: Callable[[], int] | None = None) -> None:
        self._db = db
        self._ran_out = ran_out
        self._epoch = epoch

    async def handle_batch(self, messages: list[_Change]) -> list[object]:
        pending = [i for i, m in enumerate(messages) if m.state == PENDING]  # the others' callers left
        admitted: list[int] = []
        left_over = 0
        if pending:
            _name_holds([messages[i] for i in pending])
            epoch = self._epoch() if self._epoch is not None else 0
            async with self._db.connection() as conn:
                done = await conn.fetchrow(_RESERVE, self.key, [messages[i].hold_id for i in pending],
                                           [messages[i].quantity for i in pending])
            left_over = done["left_over"]
            if left_over == 0 and self._ran_out is not None:
                self._ran_out(self.key, epoch)
            admitted = [i for i, granted in zip(pending, done["granted"]) if granted]
        granted = set(admitted)
        answers: list[object] = [None if i in granted else _shortfall(left_over, self.key)
                                 for i in range(len(messages))]
        orphaned = []
        for i in admitted:
            # No await between the caller's check and this one: exactly one side owns the units.
            if messages[i].state == ABANDONED:
                orphaned.append(messages[i].hold_id)
            else:
                messages[i].state = APPLIED
        if orphaned:
            await release_holds(self._db, orphaned)
        return answers
