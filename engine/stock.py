"""Stock reservations: per-product actors that coalesce reservations into one transaction.

A stock row (one per product without variants, or per variant) counts
on_hand = available + reserved + sold; the table's CHECKs make `available < 0` impossible
whatever the code does, so the actors are a speed device, never the source of truth.

Reserving (`StockService.reserve_all`), in `actor_mode`:
- "batched": each stock row has a product actor (engine.actors.product), keyed by the stock
  row id, that applies whatever reservations are waiting in ONE statement (`reserve_stock`,
  migration 0010). Each caller hears "reserved" or INSUFFICIENT_STOCK with what is left.
- "single": one transaction per reservation (the same statement with a batch of one), no
  actors: the baseline the benchmark compares the actors against.
Either way several API processes stay correct: the row lock and the conditional UPDATE decide.
Releases (a checkout that failed after reserving) are rare and must not be lost to a full
mailbox, so they skip the actors: one short transaction, rows in id order.

A checkout is all or nothing: lines drawing on one stock row are summed and checked together,
and when any row falls short every reservation already made is released.

The service also writes orders (`write_order`: group commit through engine.order_writer in
batched mode) and keeps the sold-out memory (below). Holds - how a dead process's units come
back - are engine.stock_holds; selling, releasing an order's units and returning sold units
in the caller's transaction are engine.stock_movements.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Hashable, Iterable, Mapping, Sequence
from uuid import UUID, uuid4

from engine.actors import Actor, ActorRegistry, ActorStats
from engine.actors.product import ABANDONED, APPLIED, ProductActor, _Change, _shortfall
from engine.db import Database
from engine.domain.errors import ActorUnavailable, DomainError, InsufficientStock
from engine.order_writer import OrderRecord, OrderWriter, Written, write_orders, writer_key
from engine.settings import Settings
from engine.stock_signals import StockSignals
from engine.stock_summary import SummaryRefresher
# Holds (engine.stock_holds) and movements (engine.stock_movements) live in their own modules;
# their names stay importable from here.
from engine.stock_holds import (HOLD_MARGIN_SECONDS, _RESERVE, hold_grace, reclaim_orphaned_holds,  # noqa: F401
                                release_holds)
from engine.stock_movements import commit_sale, release_order, release_orders, return_sold  # noqa: F401


@dataclass(frozen=True, slots=True)
class StockLine:
    """Units one order line wants from one stock row (None: the product is not tracked)."""

    stock_id: UUID | None
    quantity: int
    product_id: UUID
    variant_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    """What `reserve_all` obtained: units per stock row, and the holds that own them. The order
    statement consumes the holds (engine.checkout); a failed checkout releases them."""

    units: Mapping[UUID, int] = field(default_factory=dict)
    holds: tuple[UUID, ...] = ()


class StockService:
    """Reserve and release stock for orders, through the product actors or directly.

    Sold out is known in memory (batched mode): once a product actor's batch leaves its row
    with nothing available, reservations of that row are answered INSUFFICIENT_STOCK here,
    without a database trip, until a `stock_up` notice (engine.stock_signals: a release,
    expiry, cancel, restock or return in any process) says units came back, or at the latest
    `sold_out_recheck_ms` later, when the next reservation asks the database again. So the
    memory may say "no" up to that long after units came back (only if the notice was lost),
    and never says "yes": every sale is still decided by the row lock and the conditional
    UPDATE. `start` begins listening and the product summary refresher (engine.stock_summary)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self.batched = settings.actor_mode == "batched"
        if settings.actor_mode not in ("batched", "single"):
            raise ValueError(f"ACTOR_MODE must be batched or single, not {settings.actor_mode!r}")
        self._recheck = settings.sold_out_recheck_ms / 1000 if self.batched else 0.0
        self._sold_out: dict[UUID, float] = {}   # stock id -> monotonic deadline of the memory
        self._up_epoch = 0                        # counts stock_up notices and resets
        self._signals: StockSignals | None = None
        self._refresher = SummaryRefresher(db, settings.stock_summary_interval_ms / 1000)
        self._registry = ActorRegistry(self._spawn, mailbox_size=settings.actor_mailbox_size,
                                       idle_seconds=settings.actor_idle_seconds,
                                       ask_timeout=settings.actor_ask_timeout,
                                       max_batch=settings.actor_max_batch,
                                       retry_after=settings.dependency_retry_after)
        # Group commit of orders (engine.order_writer): batched mode only; single mode writes
        # each order alone, as the baseline always did.
        self._lane, self._lanes = 0, max(1, settings.order_writers)
        self._writers = ActorRegistry(lambda _key: OrderWriter(db), mailbox_size=settings.actor_mailbox_size,
                                      idle_seconds=settings.actor_idle_seconds,
                                      ask_timeout=settings.actor_ask_timeout + settings.db_command_timeout,
                                      max_batch=settings.actor_max_batch,
                                      retry_after=settings.dependency_retry_after)

    def _spawn(self, key: Hashable) -> Actor:
        if self._recheck > 0:
            return ProductActor(self._db, self._ran_out, self._epoch)
        return ProductActor(self._db)

    def stats(self) -> ActorStats:
        return self._registry.stats()

    async def start(self) -> None:
        """Listen for units coming back (sold-out memory) and refresh the product summary in
        the background; without it the memory still expires by its deadline."""
        if self._recheck > 0 and self._signals is None:
            self._signals = StockSignals(self._db.dsn, self._units_back, self._forget_all)
            self._signals.start()
        self._refresher.start()

    async def shutdown(self, drain_timeout: float) -> None:
        await self._refresher.stop()
        if self._signals is not None:
            await self._signals.stop()
        await self._registry.shutdown(drain_timeout)
        await self._writers.shutdown(drain_timeout)

    async def write_order(self, record: OrderRecord) -> Written:
        """Write one order: with the other orders waiting for the same writer in one call
        (batched mode), or alone (single mode)."""
        if not self.batched:
            async with self._db.connection() as conn:
                return (await write_orders(conn, [record]))[0]
        self._lane = (self._lane + 1) % self._lanes
        answer = await self._writers.ask(writer_key(record, self._lane), record)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    # -- sold-out memory ----------------------------------------------------------------

    def _epoch(self) -> int:
        return self._up_epoch

    def _ran_out(self, stock_id: UUID, epoch: int) -> None:
        if epoch == self._up_epoch:  # no notice since the batch read the row: it is still news
            self._sold_out[stock_id] = time.monotonic() + self._recheck

    def _units_back(self, stock_id: UUID) -> None:
        self._up_epoch += 1
        self._sold_out.pop(stock_id, None)

    def _forget_all(self) -> None:
        self._up_epoch += 1
        self._sold_out.clear()

    def known_sold_out(self, stock_id: UUID) -> bool:
        deadline = self._sold_out.get(stock_id)
        if deadline is None:
            return False
        if time.monotonic() < deadline:
            return True
        del self._sold_out[stock_id]
        return False

    # -- one row ---------------------------------------------------------------------

    async def hold(self, stock_id: UUID, quantity: int) -> UUID:
        """Reserve `quantity` units of one stock row under a new hold and return the hold's id,
        or raise InsufficientStock. Until it is consumed or released the hold is reclaimed
        (units back to available) once it is older than `hold_grace`."""
        if not self.batched:
            return await _reserve_directly(self._db, stock_id, quantity)
        if self._sold_out and self.known_sold_out(stock_id):
            raise _shortfall(0, stock_id)
        change = _Change(stock_id, quantity)
        try:
            answer = await self._registry.ask(stock_id, change)
        except ActorUnavailable:
            if change.state == APPLIED and change.hold_id is not None:  # reserved, answered too late: keep it
                return change.hold_id
            change.state = ABANDONED
            raise
        if isinstance(answer, DomainError):
            raise answer
        assert change.hold_id is not None
        return change.hold_id

    async def reserve(self, stock_id: UUID, quantity: int) -> None:
        """`hold` without the hold's id: for callers that only count units (tests, benchmarks);
        the units go back when the reconciler finds the hold unconsumed."""
        await self.hold(stock_id, quantity)

    async def release(self, holds: Iterable[UUID]) -> None:
        """Give back the units of these holds (an order that will not be created)."""
        await release_holds(self._db, list(holds))

    # -- an order's lines --------------------------------------------------------------

    async def reserve_all(self, lines: Iterable[StockLine]) -> Reservation:
        """Reserve every tracked line, all or nothing.

        Lines on one stock row are summed. When a row falls short, whatever was reserved is
        released and InsufficientStock is raised with `available`, `productId` (and
        `variantId`) of the first short line, plus every shortfall under `items`."""
        wanted: dict[UUID, int] = defaultdict(int)
        product_of: dict[UUID, StockLine] = {}
        for line in lines:
            if line.stock_id is not None and line.quantity > 0:
                wanted[line.stock_id] += line.quantity
                product_of.setdefault(line.stock_id, line)
        order = sorted(wanted)
        results = await asyncio.gather(*(self.hold(sid, wanted[sid]) for sid in order), return_exceptions=True)
        got = {sid: wanted[sid] for sid, r in zip(order, results) if not isinstance(r, BaseException)}
        holds = tuple(r for r in results if not isinstance(r, BaseException))
        failures = [(sid, r) for sid, r in zip(order, results) if isinstance(r, BaseException)]
        if not failures:
            return Reservation(got, holds)
        if holds:
            await release_holds(self._db, holds)
        short = [(sid, r) for sid, r in failures if isinstance(r, InsufficientStock)]
        if len(short) < len(failures):
            raise next(r for _, r in failures if not isinstance(r, InsufficientStock))
        items = [{"productId": str(product_of[sid].product_id),
                  "variantId": str(product_of[sid].variant_id) if product_of[sid].variant_id else None,
                  "requested": wanted[sid], "available": r.extra.get("available", 0)} for sid, r in short]
        first = items[0]
        raise InsufficientStock(f"Only {first['available']} available.",
                                extra={"available": first["available"], "productId": first["productId"],
                                       "variantId": first["variantId"], "items": items})

    async def release_all(self, reservation: Reservation) -> None:
        """Give back whatever of the reservation is still held (nothing, if the order's
        transaction committed and consumed the holds, or the reconciler took them)."""
        if reservation.holds:
            await release_holds(self._db, reservation.holds)


async def _reserve_directly(db: Database, stock_id: UUID, quantity: int) -> UUID:
    """The baseline: this reservation alone, in its own transaction (the same statement the
    actors send for a batch, with a batch of one)."""
    hold_id = uuid4()
    async with db.connection() as conn:
        done = await conn.fetchrow(_RESERVE, stock_id, [hold_id], [quantity])
    if not done["granted"][0]:
        raise _shortfall(done["left_over"], stock_id)
    return hold_id


def stock_lines(items: Sequence[tuple[UUID | None, int, UUID, UUID | None]]) -> list[StockLine]:
    """(stock_id, quantity, product_id, variant_id) tuples as StockLines."""
    return [StockLine(*item) for item in items]
