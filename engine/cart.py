"""The cart aggregate, as the rest of the engine reads it: `load_cart` and `clear_cart`.

A cart belongs to exactly one user of one tenant (`carts.user_id` is unique) and is created on
first use, so every user always has one. Its lines hold only product, variant and quantity:
name, price, status and stock are read live from the catalogue each time, so a cart never
shows a stale price and checkout prices exactly what `GET /cart` showed.

Invariants:
- Every query filters on tenant_id; a cart line is found through its cart, so another user's
  line does not exist for the caller.
- One line per (product, variant): adding again adds to that line's quantity.
- `CartView` is a snapshot: plain values, no connection, usable by the pure pricing rules.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from engine.coupons import StoredCoupon, load_cart_coupons
from engine.domain.money import money
from engine.domain.pricing import Coupon, PricedLine, Quote, check_coupon, check_stacking, price


@dataclass(frozen=True, slots=True)
class CartLine:
    """One cart line joined with its product, variant and stock row, as of the read."""

    id: UUID
    product_id: UUID
    variant_id: UUID | None
    stock_id: UUID | None              # the stock row of the product (no variant) or the variant
    product_name: str
    sku: str                           # the variant's SKU for a variant line, else the product's
    slug: str
    thumbnail_url: str | None
    status: str                        # stored product status: ACTIVE | DRAFT | ARCHIVED
    deleted: bool                      # product or variant soft-deleted
    unit_price: Decimal                # variant price for a variant line, else product price
    product_price: Decimal             # the product's own price for this buyer (engine.price_lists)
    compare_at_price: Decimal | None
    currency: str
    quantity: int
    track_inventory: bool
    stock_available: int | None        # None when the product does not track inventory
    max_per_order: int | None
    commission_percentage: Decimal
    career_points_percentage: Decimal
    variant_attributes: dict[str, str] | None
    weight_grams: int | None
    length_cm: Decimal | None
    width_cm: Decimal | None
    height_cm: Decimal | None
    added_at: dt.datetime

    @property
    def purchasable(self) -> bool:
        """Can be bought at all (stock aside): live and ACTIVE."""
        return self.status == "ACTIVE" and not self.deleted

    @property
    def total_price(self) -> Decimal:
        return self.unit_price * self.quantity

    def pricing_line(self) -> PricedLine:
        return PricedLine(line_id=self.id, product_id=self.product_id, variant_id=self.variant_id,
                          unit_price=self.unit_price, quantity=self.quantity,
                          commission_percentage=self.commission_percentage,
                          career_points_percentage=self.career_points_percentage)


@dataclass(frozen=True, slots=True)
class CartView:
    """A user's cart at one moment: lines in the order they were added, and applied coupons."""

    id: UUID
    user_id: UUID
    lines: tuple[CartLine, ...]
    coupons: tuple[Coupon, ...]        # in the order they were applied
    coupon_ids: dict[str, UUID]        # coupon code -> coupons.id (to record redemptions)
    updated_at: dt.datetime
    version: int = 0                   # carts.version when read: every cart write bumps it

    @property
    def is_empty(self) -> bool:
        return not self.lines

    @property
    def item_count(self) -> int:
        return len(self.lines)

    @property
    def total_quantity(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def unavailable(self) -> tuple[CartLine, ...]:
        return tuple(line for line in self.lines if not line.purchasable)

    def check_coupon(self, stored: StoredCoupon, *, now: dt.datetime) -> bool:
        """Raise InvalidCoupon if the coupon cannot join this cart now; False if it already has."""
        if stored.code in self.coupon_ids:
            return False
        check_stacking((c.kind for c in self.coupons), stored.coupon)
        check_coupon(stored.coupon, money(sum((line.total_price for line in self.lines), Decimal(0))), now)
        return True

    def pricing_lines(self) -> list[PricedLine]:
        """The lines as engine.domain.pricing sees them (pass to `pricing.price`)."""
        return [line.pricing_line() for line in self.lines]

    def quote(self, *, tax_rate: Decimal, now: dt.datetime, shipping: Decimal | None = None,
              strict: bool = False) -> Quote:
        """Price the cart. Showing it: lenient (a coupon that stopped being valid is left out).
        Checking out: `strict=True`, so an invalid coupon is INVALID_COUPON."""
        return price(self.pricing_lines(), self.coupons, shipping, tax_rate, now, strict=strict)

    def line(self, line_id: UUID) -> CartLine | None:
        return next((line for line in self.lines if line.id == line_id), None)


_LINE_COLUMNS = """
       ci.id, ci.product_id, ci.variant_id, ci.quantity, ci.added_at,
       s.id AS stock_id, s.available AS available,
       p.name AS product_name, p.slug, coalesce(v.sku, p.sku) AS sku, p.status,
       (p.deleted_at IS NOT NULL OR v.deleted_at IS NOT NULL) AS deleted,
       buyer_price(ci.tenant_id, (SELECT bc.user_id FROM carts bc WHERE bc.id = ci.cart_id), p.id, v.id,
                   coalesce(v.price, p.price), now()) AS unit_price,
       buyer_price(ci.tenant_id, (SELECT bc.user_id FROM carts bc WHERE bc.id = ci.cart_id), p.id, NULL,
                   p.price, now()) AS product_price, p.compare_at_price, p.currency,
       p.track_inventory, p.max_per_order, p.commission_percentage, p.career_points_percentage,
       v.attributes AS variant_attributes, p.weight_grams, p.length_cm, p.width_cm, p.height_cm,
       (SELECT i.thumbnail_url FROM product_images i WHERE i.product_id = p.id AND i.tenant_id = p.tenant_id
         ORDER BY i.is_primary DESC, i.position, i.id LIMIT 1) AS thumbnail_url"""
_LINE_JOINS = """
  JOIN products p ON p.id = ci.product_id AND p.tenant_id = ci.tenant_id
  LEFT JOIN product_variants v ON v.id = ci.variant_id AND v.tenant_id = ci.tenant_id
  LEFT JOIN stock s ON s.product_id = ci.product_id AND s.tenant_id = ci.tenant_id
                   AND s.variant_id IS NOT DISTINCT FROM ci.variant_id"""

_LINES = f"""
SELECT {_LINE_COLUMNS}
  FROM cart_items ci {_LINE_JOINS}
 WHERE ci.cart_id = $1 AND ci.tenant_id = $2
 ORDER BY ci.added_at, ci.id
"""

def cart_with_lines_query(extra_columns: str = "", extra_joins: str = "") -> str:
    """Checkout's read of the cart: the cart row (`cart_id`, `cart_updated_at`, `cart_version`,
    `has_coupons`) and its lines in one round trip, no row for an empty or missing cart. `$1` is
    the tenant, `$2` the user, `c` the cart; the caller may add columns and joins of its own."""
    return f"""
SELECT c.id AS cart_id, c.updated_at AS cart_updated_at, c.version AS cart_version,
       EXISTS (SELECT 1 FROM cart_coupons cc WHERE cc.cart_id = c.id) AS has_coupons, {_LINE_COLUMNS}
       {"," if extra_columns else ""} {extra_columns}
  FROM carts c
  JOIN cart_items ci ON ci.cart_id = c.id AND ci.tenant_id = c.tenant_id {_LINE_JOINS} {extra_joins}
 WHERE c.tenant_id = $1 AND c.user_id = $2
 ORDER BY ci.added_at, ci.id
"""


def _attributes(raw: Any) -> dict[str, str] | None:
    if not isinstance(raw, dict):  # catalogue stores an object; anything else shows as none
        return None
    return {str(k): v if isinstance(v, str) else str(v) for k, v in raw.items()}


def _line(r: asyncpg.Record) -> CartLine:
    tracked = r["track_inventory"]
    return CartLine(
        id=r["id"], product_id=r["product_id"], variant_id=r["variant_id"], stock_id=r["stock_id"],
        product_name=r["product_name"], sku=r["sku"], slug=r["slug"], thumbnail_url=r["thumbnail_url"],
        status=r["status"], deleted=r["deleted"], unit_price=r["unit_price"], product_price=r["product_price"],
        compare_at_price=r["compare_at_price"], currency=r["currency"], quantity=r["quantity"],
        track_inventory=tracked, stock_available=(r["available"] or 0) if tracked else None,
        max_per_order=r["max_per_order"], commission_percentage=r["commission_percentage"],
        career_points_percentage=r["career_points_percentage"],
        variant_attributes=_attributes(r["variant_attributes"]), weight_grams=r["weight_grams"],
        length_cm=r["length_cm"], width_cm=r["width_cm"], height_cm=r["height_cm"], added_at=r["added_at"])


async def cart_of(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, *, lock: bool = False) -> asyncpg.Record:
    """The user's cart row (id, updated_at, version), created on first use; `lock` takes its row lock,
    which serialises cart writes of one user across API processes."""
    row = await conn.fetchrow(
        "SELECT id, updated_at, version FROM carts WHERE tenant_id = $1 AND user_id = $2"
        + (" FOR UPDATE" if lock else ""), tenant_id, user_id)
    if row is not None:
        return row
    await conn.execute("INSERT INTO carts (tenant_id, user_id) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING",
                       tenant_id, user_id)
    return await conn.fetchrow(
        "SELECT id, updated_at, version FROM carts WHERE tenant_id = $1 AND user_id = $2"
        + (" FOR UPDATE" if lock else ""), tenant_id, user_id)


async def load_cart(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, *, lock: bool = False) -> CartView:
    """The user's cart with every line joined to the live catalogue and stock, and its coupons.

    Creates the (empty) cart if the user has none. Pass `lock=True` inside a transaction to
    hold the cart row until commit (checkout does, so a concurrent cart write waits)."""
    cart = await cart_of(conn, tenant_id, user_id, lock=lock)
    rows = await conn.fetch(_LINES, cart["id"], tenant_id)
    stored = await load_cart_coupons(conn, tenant_id, cart["id"], user_id)
    return CartView(id=cart["id"], user_id=user_id, lines=tuple(_line(r) for r in rows),
                    coupons=tuple(c.coupon for c in stored), coupon_ids={c.code: c.id for c in stored},
                    updated_at=cart["updated_at"], version=cart["version"])


async def load_cart_to_check_out(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, *, query: str,
                                 args: tuple[Any, ...] = ()) -> tuple[CartView | None, asyncpg.Record | None]:
    """`load_cart` for checkout, with `query` built by `cart_with_lines_query`, and its first
    row (the columns the caller added): (None, None) when the cart is empty or was never created.
    One round trip unless coupons are applied. Not locked: checkout's order statement writes
    only while the cart's version is still the one read here."""
    rows = await conn.fetch(query, tenant_id, user_id, *args)
    if not rows:
        return None, None
    first = rows[0]
    stored = (await load_cart_coupons(conn, tenant_id, first["cart_id"], user_id)) if first["has_coupons"] else ()
    return CartView(id=first["cart_id"], user_id=user_id, lines=tuple(_line(r) for r in rows),
                    coupons=tuple(c.coupon for c in stored), coupon_ids={c.code: c.id for c in stored},
                    updated_at=first["cart_updated_at"], version=first["cart_version"]), first



async def clear_cart(conn: asyncpg.Connection, cart_id: UUID) -> int:
    """Remove every line and coupon of the cart; returns the number of lines removed."""
    await conn.execute("DELETE FROM cart_coupons WHERE cart_id = $1", cart_id)
    removed = await conn.fetchval(
        "WITH gone AS (DELETE FROM cart_items WHERE cart_id = $1 RETURNING 1) SELECT count(*) FROM gone", cart_id)
    await touch_cart(conn, cart_id)
    return removed


async def touch_cart(conn: asyncpg.Connection, cart_id: UUID) -> None:
    """Every cart write ends here, under the cart row lock: a checkout that priced the cart at
    an older version will not write its order (engine.checkout)."""
    await conn.execute("UPDATE carts SET updated_at = now(), version = version + 1 WHERE id = $1", cart_id)
