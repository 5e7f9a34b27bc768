"""Cart commands: add, change, remove lines; clear; apply and remove coupons.

Each command is one unit of work (`Database.transaction()`) that first locks the user's cart
row, so cart writes of one user are serialised across API processes too (the per-user actor
already serialises them inside one process). Every command answers with the fresh
`CartView`, so the caller prices exactly what was committed.

Quantity rules, checked on the line's resulting quantity, in this order:
1. at most `max_item_quantity` (a setting) and the product's own `max_per_order`
   -> MAX_QUANTITY_EXCEEDED (extra: maxQuantity);
2. at most the stock available now, for products that track inventory
   -> INSUFFICIENT_STOCK (extra: available). Nothing is reserved here: reservation happens
   at checkout, which checks again.
"""

from __future__ import annotations

import datetime as dt
from uuid import UUID

import asyncpg

from engine import coupons
from engine.cart import CartView, cart_of, clear_cart, load_cart, touch_cart
from engine.db import Database
from engine.domain.errors import (CartItemNotFound, InsufficientStock, MaxQuantityExceeded, ProductNotFound,
                           ProductUnavailable, ValidationError, VariantNotFound)


def check_quantity(quantity: int, *, max_item_quantity: int, max_per_order: int | None,
                   track_inventory: bool, available: int | None) -> None:
    """Raise the first rule `quantity` (the line's resulting quantity) breaks."""
    limit = max_item_quantity if max_per_order is None else min(max_item_quantity, max_per_order)
    if quantity > limit:
        raise MaxQuantityExceeded(f"At most {limit} of this item per order.", extra={"maxQuantity": limit})
    if track_inventory:
        left = max(available or 0, 0)
        if quantity > left:
            raise InsufficientStock(f"Only {left} available.", extra={"available": left})


async def _product(conn: asyncpg.Connection, tenant_id: UUID, product_id: UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT p.id, p.status, p.deleted_at IS NOT NULL AS deleted, p.track_inventory, p.max_per_order,"
        " EXISTS (SELECT 1 FROM product_variants v WHERE v.product_id = p.id AND v.tenant_id = p.tenant_id"
        "         AND v.deleted_at IS NULL) AS has_variants"
        " FROM products p WHERE p.id = $1 AND p.tenant_id = $2", product_id, tenant_id)
    if row is None:
        raise ProductNotFound()
    return row


async def _available(conn: asyncpg.Connection, tenant_id: UUID, product_id: UUID, variant_id: UUID | None) -> int:
    got = await conn.fetchval(
        "SELECT available FROM stock WHERE tenant_id = $1 AND product_id = $2"
        " AND variant_id IS NOT DISTINCT FROM $3", tenant_id, product_id, variant_id)
    return got or 0


async def add_item(db: Database, tenant_id: UUID, user_id: UUID, *, product_id: UUID, variant_id: UUID | None,
                   quantity: int, max_item_quantity: int) -> tuple[CartView, UUID]:
    """Add `quantity` of the product (variant) to the cart; an existing line grows.

    A product with live variants needs `variant_id` (VALIDATION_ERROR otherwise); a variant
    must belong to the product (VARIANT_NOT_FOUND). DRAFT, ARCHIVED and deleted products are
    PRODUCT_UNAVAILABLE. Returns the cart and the id of the line that holds the item."""
    async with db.transaction() as conn:
        cart = await cart_of(conn, tenant_id, user_id, lock=True)
        product = await _product(conn, tenant_id, product_id)
        if variant_id is not None:
            found = await conn.fetchval(
                "SELECT id FROM product_variants WHERE id = $1 AND product_id = $2 AND tenant_id = $3"
                " AND deleted_at IS NULL", variant_id, product_id, tenant_id)
            if found is None:
                raise VariantNotFound()
        elif product["has_variants"]:
            raise ValidationError("This product has variants: choose one.",
                                  details={"variantId": ["required for a product with variants"]})
        if product["deleted"] or product["status"] != "ACTIVE":
            raise ProductUnavailable()
        existing = await conn.fetchrow(
            "SELECT id, quantity FROM cart_items WHERE cart_id = $1 AND product_id = $2"
            " AND variant_id IS NOT DISTINCT FROM $3", cart["id"], product_id, variant_id)
        new_quantity = quantity + (existing["quantity"] if existing else 0)
        check_quantity(new_quantity, max_item_quantity=max_item_quantity, max_per_order=product["max_per_order"],
                       track_inventory=product["track_inventory"],
                       available=await _available(conn, tenant_id, product_id, variant_id))
        if existing is not None:
            line_id = existing["id"]
            await conn.execute("UPDATE cart_items SET quantity = $2 WHERE id = $1", line_id, new_quantity)
        else:
            line_id = await conn.fetchval(
                "INSERT INTO cart_items (tenant_id, cart_id, product_id, variant_id, quantity)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING id", tenant_id, cart["id"], product_id, variant_id, quantity)
        await touch_cart(conn, cart["id"])
        return await load_cart(conn, tenant_id, user_id), line_id


