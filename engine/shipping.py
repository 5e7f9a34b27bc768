"""The shipping service: methods for a destination, quotes for items or a cart, and the staff's
management of methods and their zones. Rules live in engine.domain.shipping_rules (the same ones
checkout prices with); rows in engine.shipping_store; this module loads, asks and stores.

Invariants: every read and write is scoped to the tenant; a cart is read only for its owner
(anyone else's cart id is CART_NOT_FOUND); a product of another tenant, deleted, or unknown is
PRODUCT_NOT_FOUND. Deleting a method deactivates it: orders keep pointing at it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence
from uuid import UUID

import asyncpg

from engine.checkout import ItemRequest
from engine.db import Database
from engine.domain.errors import NotFound, ProductNotFound, ShippingMethodNotFound, ValidationError
from engine.domain.money import money
from engine.domain.shipping_rules import (ItemSize, Parcel, ShippingMethod, ShippingOption, WeightBand, Zone,
                                          methods_for, pack, quote, validate_destination)
from engine.shipping_store import load_methods, method_from_row


@dataclass(frozen=True, slots=True)
class MethodOffer:
    method: ShippingMethod
    price: Decimal
    is_free: bool


@dataclass(frozen=True, slots=True)
class Goods:
    parcel: Parcel
    subtotal: Decimal


async def _cart_items(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID | None, cart_id: UUID) -> list[ItemRequest]:
    if user_id is None or not await conn.fetchval(
            "SELECT true FROM carts WHERE id = $1 AND tenant_id = $2 AND user_id = $3", cart_id, tenant_id, user_id):
        raise NotFound("Cart not found.", code="CART_NOT_FOUND")
    rows = await conn.fetch("SELECT product_id, variant_id, quantity FROM cart_items WHERE cart_id = $1", cart_id)
    return [ItemRequest(r["product_id"], r["quantity"], r["variant_id"]) for r in rows]


async def _goods(conn: asyncpg.Connection, tenant_id: UUID, items: Sequence[ItemRequest]) -> Goods:
    sizes, subtotal = [], Decimal(0)
    for item in items:
        row = await conn.fetchrow(
            "SELECT coalesce(v.price, p.price) AS price, p.weight_grams, p.length_cm, p.width_cm, p.height_cm,"
            " ($3::uuid IS NULL OR v.id IS NOT NULL) AS variant_ok"
            " FROM products p LEFT JOIN product_variants v ON v.id = $3 AND v.product_id = p.id AND v.deleted_at IS NULL"
            " WHERE p.id = $2 AND p.tenant_id = $1 AND p.deleted_at IS NULL", tenant_id, item.product_id, item.variant_id)
        if row is None or not row["variant_ok"]:
            raise ProductNotFound(extra={"productId": str(item.product_id)})
        sizes.append(ItemSize(row["weight_grams"], row["length_cm"], row["width_cm"], row["height_cm"], item.quantity))
        subtotal += row["price"] * item.quantity
    return Goods(pack(sizes), money(subtotal))


async def offers(db: Database, tenant_id: UUID, country: str, postal_code: str | None, *,
                 user_id: UUID | None = None, cart_id: UUID | None = None) -> list[MethodOffer]:
    """The active methods serving the destination with their price: for the cart's parcel and
    subtotal when `cart_id` is given, else the lightest parcel's price. ValidationError for a
    malformed destination, SHIPPING_NOT_AVAILABLE when none serves it."""
    async with db.connection() as conn:
        serving = methods_for(await load_methods(conn, tenant_id), country, postal_code)
        goods = None
        if cart_id is not None:
            goods = await _goods(conn, tenant_id, await _cart_items(conn, tenant_id, user_id, cart_id))
    result = []
    for m in serving:
        price = m.price_for(goods.parcel.weight_grams) if goods is not None else m.list_price
        if price is None:
            continue  # no band takes this parcel (or the method has no bands)
        free = goods is not None and m.is_free_for(goods.subtotal)
        result.append(MethodOffer(m, money(0) if free else price, free))
    if not result:
        methods_for([], country, postal_code)  # raises SHIPPING_NOT_AVAILABLE, worded as usual
    return result


async def calculate(db: Database, tenant_id: UUID, country: str, postal_code: str | None, *,
                    items: Sequence[ItemRequest] | None, user_id: UUID | None = None, cart_id: UUID | None = None,
                    today: dt.date) -> tuple[Parcel, list[ShippingOption]]:
    """The parcel of `items` (or of the cart) and every option that delivers it, priced and dated.
    INVALID_DESTINATION when none does, PRODUCT_NOT_FOUND, CART_NOT_FOUND, VALIDATION_ERROR."""
    validate_destination(country, postal_code, prefix="destination.")
    async with db.connection() as conn:
        if items is None:
            if cart_id is None:
                raise ValidationError(details={"items": ["items or cartId is required"]})
            items = await _cart_items(conn, tenant_id, user_id, cart_id)
        goods = await _goods(conn, tenant_id, items)
        methods = await load_methods(conn, tenant_id)
    return goods.parcel, quote(methods, country, postal_code, goods.parcel, goods.subtotal, today)


# ----------------------------------------------------------------------------- staff management

_COLUMNS = ("id, name, carrier, description, min_days, max_days, currency, free_threshold, zones, weight_bands,"
            " active, position, created_at")


@dataclass(frozen=True, slots=True)
class StoredZone:
    countries: tuple[str, ...]                  # as staff entered them, in their order
    postal_ranges: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class StaffMethod:
    """A shipping method as staff manage it: every stored field, inactive ones included, zones'
    countries in the order staff entered them (the domain's ShippingMethod keeps them as a set)."""

    id: UUID
    name: str
    carrier: str
    description: str | None
    min_days: int
    max_days: int
    currency: str
    free_threshold: Decimal | None
    zones: tuple[StoredZone, ...]
    weight_bands: tuple[WeightBand, ...]
    active: bool
    position: int
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: Any) -> "StaffMethod":
        zones = tuple(StoredZone(tuple(z.get("countries") or ()),
                                 tuple((str(a), str(b)) for a, b in (z.get("postalRanges") or ())))
                      for z in row["zones"] or ())
        bands = tuple(WeightBand(b.get("maxGrams"), Decimal(str(b["price"]))) for b in row["weight_bands"] or ())
        return cls(row["id"], row["name"], row["carrier"], row["description"], row["min_days"], row["max_days"],
                   row["currency"], row["free_threshold"], zones, bands, row["active"], row["position"],
                   row["created_at"])
