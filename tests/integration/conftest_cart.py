"""Arranging catalogue rows and coupons for cart tests, straight in the database (the
catalogue's own API is tested elsewhere; here it is only the cart's input)."""

from __future__ import annotations

import secrets
import uuid
from decimal import Decimal
from typing import Any

import asyncpg


async def make_product(pool: asyncpg.Pool, tenant_id: uuid.UUID, *, price: str = "2500", stock: int | None = 150,
                       status: str = "ACTIVE", max_per_order: int | None = None, track_inventory: bool = True,
                       commission: str = "0", points: str = "0", deleted: bool = False,
                       compare_at: str | None = None, name: str | None = None, thumbnail: bool = True) -> uuid.UUID:
    """A product (no variants) with a stock row of `stock` units on hand (None: no stock row)."""
    tag = secrets.token_hex(4)
    pid = await pool.fetchval(
        "INSERT INTO products (tenant_id, name, slug, price, compare_at_price, currency, sku, status, track_inventory,"
        " max_per_order, commission_percentage, career_points_percentage, weight_grams, deleted_at)"
        " VALUES ($1, $2, $3, $4, $5, 'RUB', $6, $7, $8, $9, $10, $11, 500, CASE WHEN $12 THEN now() END)"
        " RETURNING id", tenant_id, name or f"Product {tag}", f"product-{tag}", Decimal(price),
        None if compare_at is None else Decimal(compare_at), f"SKU-{tag}", status, track_inventory, max_per_order,
        Decimal(commission), Decimal(points), deleted)
    if stock is not None:
        await pool.execute("INSERT INTO stock (tenant_id, product_id, on_hand) VALUES ($1, $2, $3)", tenant_id, pid, stock)
    if thumbnail:
        await pool.execute(
            "INSERT INTO product_images (tenant_id, product_id, url, thumbnail_url, is_primary)"
            " VALUES ($1, $2, $3, $4, true)", tenant_id, pid, f"https://cdn.example/{tag}.jpg",
            f"https://cdn.example/{tag}-thumb.jpg")
    return pid


async def make_variant(pool: asyncpg.Pool, tenant_id: uuid.UUID, product_id: uuid.UUID, *, price: str = "3000",
                       stock: int = 10, attributes: dict[str, Any] | None = None) -> uuid.UUID:
    tag = secrets.token_hex(4)
    vid = await pool.fetchval(
        "INSERT INTO product_variants (tenant_id, product_id, name, sku, price, attributes)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING id", tenant_id, product_id, f"Variant {tag}",
        f"VAR-{tag}", Decimal(price), __import__("json").dumps(attributes or {"size": "L"}))
    await pool.execute("INSERT INTO stock (tenant_id, product_id, variant_id, on_hand) VALUES ($1, $2, $3, $4)",
                       tenant_id, product_id, vid, stock)
    return vid


async def make_coupon(pool: asyncpg.Pool, tenant_id: uuid.UUID, code: str, kind: str = "PERCENTAGE",
                      value: str = "10", **columns: Any) -> uuid.UUID:
    names = ["tenant_id", "code", "kind", "value", *columns]
    values = [tenant_id, code, kind, Decimal(value), *columns.values()]
    marks = ", ".join(f"${i + 1}" for i in range(len(values)))
    return await pool.fetchval(f"INSERT INTO coupons ({', '.join(names)}) VALUES ({marks}) RETURNING id", *values)
