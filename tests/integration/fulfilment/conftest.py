"""Fulfilment test helpers: orders arranged in the database at any stage (through the engine's
own change_status), and a real Dramatiq worker with the fulfilment jobs installed."""

from __future__ import annotations

import json
import datetime as dt
import secrets
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

import asyncpg
import pytest

from engine.db import Database
from engine.orders import change_status
from engine.payments.sandbox import payment_ref_of
from tests.integration.workers.conftest import FAST, assembly, eventually, worker  # noqa: F401 (re-export)

UTC = dt.timezone.utc


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


@dataclass
class Arranged:
    id: uuid.UUID
    items: list[uuid.UUID]
    stock_ids: list[uuid.UUID]
    total: Decimal


async def arrange_order(pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: uuid.UUID, *,
                        lines: Sequence[tuple[str, int]] = (("100.00", 2),), shipping: str = "0",
                        commission: str = "0", points: str = "0", on_hand: int = 10,
                        method: str = "CARD") -> Arranged:
    """A PENDING_PAYMENT order with reserved stock, one product per line (price, quantity)."""
    items, stock_ids, subtotal = [], [], Decimal(0)
    async with pool.acquire() as conn, conn.transaction():
        order_id = uuid.uuid4()
        rows = []
        for price, qty in lines:
            sku = "SKU-" + secrets.token_hex(5)
            pid = await conn.fetchval(
                "INSERT INTO products (tenant_id, name, slug, price, currency, sku, commission_percentage,"
                " career_points_percentage) VALUES ($1, $2, $3, $4, 'RUB', $2, $5, $6) RETURNING id",
                tenant_id, sku, sku.lower(), Decimal(price), Decimal(commission), Decimal(points))
            sid = await conn.fetchval("INSERT INTO stock (tenant_id, product_id, on_hand, reserved)"
                                      " VALUES ($1, $2, $3, $4) RETURNING id", tenant_id, pid, on_hand, qty)
            rows.append((pid, sid, Decimal(price), qty))
            stock_ids.append(sid)
            subtotal += Decimal(price) * qty
        total = subtotal + Decimal(shipping)
        await conn.execute(
            "INSERT INTO orders (id, tenant_id, user_id, order_number, status, payment_method, currency, subtotal,"
            " shipping, total, shipping_address, shipping_method, expires_at)"
            " VALUES ($1, $2, $3, $4, 'PENDING_PAYMENT', $5, 'RUB', $6, $7, $8, $9::jsonb, $10::jsonb,"
            " now() + interval '30 minutes')", order_id, tenant_id, user_id, "ORD-" + secrets.token_hex(6), method,
            subtotal, Decimal(shipping), total, json.dumps({"city": "Moscow", "country": "RU", "postalCode": "125009"}),
            json.dumps({"name": "Standard", "carrier": "Russian Post"}))
        for pid, sid, price, qty in rows:
            items.append(await conn.fetchval(
                "INSERT INTO order_items (tenant_id, order_id, product_id, stock_id, product_name, sku, quantity,"
                " unit_price, total_price, commission_percentage, career_points_percentage)"
                " VALUES ($1, $2, $3, $4, 'Thing', 'SKU', $5, $6, $7, $8, $9) RETURNING id",
                tenant_id, order_id, pid, sid, qty, price, price * qty, Decimal(commission), Decimal(points)))
    return Arranged(order_id, items, stock_ids, total)


async def advance(database: Database, order: Arranged, *, to: str, delivered_at: dt.datetime | None = None) -> None:
    """Move an arranged order along the lifecycle through change_status, paying it by the sandbox."""
    path = ["PAID", "PROCESSING", "SHIPPED", "DELIVERED"]
    async with database.transaction() as conn:
        current = await conn.fetchval("SELECT status FROM orders WHERE id = $1", order.id)
        start = 0 if current == "PENDING_PAYMENT" else path.index(current) + 1
        for status in path[start:path.index(to) + 1]:
            if status == "PAID":
                await conn.execute(
                    "INSERT INTO payments (tenant_id, order_id, provider, payment_ref, method, currency, amount,"
                    " status, paid_at) SELECT tenant_id, id, 'sandbox', $2, payment_method, currency, total, 'PAID',"
                    " now() FROM orders WHERE id = $1", order.id, payment_ref_of(order.id))
            await change_status(conn, order.id, status, actor="test")
        if to == "SHIPPED" or (to == "DELIVERED" and start <= 2):
            await conn.execute("UPDATE orders SET tracking_number = $2, carrier = 'Russian Post' WHERE id = $1",
                               order.id, "SBX" + secrets.token_hex(4))
        if delivered_at is not None:
            await conn.execute("UPDATE orders SET delivered_at = $2 WHERE id = $1", order.id, delivered_at)


@pytest.fixture
def worker_settings(base_settings):
    return base_settings.with_(redis_prefix=f"ft{secrets.token_hex(4)}", outbox_poll_seconds=0.05)


@pytest.fixture
def background_loops() -> bool:
    """The fulfilment journey needs the worker's own relay and scheduler."""
    return True
