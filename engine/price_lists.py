"""Personalised pricing: price lists for customer groups, managed by staff.

Invariants:
- the price rule lives in one SQL function, `buyer_price` (migration 0014): the catalogue
  (`personalise`), the cart lines and the checkout all ask it, so the price a signed-in buyer
  sees is the price the cart shows and the checkout charges;
- anonymous callers and API keys pay the list price and cost no query, so anonymous catalogue
  reads stay cacheable (the list price is the public one);
- prices are read live, as list prices are: a price list that starts or ends while an item sits
  in a cart changes that line's price exactly as a list-price change would (GET /cart shows the
  new price, the checkout charges it);
- a list's items name products (and variants) of its own tenant; writes replace a list's items
  whole, in one transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence
from uuid import UUID

import asyncpg

from engine.catalogue import views as v
from engine.db import Database
from engine.domain.errors import PriceListNotFound, ProductNotFound, UserNotFound, ValidationError, VariantNotFound
from engine.domain.principal import Principal


@dataclass(frozen=True, slots=True)
class Item:
    product_id: UUID
    variant_id: UUID | None
    price: Decimal


@dataclass(frozen=True, slots=True)
class PriceListSpec:
    name: str
    customer_group: str
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    items: Sequence[Item]


def check_spec(spec: PriceListSpec) -> None:
    """A window that ends after it starts; each product / variant priced at most once."""
    if spec.starts_at is not None and spec.ends_at is not None and spec.ends_at <= spec.starts_at:
        raise ValidationError(details={"endsAt": ["must be after startsAt"]})
    keys = [(i.product_id, i.variant_id) for i in spec.items]
    if len(set(keys)) != len(keys):
        raise ValidationError(details={"items": ["each product (or variant) at most once per list"]})


# ----------------------------------------------------------------------------- the catalogue's prices

async def personalise(conn: asyncpg.Connection, principal: Principal, views: Sequence[Any]) -> None:
    """Replace the list prices in catalogue views (v.Product, v.ProductDetail) with the prices
    `principal` pays, in place, with one query. Nothing to do for anonymous callers and keys."""
    if principal.user_id is None or not views:
        return
    slots: list[tuple[Any, UUID, UUID | None]] = []   # (struct holding a price, product, variant)
    for view in views:
        slots.append((view, view.id, None))
        for variant in getattr(view, "variants", ()):
            slots.append((variant, view.id, variant.id))
        for related in getattr(view, "related_products", ()):
            slots.append((related, related.id, None))
    rows = await conn.fetch(
        "SELECT buyer_price($1, $2, x.product_id, x.variant_id, x.list_price, now()) AS price"
        " FROM unnest($3::uuid[], $4::uuid[], $5::numeric[]) WITH ORDINALITY"
        " AS x(product_id, variant_id, list_price, n) ORDER BY x.n",
        principal.tenant_id, principal.user_id, [s[1] for s in slots], [s[2] for s in slots],
        [Decimal(s[0].price) for s in slots])
    for (holder, _, _), row in zip(slots, rows):
        holder.price = v.plain(row["price"])


# ----------------------------------------------------------------------------- staff: groups

async def _check_user(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> None:
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND tenant_id = $2)",
                               user_id, tenant_id):
        raise UserNotFound()


async def set_groups(db: Database, tenant_id: UUID, user_id: UUID, groups: Sequence[str]) -> list[str]:
    """The user's customer groups become exactly `groups`. USER_NOT_FOUND outside the tenant."""
    async with db.transaction() as conn:
        return await _set_groups(conn, tenant_id, user_id, groups)


async def _set_groups(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, groups: Sequence[str]) -> list[str]:
    await _check_user(conn, tenant_id, user_id)
    wanted = sorted(set(groups))
    await conn.execute("DELETE FROM customer_group_members WHERE user_id = $1 AND NOT (group_name = ANY($2::text[]))",
                       user_id, wanted)
    await conn.executemany(
        "INSERT INTO customer_group_members (tenant_id, group_name, user_id) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING", [(tenant_id, g, user_id) for g in wanted])
    return wanted


async def groups_of(db: Database, tenant_id: UUID, user_id: UUID) -> list[str]:
    async with db.connection() as conn:
        await _check_user(conn, tenant_id, user_id)
        return [r["group_name"] for r in await conn.fetch(
            "SELECT group_name FROM customer_group_members WHERE user_id = $1 ORDER BY group_name", user_id)]


# ----------------------------------------------------------------------------- staff: price lists

