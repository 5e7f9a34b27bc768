"""Stock reservations: per-product actors that coalesce reservations into one transaction.

A stock row (one per product without variants, or per variant) counts
on_hand = available + reserved + sold; the table's CHECKs make `available < 0` impossible
whatever the code does, so the actors are a speed device, never the source of truth.

Reserving (`StockService.reserve_all`), in `actor_mode`:
- "batched": each stock row has an actor (keyed by the stock row id). It drains whatever
  reservations are waiting (up to `actor_max_batch`) and applies them in ONE transaction, one
  statement (`reserve_stock`, migration 0010): lock the row, admit reservations first come
  first served while they fit, and write their sum with one conditional UPDATE. Each caller
  hears "reserved" or INSUFFICIENT_STOCK with the quantity still available.
- "single": one transaction per reservation (the same statement with a batch of one), no
  actors: the baseline the benchmark compares the actors against.
Either way several API processes stay correct: the row lock and the conditional UPDATE decide.
Releases (a checkout that failed after reserving) are rare and must not be lost to a full
mailbox, so they skip the actors: one short transaction, rows in id order.

A checkout is all or nothing: lines drawing on one stock row are summed and checked together,
and when any row falls short every reservation already made is released.

A caller that gives up (ask timeout) never leaks units: each request carries a state that the
actor and the caller settle without an await in between, so exactly one of them knows the
units were reserved - the caller keeps them, or the actor gives them back at once.

A process that dies between reserving and writing the order does not leak them either: every
granted reservation is also a `stock_holds` row (migration 0007), inserted by the statement
that raises stock.reserved (one round trip for the whole batch). The order's statement deletes
its holds (engine.checkout; from then on order_items + orders.stock_state say where
the units are), a failed checkout deletes them while giving the units back (`release_holds`),
and `reclaim_orphaned_holds` gives back the units of holds older than `hold_grace` (their
process is gone). Deleting a hold is what gives its units back, so they go back exactly once,
whoever of the three gets there first; the others find nothing to delete.

Selling, releasing an order's reservation and returning sold units (`commit_sale`,
`release_order`, `return_sold`) run in the caller's transaction, happen at most once per order
(a check-and-set of orders.stock_state, migration 0004), and lock every stock row in id
order, then the products in id order (the stock triggers of migration 0003 update products),
so transactions touching several rows never deadlock with each other or with the actors,
which lock one stock row and then its product.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable, Mapping, Sequence
from uuid import UUID, uuid4

import asyncpg

from engine.actors import Actor, ActorRegistry, ActorStats
from engine.db import Database
from engine.errors import ActorUnavailable, DomainError, InsufficientStock
from engine.order_writer import OrderRecord, OrderWriter, Written, write_orders, writer_key
from engine.settings import Settings
from engine.stock_signals import StockSignals
from engine.stock_summary import SummaryRefresher

PENDING, APPLIED, ABANDONED = "pending", "applied", "abandoned"
# Slack on top of the waits a live checkout can spend between its reservation and its order
# transaction (see `hold_grace`), so a slow but living checkout is never reclaimed.
HOLD_MARGIN_SECONDS = 30.0


def hold_grace(settings: Settings) -> dt.timedelta:
    """How old an unconsumed hold must be before its process is presumed dead: the actor's
    answer (ask timeout), then the order sequence and the order transaction's first statement
    (a pool wait and a statement each, at most db_command_timeout), plus a margin."""
    return dt.timedelta(seconds=settings.actor_ask_timeout + 3 * settings.db_command_timeout
                        + HOLD_MARGIN_SECONDS)


@dataclass(frozen=True, slots=True)
class StockLine:
    """Units one order line wants from one stock row (None: the product is not tracked)."""

    stock_id: UUID | None
    quantity: int
    product_id: UUID
    variant_id: UUID | None = None


@dataclass(slots=True, eq=False)
class _Change:
    """One message to a product actor: reserve `quantity` (> 0) units of its stock row."""

    stock_id: UUID
    quantity: int
    hold_id: UUID | None = None   # set by the actor when it grants the reservation
    state: str = PENDING


@dataclass(frozen=True, slots=True)
class Reservation:
    """What `reserve_all` obtained: units per stock row, and the holds that own them. The order
    statement consumes the holds (engine.checkout); a failed checkout releases them."""

    units: Mapping[UUID, int] = field(default_factory=dict)
    holds: tuple[UUID, ...] = ()


# A batch of reservations of one stock row, one statement (migration 0010): row lock, first come
# first served admission, stock.reserved raised by the admitted sum, one hold per admission.
_RESERVE = "SELECT granted, left_over FROM reserve_stock($1, $2::uuid[], $3::int[])"


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


# ----------------------------------------------------------------------------- holds

async def _give_back(conn: asyncpg.Connection, holds: Sequence[UUID]) -> int:
    """Delete these holds and return their units to available; returns the holds deleted.
    Holds already gone (consumed by an order, released, reclaimed) give nothing back."""
    gone = await conn.fetch("DELETE FROM stock_holds WHERE id = ANY($1::uuid[]) RETURNING stock_id, quantity",
                            list(holds))
    units: dict[UUID, int] = defaultdict(int)
    for r in gone:
        units[r["stock_id"]] += r["quantity"]
    await _move(conn, units, "reserved = s.reserved - d.q", "s.reserved >= d.q")
    return len(gone)


async def release_holds(db: Database, holds: Sequence[UUID]) -> int:
    """Give back the units of these holds, one short transaction, stock rows in id order;
    returns how many holds were still there to release."""
    if not holds:
        return 0
    async with db.transaction() as conn:
        return await _give_back(conn, holds)


async def reclaim_orphaned_holds(db: Database, *, older_than: dt.timedelta, limit: int = 1000) -> int:
    """Give back the units of holds older than `older_than` (their checkout's process died
    between reserving and writing the order); returns how many holds were reclaimed.

    One transaction per `limit` holds: hold rows locked with SKIP LOCKED (a hold an order
    transaction is consuming right now is that order's), then the stock rows in id order and
    their products, as every multi-row stock move does. Ages are measured on the database's
    clock, which also stamped the holds. A stock row whose reserved units no longer cover its
    old holds means an accounting bug elsewhere: its holds are left for a human to look at
    (giving them back would take units other orders own), the other rows are reclaimed."""
    total, left_alone = 0, []
    while True:
        async with db.transaction() as conn:
            taken, reclaimed = await _reclaim_batch(conn, older_than, limit, left_alone)
        total += reclaimed
        if taken < limit:
            return total


async def _reclaim_batch(conn: asyncpg.Connection, older_than: dt.timedelta, limit: int,
                         left_alone: list[UUID]) -> tuple[int, int]:
    """One transaction's worth: (holds looked at, holds reclaimed); adds the holds it had to
    leave alone to `left_alone`, so the next batch of this run does not look at them again."""
    # A hold whose stock row is gone has nothing to give back (and no FK to clean it).
    holds = await conn.fetch(
        "SELECT h.id, h.stock_id, h.quantity FROM stock_holds h"
        " WHERE h.created_at < clock_timestamp() - $1::interval AND h.id <> ALL($3::uuid[])"
        " AND EXISTS (SELECT 1 FROM stock s WHERE s.id = h.stock_id)"
        " LIMIT $2 FOR UPDATE OF h SKIP LOCKED", older_than, limit, left_alone)
    units: dict[UUID, int] = defaultdict(int)
    for h in holds:
        units[h["stock_id"]] += h["quantity"]
    if not units:
        return 0, 0
    ids = sorted(units)
    await _lock_stock(conn, ids)
    covered = {r["id"] for r in await conn.fetch(
        "SELECT s.id FROM stock s JOIN unnest($1::uuid[], $2::int[]) AS d(id, q) ON d.id = s.id"
        " WHERE s.reserved >= d.q", ids, [units[i] for i in ids])}
    mine = [h["id"] for h in holds if h["stock_id"] in covered]
    left_alone.extend(h["id"] for h in holds if h["stock_id"] not in covered)
    return len(holds), await _give_back(conn, mine) if mine else 0


# ----------------------------------------------------------------------------- in the caller's transaction

async def _order_units(conn: asyncpg.Connection, order_id: UUID) -> dict[UUID, int]:
    rows = await conn.fetch(
        "SELECT stock_id, sum(quantity)::int AS q FROM order_items"
        " WHERE order_id = $1 AND stock_id IS NOT NULL GROUP BY stock_id", order_id)
    return {r["stock_id"]: r["q"] for r in rows}


async def _lock_stock(conn: asyncpg.Connection, ids: list[UUID]) -> None:
    """Lock stock rows in id order, then their products (which the stock triggers update)."""
    await conn.execute("SELECT 1 FROM stock WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE", ids)
    await conn.execute(
        "SELECT 1 FROM products WHERE id IN (SELECT product_id FROM stock WHERE id = ANY($1::uuid[]))"
        " ORDER BY id FOR NO KEY UPDATE", ids)


async def _move(conn: asyncpg.Connection, units: dict[UUID, int], assignment: str, guard: str) -> None:
    """Apply `assignment` to each stock row with its units `d.q`, rows locked in id order first
    (then their products, which the stock triggers update), refusing if `guard` fails."""
    units = {sid: q for sid, q in units.items() if q > 0}
    if not units:
        return
    ids = sorted(units)
    await _lock_stock(conn, ids)
    moved = await conn.fetchval(
        f"WITH d(id, q) AS (SELECT * FROM unnest($1::uuid[], $2::int[])),"
        f" done AS (UPDATE stock s SET {assignment}, updated_at = now() FROM d"
        f"          WHERE s.id = d.id AND {guard} RETURNING 1)"
        f" SELECT count(*) FROM done", ids, [units[i] for i in ids])
    if moved != len(ids):
        # A bug, not a client error: these units were never reserved/sold. Roll back.
        raise RuntimeError(f"stock accounting mismatch: moved {moved} of {len(ids)} rows")


async def _advance(conn: asyncpg.Connection, order_id: UUID, before: str, after: str) -> bool:
    """Check-and-set orders.stock_state (migration 0004): True if this call made the move."""
    return bool(await conn.fetchval(
        "UPDATE orders SET stock_state = $3 WHERE id = $1 AND stock_state = $2 RETURNING true",
        order_id, before, after))


async def commit_sale(conn: asyncpg.Connection, order_id: UUID) -> bool:
    """Reserved -> sold for every item of the order (payment confirmed); products.units_sold
    follows through the stock triggers. At most once per order: a second call (or a call for
    an order already released) changes nothing and returns False."""
    if not await _advance(conn, order_id, "RESERVED", "SOLD"):
        return False
    await _move(conn, await _order_units(conn, order_id),
                "reserved = s.reserved - d.q, sold = s.sold + d.q", "s.reserved >= d.q")
    return True


async def release_order(conn: asyncpg.Connection, order_id: UUID) -> bool:
    """Reserved -> available for every item of an unpaid order (cancelled or expired).
    At most once per order; False if the units were already sold or released."""
    if not await _advance(conn, order_id, "RESERVED", "RELEASED"):
        return False
    await _move(conn, await _order_units(conn, order_id), "reserved = s.reserved - d.q", "s.reserved >= d.q")
    return True


async def release_orders(conn: asyncpg.Connection, order_ids: Sequence[UUID]) -> int:
    """`release_order` for many unpaid orders at once (the expiry sweep), set-based: one
    check-and-set of stock_state for all of them, then one move of their summed units, stock
    rows in id order. Each order's units go back at most once; returns how many orders'
    units this call released (orders already released or sold are skipped)."""
    row = await conn.fetchrow(
        "WITH released AS (UPDATE orders SET stock_state = 'RELEASED'"
        "                   WHERE id = ANY($1::uuid[]) AND stock_state = 'RESERVED' RETURNING id),"
        " units AS (SELECT i.stock_id, sum(i.quantity)::int AS q FROM order_items i JOIN released r"
        "           ON r.id = i.order_id WHERE i.stock_id IS NOT NULL GROUP BY i.stock_id)"
        " SELECT (SELECT count(*) FROM released)::int AS orders,"
        "        (SELECT array_agg(stock_id ORDER BY stock_id) FROM units) AS ids,"
        "        (SELECT array_agg(q ORDER BY stock_id) FROM units) AS qs",
        list(order_ids))
    await _move(conn, dict(zip(row["ids"] or (), row["qs"] or ())), "reserved = s.reserved - d.q", "s.reserved >= d.q")
    return row["orders"]


async def return_sold(conn: asyncpg.Connection, order_id: UUID,
                      quantities: Mapping[UUID, int] | None = None) -> bool:
    """Sold -> available. `quantities` maps order item id -> units to return (a refund; the
    caller keeps order_items.refunded_quantity and must not return the same units twice);
    None returns every item's full quantity (a paid order cancelled before shipping), at most
    once per order. False (nothing moved) unless the order's units are sold."""
    if quantities is None:
        if not await _advance(conn, order_id, "SOLD", "RETURNED"):
            return False
    elif await conn.fetchval("SELECT stock_state FROM orders WHERE id = $1", order_id) != "SOLD":
        return False
    rows = await conn.fetch(
        "SELECT id, stock_id, quantity FROM order_items WHERE order_id = $1 AND stock_id IS NOT NULL", order_id)
    units: dict[UUID, int] = defaultdict(int)
    for r in rows:
        q = r["quantity"] if quantities is None else quantities.get(r["id"], 0)
        if q < 0 or q > r["quantity"]:
            raise ValueError(f"cannot return {q} of {r['quantity']} units of item {r['id']}")
        units[r["stock_id"]] += q
    await _move(conn, dict(units), "sold = s.sold - d.q", "s.sold >= d.q")
    return True


def stock_lines(items: Sequence[tuple[UUID | None, int, UUID, UUID | None]]) -> list[StockLine]:
    """(stock_id, quantity, product_id, variant_id) tuples as StockLines."""
    return [StockLine(*item) for item in items]
