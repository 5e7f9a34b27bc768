"""Coupons as stored: finding them for a cart, and the staff's management of them.

The rules (validity window, limits, minimum order, stacking, the discount itself) live in
engine.domain.pricing; this module only reads and writes rows and hands pricing `Coupon` values that
carry the caller's own usage count.

Invariants:
- Codes are case-insensitive for customers and stored upper case (`coupons.code` CHECK):
  every lookup goes through `normalize_code`.
- Coupons are never deleted: orders and redemptions refer to them. "Delete" deactivates.
- `used_count` and `coupon_redemptions` are written by checkout when an order uses a coupon;
  staff may lower `usage_limit` but never below `used_count`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from engine.db import Database
from engine.domain.errors import Conflict, CouponNotFound, InvalidCoupon, ValidationError
from engine.domain.money import money
from engine.domain.pricing import Coupon

# Coupon fields staff may change after creation.
EDITABLE = ("active", "ends_at", "usage_limit")


@dataclass(frozen=True, slots=True)
class StoredCoupon:
    id: UUID
    coupon: Coupon            # what pricing needs, with used_by_user of the user it was read for
    created_at: dt.datetime

    @property
    def code(self) -> str:
        return self.coupon.code


def normalize_code(code: str) -> str:
    return code.strip().upper()


def invalid(code: str) -> InvalidCoupon:
    return InvalidCoupon(extra={"couponCode": normalize_code(code)[:64], "reason": "UNKNOWN_CODE"})


def not_on_cart(code: str) -> CouponNotFound:
    return CouponNotFound("This coupon is not applied to your cart.", extra={"couponCode": normalize_code(code)[:64]})


_COLUMNS = ("c.id, c.code, c.kind, c.value, c.starts_at, c.ends_at, c.min_order, c.usage_limit, c.used_count,"
            " c.per_user_limit, c.active, c.created_at")


def _stored(row: asyncpg.Record, used_by_user: int = 0) -> StoredCoupon:
    return StoredCoupon(
        id=row["id"], created_at=row["created_at"],
        coupon=Coupon(code=row["code"], kind=row["kind"], value=row["value"], starts_at=row["starts_at"],
                      ends_at=row["ends_at"], min_order=row["min_order"], usage_limit=row["usage_limit"],
                      used_count=row["used_count"], per_user_limit=row["per_user_limit"],
                      used_by_user=used_by_user, active=row["active"]))


async def find_for_user(conn: asyncpg.Connection, tenant_id: UUID, code: str, user_id: UUID) -> StoredCoupon | None:
    """The tenant's coupon with this code (any case), with the user's redemption count."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, (SELECT count(*) FROM coupon_redemptions r WHERE r.coupon_id = c.id"
        "  AND r.user_id = $3)::int AS used_by_user FROM coupons c WHERE c.tenant_id = $1 AND c.code = $2",
        tenant_id, normalize_code(code), user_id)
    return None if row is None else _stored(row, row["used_by_user"])


async def load_cart_coupons(conn: asyncpg.Connection, tenant_id: UUID, cart_id: UUID,
                            user_id: UUID) -> tuple[StoredCoupon, ...]:
    """The coupons applied to the cart, in the order they were applied."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS}, (SELECT count(*) FROM coupon_redemptions r WHERE r.coupon_id = c.id"
        "  AND r.user_id = $3)::int AS used_by_user"
        " FROM cart_coupons cc JOIN coupons c ON c.id = cc.coupon_id"
        " WHERE cc.cart_id = $1 AND c.tenant_id = $2 ORDER BY cc.added_at, c.code",
        cart_id, tenant_id, user_id)
    return tuple(_stored(r, r["used_by_user"]) for r in rows)


# ----------------------------------------------------------------------------- staff side

async def create_coupon(db: Database, tenant_id: UUID, *, code: str, kind: str, value: Decimal,
                        starts_at: dt.datetime | None = None, ends_at: dt.datetime | None = None,
                        min_order: Decimal | None = None, usage_limit: int | None = None,
                        per_user_limit: int | None = None, active: bool = True) -> StoredCoupon:
    """A new coupon; a code the tenant already has is CONFLICT."""
    if kind == "PERCENTAGE" and value > 100:
        raise ValidationError("A percentage coupon is at most 100.", details={"value": ["at most 100 for PERCENTAGE"]})
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise ValidationError("endsAt must be after startsAt.", details={"endsAt": ["must be after startsAt"]})
    async with db.transaction() as conn:
        try:
            row = await conn.fetchrow(
                "INSERT INTO coupons AS c (tenant_id, code, kind, value, starts_at, ends_at, min_order, usage_limit,"
                " per_user_limit, active) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                f" RETURNING {_COLUMNS}", tenant_id, normalize_code(code), kind, money(value), starts_at, ends_at,
                None if min_order is None else money(min_order), usage_limit, per_user_limit, active)
        except asyncpg.UniqueViolationError:
            raise Conflict("A coupon with this code already exists.",
                           details={"code": ["already exists"]}) from None
    return _stored(row)


async def list_coupons(db: Database, tenant_id: UUID, *, page: int, page_size: int,
                       active: bool | None = None) -> tuple[list[StoredCoupon], int]:
    """One page of the tenant's coupons, newest first, and the total."""
    async with db.connection() as conn:
        total = await conn.fetchval(
            "SELECT count(*) FROM coupons c WHERE c.tenant_id = $1 AND ($2::boolean IS NULL OR c.active = $2)",
            tenant_id, active)
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM coupons c WHERE c.tenant_id = $1 AND ($2::boolean IS NULL OR c.active = $2)"
            " ORDER BY c.created_at DESC, c.id LIMIT $3 OFFSET $4", tenant_id, active, page_size,
            (page - 1) * page_size)
    return [_stored(r) for r in rows], total


async def get_coupon(db: Database, tenant_id: UUID, coupon_id: UUID) -> StoredCoupon:
    async with db.connection() as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM coupons c WHERE c.id = $1 AND c.tenant_id = $2",
                                  coupon_id, tenant_id)
    if row is None:
        raise CouponNotFound()
    return _stored(row)


async def update_coupon(db: Database, tenant_id: UUID, coupon_id: UUID, changes: dict[str, Any]) -> StoredCoupon:
    """Change `active`, `ends_at` (None: no end) or `usage_limit` (None: unlimited)."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    async with db.transaction() as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM coupons c WHERE c.id = $1 AND c.tenant_id = $2"
                                  " FOR UPDATE", coupon_id, tenant_id)
        if row is None:
            raise CouponNotFound()
        limit = changes.get("usage_limit")
        if limit is not None and limit < row["used_count"]:
            raise ValidationError("usageLimit cannot be below the times the coupon was already used.",
                                  details={"usageLimit": [f"must be at least {row['used_count']}"]})
        ends_at = changes.get("ends_at")
        if ends_at is not None and row["starts_at"] is not None and ends_at <= row["starts_at"]:
            raise ValidationError("endsAt must be after startsAt.", details={"endsAt": ["must be after startsAt"]})
        if not changes:
            return _stored(row)
        names = list(changes)
        sets = ", ".join(f"{name} = ${i + 3}" for i, name in enumerate(names))
        row = await conn.fetchrow(f"UPDATE coupons AS c SET {sets} WHERE c.id = $1 AND c.tenant_id = $2"
                                  f" RETURNING {_COLUMNS}", coupon_id, tenant_id, *(changes[n] for n in names))
    return _stored(row)


async def deactivate_coupon(db: Database, tenant_id: UUID, coupon_id: UUID) -> StoredCoupon:
    return await update_coupon(db, tenant_id, coupon_id, {"active": False})