async def update_item(db: Database, tenant_id: UUID, user_id: UUID, line_id: UUID, *, quantity: int,
                      max_item_quantity: int) -> CartView:
    """Set a line's quantity (same rules as adding). Another user's line: CART_ITEM_NOT_FOUND."""
    async with db.transaction() as conn:
        cart = await cart_of(conn, tenant_id, user_id, lock=True)
        view = await load_cart(conn, tenant_id, user_id)
        line = view.line(line_id)
        if line is None:
            raise CartItemNotFound()
        if quantity > line.quantity and not line.purchasable:
            raise ProductUnavailable()
        # Lowering a quantity is always allowed (the customer is fixing an over-full line);
        # only growth is checked against the limits and the stock.
        if quantity > line.quantity:
            check_quantity(quantity, max_item_quantity=max_item_quantity, max_per_order=line.max_per_order,
                           track_inventory=line.track_inventory, available=line.stock_available)
        await conn.execute("UPDATE cart_items SET quantity = $2 WHERE id = $1 AND cart_id = $3",
                           line_id, quantity, cart["id"])
        await touch_cart(conn, cart["id"])
        return await load_cart(conn, tenant_id, user_id)


async def remove_item(db: Database, tenant_id: UUID, user_id: UUID, line_id: UUID) -> CartView:
    async with db.transaction() as conn:
        cart = await cart_of(conn, tenant_id, user_id, lock=True)
        gone = await conn.fetchval("DELETE FROM cart_items WHERE id = $1 AND cart_id = $2 AND tenant_id = $3"
                                   " RETURNING id", line_id, cart["id"], tenant_id)
        if gone is None:
            raise CartItemNotFound()
        await touch_cart(conn, cart["id"])
        return await load_cart(conn, tenant_id, user_id)


async def empty_cart(db: Database, tenant_id: UUID, user_id: UUID) -> int:
    """Remove every line and coupon; returns the number of lines removed."""
    async with db.transaction() as conn:
        cart = await cart_of(conn, tenant_id, user_id, lock=True)
        return await clear_cart(conn, cart["id"])


async def read_cart(db: Database, tenant_id: UUID, user_id: UUID) -> CartView:
    async with db.transaction() as conn:
        return await load_cart(conn, tenant_id, user_id)


async def apply_coupon(db: Database, tenant_id: UUID, user_id: UUID, code: str, *, now: dt.datetime) -> CartView:
    """Apply a coupon to the cart, if it is valid for this cart now (INVALID_COUPON otherwise)."""
    async with db.transaction() as conn:
        cart = await cart_of(conn, tenant_id, user_id, lock=True)
        view = await load_cart(conn, tenant_id, user_id)
        coupon = await coupons.find_for_user(conn, tenant_id, code, user_id)
        if coupon is None:
            raise coupons.invalid(code)
        view.check_coupon(coupon, now=now)
        await conn.execute("INSERT INTO cart_coupons (cart_id, coupon_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                           cart["id"], coupon.id)
        await touch_cart(conn, cart["id"])
        return await load_cart(conn, tenant_id, user_id)


async def remove_coupon(db: Database, tenant_id: UUID, user_id: UUID, code: str) -> CartView:
    """Take a coupon off the cart. A code that is not on the cart: COUPON_NOT_FOUND."""
    async with db.transaction() as conn:
        cart = await cart_of(conn, tenant_id, user_id, lock=True)
        gone = await conn.fetchval(
            "DELETE FROM cart_coupons cc USING coupons c WHERE cc.cart_id = $1 AND cc.coupon_id = c.id"
            " AND c.tenant_id = $2 AND c.code = $3 RETURNING cc.coupon_id", cart["id"], tenant_id, code.strip().upper())
        if gone is None:
            raise coupons.not_on_cart(code)
        await touch_cart(conn, cart["id"])
        return await load_cart(conn, tenant_id, user_id)
