"""The ceiling of section 2: the engine's checkout statements driven directly with asyncpg.

`direct_checkout(conn, ...)` runs, for one buyer with a prepared cart, the SQL that
engine/checkout.py + engine/stock.py (+ engine/idempotency.py, as the benchmark's clients send
an Idempotency-Key) run for `POST /cart/checkout`, in the same transactions and the same
order, and nothing else (no HTTP, auth, actors, pricing rules):
0. the Idempotency-Key claimed (engine.idempotency.claim: one transaction);
1. reads, no transaction: the cart and its lines (engine.cart.load_cart), the buyer, the
   shipping address, the shipping method;
2. reservation: one transaction per stock row, as the product actor does (lock the row, then
   the conditional UPDATE that also inserts the stock hold: engine.stock's own statement);
   rows in id order;
3. `next_order_sequence` outside the order transaction (as the engine does);
4. the order transaction: delete the holds (consume_holds), lock the cart and re-read it,
   insert order, items, history and the expiry outbox row, empty the cart (clear_cart);
5. the response stored under the key (engine.idempotency.complete), or the key abandoned.
The statements are the engine's own where it exposes them (load_cart, consume_holds,
record_history, outbox.enqueue, clear_cart, the reservation statement), so the ceiling follows
the engine when its SQL changes. Returns "ok", "empty" (cart had no lines) or "short"
(a stock row could not cover the line); a short checkout gives its holds back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import Decimal
from types import SimpleNamespace

import asyncpg

from engine import idempotency, outbox
from engine.addresses import find_address
from engine.cart import clear_cart, load_cart
from engine.order_status import format_order_number
from engine.orders import record_history
from engine.shipping_store import load_method

# Deliberately the engine's private statement: the ceiling must reserve exactly as the actor does.
from engine.stock import _RESERVE_AND_HOLD, Reservation, consume_holds, release_holds

OK, EMPTY, SHORT = "ok", "empty", "short"
_TAX = Decimal("0.20")
_SHIPPING = Decimal("350.00")
# What the engine stores under the key: its checkout response, about this size.
_RESPONSE = json.dumps({"success": True, "data": {"orderId": str(uuid.uuid4()), "pad": "x" * 1100}}).encode()

_ORDER = (
    "INSERT INTO orders (tenant_id, user_id, order_number, status, payment_method, currency, subtotal,"
    " discount, shipping, tax, total, shipping_address, billing_address, shipping_method_id, shipping_method,"
    " applied_coupons, notes, expires_at, estimated_delivery, created_at, updated_at)"
    " VALUES ($1, $2, $3, 'PENDING_PAYMENT', 'CARD', 'RUB', $4, 0, $5, $6, $7, $8, NULL, $9, $10, '[]'::jsonb,"
    " NULL, $11, $12, $13, $13) RETURNING id")
_ITEM = (
    "INSERT INTO order_items (tenant_id, order_id, product_id, variant_id, stock_id, product_name, sku,"
    " thumbnail_url, variant_attributes, quantity, unit_price, total_price, commission_percentage,"
    " career_points_percentage) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")


async def init_connection(conn: asyncpg.Connection) -> None:
    """JSON codecs as the engine's pool has them (jsonb columns take dicts)."""
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class _Refused(Exception):
    def __init__(self, outcome: str) -> None:
        self.outcome = outcome


async def direct_checkout(conn: asyncpg.Connection, tenant: uuid.UUID, user: uuid.UUID, address_id: uuid.UUID,
                          method_id: uuid.UUID) -> str:
    """One buyer's cart checked out with the engine's statements (see the module docstring)."""
    db, scope, key = _on(conn), f"user:{user}", uuid.uuid4().hex
    await idempotency.claim(db, tenant, scope, key, idempotency.request_hash("POST", "/api/v1/cart/checkout", key),
                            ttl=86_400, wait=10.0)
    outcome = await _checkout(conn, tenant, user, address_id, method_id)
    if outcome == OK:
        await idempotency.complete(db, tenant, scope, key, idempotency.StoredResponse(201, _RESPONSE))
    else:
        await idempotency.abandon(db, tenant, scope, key)
    return outcome


async def _checkout(conn: asyncpg.Connection, tenant: uuid.UUID, user: uuid.UUID, address_id: uuid.UUID,
                    method_id: uuid.UUID) -> str:
    cart = await load_cart(conn, tenant, user)
    if cart.is_empty:
        return EMPTY
    await conn.fetchrow("SELECT role, kyc_status FROM users WHERE id = $1 AND tenant_id = $2", user, tenant)
    address = await find_address(conn, tenant, user, address_id)
    await load_method(conn, tenant, method_id)
    wanted: dict[uuid.UUID, int] = defaultdict(int)
    for line in cart.lines:
        wanted[line.stock_id] += line.quantity
    holds: list[uuid.UUID] = []
    try:
        for stock_id in sorted(wanted):  # the product actor's transaction, one per stock row
            hold = uuid.uuid4()
            async with conn.transaction():
                await conn.fetchrow("SELECT available FROM stock WHERE id = $1 FOR NO KEY UPDATE", stock_id)
                done = await conn.fetchrow(_RESERVE_AND_HOLD, stock_id, wanted[stock_id], [hold], [wanted[stock_id]])
            if done["available"] is None:
                raise _Refused(SHORT)
            holds.append(hold)
        sequence = await conn.fetchval("SELECT next_order_sequence($1)", tenant)
        now = dt.datetime.now(dt.UTC)
        async with conn.transaction():
            await consume_holds(conn, Reservation(dict(wanted), tuple(holds)))
            locked = await load_cart(conn, tenant, user, lock=True)
            if locked.is_empty:
                raise _Refused(EMPTY)
            subtotal = sum((ln.unit_price * ln.quantity for ln in locked.lines), Decimal(0))
            tax = (subtotal * _TAX).quantize(Decimal("0.01"))
            expires = now + dt.timedelta(minutes=30)
            order = await conn.fetchval(
                _ORDER, tenant, user, format_order_number(now.year, sequence), subtotal, _SHIPPING, tax,
                subtotal + tax + _SHIPPING, address.snapshot() if address else {}, method_id,
                {"id": str(method_id), "name": "Courier", "carrier": "sandbox", "price": str(_SHIPPING)},
                expires, now.date(), now)
            await conn.executemany(_ITEM, [
                (tenant, order, ln.product_id, ln.variant_id, ln.stock_id, ln.product_name, ln.sku, ln.thumbnail_url,
                 ln.variant_attributes, ln.quantity, ln.unit_price, ln.unit_price * ln.quantity,
                 ln.commission_percentage, ln.career_points_percentage) for ln in locked.lines])
            await record_history(conn, tenant, order, "PENDING_PAYMENT", actor=f"user:{user}", note=None)
            await outbox.enqueue(conn, outbox.EXPIRE_ORDER, {"order_id": str(order)}, tenant_id=tenant,
                                 not_before=expires)
            await clear_cart(conn, locked.id)
        return OK
    except _Refused as refused:  # the engine gives the units back the same way
        if holds:
            await release_holds(_on(conn), holds)  # type: ignore[arg-type]
        return refused.outcome


def _on(conn: asyncpg.Connection) -> SimpleNamespace:
    """The engine.db.Database methods the engine functions above use, on this one connection."""

    @contextlib.asynccontextmanager
    async def transaction() -> AsyncIterator[asyncpg.Connection]:
        async with conn.transaction():
            yield conn

    @contextlib.asynccontextmanager
    async def connection() -> AsyncIterator[asyncpg.Connection]:
        yield conn

    return SimpleNamespace(transaction=transaction, connection=connection)