@dataclass(frozen=True, slots=True)
class PriceList:
    row: asyncpg.Record
    items: list[asyncpg.Record]


async def _check_items(conn: asyncpg.Connection, tenant_id: UUID, items: Sequence[Item]) -> None:
    products = [i.product_id for i in items]
    found = {r["id"] for r in await conn.fetch(
        "SELECT id FROM products WHERE tenant_id = $1 AND id = ANY($2::uuid[])", tenant_id, products)}
    missing = sorted({str(p) for p in products if p not in found})
    if missing:
        raise ProductNotFound(details={"items": [f"no such product: {', '.join(missing)}"]})
    pairs = [(i.product_id, i.variant_id) for i in items if i.variant_id is not None]
    if pairs:
        ok = {(r["product_id"], r["id"]) for r in await conn.fetch(
            "SELECT product_id, id FROM product_variants WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
            tenant_id, [p[1] for p in pairs])}
        bad = sorted({str(p[1]) for p in pairs if p not in ok})
        if bad:
            raise VariantNotFound(details={"items": [f"not a variant of its product: {', '.join(bad)}"]})


async def _write_items(conn: asyncpg.Connection, tenant_id: UUID, list_id: UUID, items: Sequence[Item]) -> None:
    await _check_items(conn, tenant_id, items)
    await conn.execute("DELETE FROM price_list_items WHERE price_list_id = $1", list_id)
    await conn.executemany(
        "INSERT INTO price_list_items (price_list_id, tenant_id, product_id, variant_id, price)"
        " VALUES ($1, $2, $3, $4, $5)", [(list_id, tenant_id, i.product_id, i.variant_id, i.price) for i in items])


async def create(db: Database, tenant_id: UUID, spec: PriceListSpec) -> PriceList:
    check_spec(spec)
    async with db.transaction() as conn:
        list_id = await conn.fetchval(
            "INSERT INTO price_lists (tenant_id, name, customer_group, starts_at, ends_at) VALUES ($1, $2, $3, $4, $5)"
            " RETURNING id", tenant_id, spec.name, spec.customer_group, spec.starts_at, spec.ends_at)
        await _write_items(conn, tenant_id, list_id, spec.items)
        return await _get(conn, tenant_id, list_id)


async def replace(db: Database, tenant_id: UUID, list_id: UUID, spec: PriceListSpec) -> PriceList:
    """The list becomes `spec` (PUT semantics: window and items whole)."""
    check_spec(spec)
    async with db.transaction() as conn:
        done = await conn.fetchval(
            "UPDATE price_lists SET name = $3, customer_group = $4, starts_at = $5, ends_at = $6, updated_at = now()"
            " WHERE id = $1 AND tenant_id = $2 RETURNING id", list_id, tenant_id, spec.name, spec.customer_group,
            spec.starts_at, spec.ends_at)
        if done is None:
            raise PriceListNotFound()
        await _write_items(conn, tenant_id, list_id, spec.items)
        return await _get(conn, tenant_id, list_id)


async def delete(db: Database, tenant_id: UUID, list_id: UUID) -> None:
    async with db.transaction() as conn:
        if await conn.fetchval("DELETE FROM price_lists WHERE id = $1 AND tenant_id = $2 RETURNING id",
                               list_id, tenant_id) is None:
            raise PriceListNotFound()


async def get(db: Database, tenant_id: UUID, list_id: UUID) -> PriceList:
    async with db.connection() as conn:
        return await _get(conn, tenant_id, list_id)


async def _get(conn: asyncpg.Connection, tenant_id: UUID, list_id: UUID) -> PriceList:
    row = await conn.fetchrow("SELECT * FROM price_lists WHERE id = $1 AND tenant_id = $2", list_id, tenant_id)
    if row is None:
        raise PriceListNotFound()
    items = await conn.fetch("SELECT product_id, variant_id, price FROM price_list_items WHERE price_list_id = $1"
                             " ORDER BY product_id, variant_id NULLS FIRST", list_id)
    return PriceList(row, list(items))


async def list_all(db: Database, tenant_id: UUID, *, page: int, page_size: int) -> tuple[list[PriceList], int]:
    async with db.connection() as conn:
        total = await conn.fetchval("SELECT count(*) FROM price_lists WHERE tenant_id = $1", tenant_id)
        ids = await conn.fetch("SELECT id FROM price_lists WHERE tenant_id = $1 ORDER BY created_at DESC, id"
                               " LIMIT $2 OFFSET $3", tenant_id, page_size, (page - 1) * page_size)
        return [await _get(conn, tenant_id, r["id"]) for r in ids], total
