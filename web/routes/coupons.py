"""Staff coupon management (`/api/v1/coupons`, permission `coupons:write`).

Coupons are never removed: DELETE deactivates, so redemptions keep pointing at a real row.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from engine import coupons
from engine.domain.errors import ValidationError
from engine.domain.money import to_api
from web import keys
from web.api import REQUIRED, Reply, Req, RouteTable
from web.envelope import Pagination
from web.routes.cart import CouponCode, Money

coupon_routes = RouteTable()

Amount = Decimal  # msgspec cannot bound a Decimal: `_amount` does
_MAX_AMOUNT = Decimal("9999999999.99")  # numeric(12,2)
Count = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
_COUPONS = dict(auth=REQUIRED, permission="coupons:write", tag="Coupons", policy="admin")


class CouponIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    code: CouponCode
    type: Literal["PERCENTAGE", "FIXED"]
    value: Amount
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    min_order_amount: Amount | None = None
    usage_limit: Count | None = None
    per_user_limit: Count | None = None
    active: bool = True


class CouponPatch(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    active: bool | msgspec.UnsetType = msgspec.UNSET
    ends_at: dt.datetime | None | msgspec.UnsetType = msgspec.UNSET      # null: no end
    usage_limit: Count | None | msgspec.UnsetType = msgspec.UNSET       # null: unlimited


class CouponOut(msgspec.Struct, rename="camel"):
    id: str
    code: str
    type: str
    value: Money
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    min_order_amount: Money | None
    usage_limit: int | None
    used_count: int
    per_user_limit: int | None
    active: bool
    created_at: dt.datetime


class CouponList(msgspec.Struct, rename="camel"):
    coupons: list[CouponOut]


class CouponQuery(msgspec.Struct, rename="camel"):
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20
    active: bool | None = None


def _aware(value: dt.datetime | None, name: str) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValidationError("Timestamps need a time zone (e.g. Z).", details={name: ["must include a time zone"]})
    return value


def _amount(value: Decimal | None, name: str) -> Decimal | None:
    if value is not None and not (value.is_finite() and Decimal("0.01") <= value <= _MAX_AMOUNT
                                  and value == value.quantize(Decimal("0.01"))):
        raise ValidationError("Invalid amount.", details={
            name: [f"must be from 0.01 to {_MAX_AMOUNT} with at most two decimal places"]})
    return value


def _coupon(s: coupons.StoredCoupon) -> CouponOut:
    c = s.coupon
    return CouponOut(id=str(s.id), code=c.code, type=c.kind, value=to_api(c.value), starts_at=c.starts_at,
                     ends_at=c.ends_at, min_order_amount=to_api(c.min_order), usage_limit=c.usage_limit,
                     used_count=c.used_count, per_user_limit=c.per_user_limit, active=c.active,
                     created_at=s.created_at)


@coupon_routes.post("/coupons", body=CouponIn, response=CouponOut, status=201,
                    errors=("VALIDATION_ERROR", "CONFLICT"), summary="Create a coupon", **_COUPONS)
async def create_coupon(req: Req) -> CouponOut:
    b: CouponIn = req.body
    stored = await coupons.create_coupon(
        req.app[keys.DB], req.tenant_id, code=b.code, kind=b.type, value=_amount(b.value, "value"),
        starts_at=_aware(b.starts_at, "startsAt"), ends_at=_aware(b.ends_at, "endsAt"),
        min_order=_amount(b.min_order_amount, "minOrderAmount"), usage_limit=b.usage_limit, per_user_limit=b.per_user_limit, active=b.active)
    return _coupon(stored)


@coupon_routes.get("/coupons", query=CouponQuery, response=CouponList, paginated=True,
                   summary="List coupons", **_COUPONS)
async def list_coupons(req: Req) -> Reply:
    q: CouponQuery = req.query
    items, total = await coupons.list_coupons(req.app[keys.DB], req.tenant_id, page=q.page, page_size=q.page_size,
                                              active=q.active)
    return Reply(CouponList(coupons=[_coupon(s) for s in items]),
                 meta={"pagination": Pagination.of(total, q.page, q.page_size)})


@coupon_routes.get("/coupons/{id}", response=CouponOut, errors=("COUPON_NOT_FOUND",), summary="One coupon",
                   **_COUPONS)
async def get_coupon(req: Req) -> CouponOut:
    return _coupon(await coupons.get_coupon(req.app[keys.DB], req.tenant_id, req.params["id"]))


@coupon_routes.patch("/coupons/{id}", body=CouponPatch, response=CouponOut,
                     errors=("VALIDATION_ERROR", "COUPON_NOT_FOUND"), summary="Change a coupon", **_COUPONS)
async def update_coupon(req: Req) -> CouponOut:
    b: CouponPatch = req.body
    changes = {name: getattr(b, name) for name in b.__struct_fields__ if getattr(b, name) is not msgspec.UNSET}
    if "ends_at" in changes:
        _aware(changes["ends_at"], "endsAt")
    return _coupon(await coupons.update_coupon(req.app[keys.DB], req.tenant_id, req.params["id"], changes))


@coupon_routes.delete("/coupons/{id}", response=CouponOut, errors=("COUPON_NOT_FOUND",),
                      summary="Deactivate a coupon (coupons are kept for the orders that used them)", **_COUPONS)
async def delete_coupon(req: Req) -> CouponOut:
    return _coupon(await coupons.deactivate_coupon(req.app[keys.DB], req.tenant_id, req.params["id"]))
