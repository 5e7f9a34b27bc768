"""Orders for payment and worker tests, inserted with SQL as checkout would leave them:
PENDING_PAYMENT, stock reserved, an outbox row for the delayed expiry when asked."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass
from decimal import Decimal

import asyncpg


@dataclass
class PlacedOrder:
    id: uuid.UUID
    tenant_id: uuid.UUID
    stock_id: uuid.UUID
    quantity: int
    total: Decimal


async def place_order(pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: uuid.UUID, *, quantity: int = 2,
                      on_hand: int = 10, price: Decimal = Decimal("100.00"), method: str = "CARD",
                      expires_in: dt.timedelta = dt.timedelta(minutes=30), stock_id: uuid.UUID | None = None,
                      currency: str = "RUB") -> PlacedOrder:
    async with pool.acquire() as conn, conn.transaction():
        if stock_id is None:
            sku = "SKU-" + secrets.token_hex(5)
            product_id = await conn.fetchval(
                "INSERT INTO products (tenant_id, name, slug, price, currency, sku) VALUES ($1, $2, $3, $4, $5, $2)"
                " RETURNING id", tenant_id, sku, sku.lower(), price, currency)
            stock_id = await conn.fetchval(
                "INSERT INTO stock (tenant_id, product_id, on_hand) VALUES ($1, $2, $3) RETURNING id",
                tenant_id, product_id, on_hand)
        product_id = await conn.fetchval("SELECT product_id FROM stock WHERE id = $1", stock_id)
        await conn.execute("UPDATE stock SET reserved = reserved + $2 WHERE id = $1", stock_id, quantity)
        total = price * quantity
        number = "ORD-" + secrets.token_hex(6)
        order_id = await conn.fetchval(
            "INSERT INTO orders (tenant_id, user_id, order_number, status, payment_method, currency, subtotal, total,"
            " shipping_address, shipping_method, expires_at)"
            " VALUES ($1, $2, $3, 'PENDING_PAYMENT', $4, $5, $6, $6, '{}'::jsonb, '{}'::jsonb, now() + $7::interval)"
            " RETURNING id", tenant_id, user_id, number, method, currency, total, expires_in)
        await conn.execute(
            "INSERT INTO order_items (tenant_id, order_id, product_id, stock_id, product_name, sku, quantity,"
            " unit_price, total_price) VALUES ($1, $2, $3, $4, 'Thing', 'SKU', $5, $6, $7)",
            tenant_id, order_id, product_id, stock_id, quantity, price, total)
        await conn.execute(
            "INSERT INTO order_status_history (tenant_id, order_id, status, changed_by) VALUES ($1, $2, 'PENDING_PAYMENT', 'test')",
            tenant_id, order_id)
    return PlacedOrder(order_id, tenant_id, stock_id, quantity, total)


async def order_state(pool: asyncpg.Pool, order_id: uuid.UUID) -> asyncpg.Record:
    return await pool.fetchrow(
        "SELECT o.status, o.payment_status, o.refunded_amount, s.reserved, s.sold, s.available"
        " FROM orders o JOIN order_items i ON i.order_id = o.id JOIN stock s ON s.id = i.stock_id WHERE o.id = $1",
        order_id)
