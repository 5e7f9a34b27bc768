"""The ceiling of section 2: the engine's checkout statements driven directly with asyncpg.

`direct_checkout(conn, ...)` runs, for one buyer with a prepared cart, the SQL that
engine/checkout.py + engine/stock.py (+ engine/idempotency.py, as the benchmark's clients send
an Idempotency-Key) run for `POST /cart/checkout`, in the same transactions and the same
order, and nothing else (no HTTP, auth, actors, rate limits):
1. one read, no transaction: the cart, its lines, the buyer, the addresses and the method
   (engine.checkout's own query), then the engine's pricing (`_plan`, pure Python here);
2. reservation: one statement per stock row in id order, a batch of one (engine.stock's own
   `reserve_stock` call, as the product actor sends it);
3. the order statement (engine.checkout `_write`: holds consumed, cart version checked and
   bumped, order numbered, order, items, history, expiry job, cart emptied, and the
   Idempotency-Key claimed with the response stored under it), or the holds given back when a
   row fell short.
It calls the engine's functions and statements themselves, private ones included, so the
ceiling follows the engine when its SQL changes. Returns "ok", "empty" (cart had no lines or
was checked out meanwhile) or "short" (a stock row could not cover the line).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict

import asyncpg

from engine import checkout, idempotency
from engine.cart import load_cart_to_check_out
from engine.domain.errors import CartEmpty, Conflict
from engine.settings import Settings

# Deliberately the engine's private statement: the ceiling must reserve exactly as the actor does.
from engine.stock import _RESERVE, Reservation, release_holds

OK, EMPTY, SHORT = "ok", "empty", "short"
_SETTINGS = Settings()


async def init_connection(conn: asyncpg.Connection) -> None:
    """JSON codecs as the engine's pool has them (jsonb columns take dicts)."""
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class _OneConnection:
    """The engine.db.Database methods the engine functions used here need, on one connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    def connection(self) -> "_OneConnection":
        return self

    def transaction(self) -> "_Transaction":
        return _Transaction(self._conn)

    async def __aenter__(self) -> asyncpg.Connection:
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Transaction:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._tx = conn.transaction()

    async def __aenter__(self) -> asyncpg.Connection:
        await self._tx.__aenter__()
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        await self._tx.__aexit__(*exc)


async def direct_checkout(conn: asyncpg.Connection, tenant: uuid.UUID, user: uuid.UUID, address_id: uuid.UUID,
                          method_id: uuid.UUID) -> str:
    """One buyer's cart checked out with the engine's statements (see the module docstring)."""
    scope, key = f"user:{user}", uuid.uuid4().hex
    # The key is claimed by the order statement itself, as checkout's own (no claim before it).
    owner = idempotency.ResponseKey(tenant, scope, key, 201,
                                    idempotency.request_hash("POST", "/api/v1/cart/checkout", key),
                                    ttl=86_400.0, lease=120.0)
    return await _checkout(conn, tenant, user, address_id, method_id, owner)


async def _checkout(conn: asyncpg.Connection, tenant: uuid.UUID, user: uuid.UUID, address_id: uuid.UUID,
                    method_id: uuid.UUID, owner: idempotency.ResponseKey) -> str:
    request = checkout.OrderRequest(shipping_address_id=address_id, shipping_method_id=method_id,
                                    payment_method="CARD")
    now = dt.datetime.now(dt.UTC)
    cart, context = await load_cart_to_check_out(conn, tenant, user, query=checkout._CART_AND_CONTEXT,
                                                  args=checkout._context_args(request))
    if cart is None:
        return EMPTY
    lines = [checkout.OrderLine.of(line) for line in cart.lines]
    plan = await checkout._plan(conn, _SETTINGS, tenant, user, lines, [c.code for c in cart.coupons], request, now,
                                context)
    wanted: dict[uuid.UUID, int] = defaultdict(int)
    for line in cart.lines:
        wanted[line.stock_id] += line.quantity
    holds: list[uuid.UUID] = []
    outcome = OK
    for stock_id in sorted(wanted):  # the product actor's statement, a batch of one per stock row
        hold = uuid.uuid4()
        done = await conn.fetchrow(_RESERVE, stock_id, [hold], [wanted[stock_id]])
        if not done["granted"][0]:
            outcome = SHORT
            break
        holds.append(hold)
    if outcome == OK:
        try:
            await checkout._write(conn, _SETTINGS, tenant_id=tenant, user_id=user, plan=plan, request=request,
                                  cart=cart, actor=f"user:{user}", now=now,
                                  reservation=Reservation(dict(wanted), tuple(holds)), respond=owner)
            return OK
        except (CartEmpty, Conflict):
            outcome = EMPTY
    if holds:  # the engine gives the units back the same way
        await release_holds(_OneConnection(conn), holds)  # type: ignore[arg-type]
    return outcome