EDITABLE = ("name", "carrier", "description", "min_days", "max_days", "currency", "free_threshold", "zones",
            "weight_bands", "active", "position")


def check_method(values: dict[str, Any]) -> None:
    """Refuse a method the rules could not use (ValidationError naming the field)."""
    try:
        method = method_from_row({**values, "id": "new"})
    except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
        raise ValidationError(details={"zones": [str(exc)]}) from None
    if method.max_days < method.min_days:
        raise ValidationError(details={"maxDays": ["must be at least minDays"]})
    for zone in method.zones:
        _check_zone(zone)
    if any(b.price < 0 for b in method.weight_bands):
        raise ValidationError(details={"weightBands": ["prices must not be negative"]})


def _check_zone(zone: Zone) -> None:
    for country in zone.countries:
        validate_destination(country, None, prefix="zones.")


async def list_all(db: Database, tenant_id: UUID) -> list[StaffMethod]:
    async with db.connection() as conn:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM shipping_methods WHERE tenant_id = $1"
                                " ORDER BY position, name, id", tenant_id)
    return [StaffMethod.from_row(r) for r in rows]


async def create_method(db: Database, tenant_id: UUID, values: dict[str, Any]) -> StaffMethod:
    check_method(values)
    names = [k for k in EDITABLE if k in values]
    async with db.transaction() as conn:
        return StaffMethod.from_row(await conn.fetchrow(
            f"INSERT INTO shipping_methods (tenant_id, {', '.join(names)})"
            f" VALUES ($1, {', '.join(f'${i + 2}' for i in range(len(names)))}) RETURNING {_COLUMNS}",
            tenant_id, *[values[k] for k in names]))


async def update_method(db: Database, tenant_id: UUID, method_id: UUID, changes: dict[str, Any]) -> StaffMethod:
    """Apply `changes` (only EDITABLE keys); the result must still be a usable method."""
    async with db.transaction() as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM shipping_methods WHERE id = $1 AND tenant_id = $2"
                                  " FOR UPDATE", method_id, tenant_id)
        if row is None:
            raise ShippingMethodNotFound()
        merged = {**dict(row), **changes}
        check_method(merged)
        names = [k for k in EDITABLE if k in changes]
        if not names:
            return StaffMethod.from_row(row)
        sets = ", ".join(f"{k} = ${i + 3}" for i, k in enumerate(names))
        return StaffMethod.from_row(await conn.fetchrow(
            f"UPDATE shipping_methods SET {sets} WHERE id = $1 AND tenant_id = $2 RETURNING {_COLUMNS}",
            method_id, tenant_id, *[changes[k] for k in names]))


async def deactivate_method(db: Database, tenant_id: UUID, method_id: UUID) -> None:
    async with db.transaction() as conn:
        if not await conn.fetchval("UPDATE shipping_methods SET active = false WHERE id = $1 AND tenant_id = $2"
                                   " RETURNING true", method_id, tenant_id):
            raise ShippingMethodNotFound()
