"""Staff: customer groups and their price lists (personalised pricing, engine/price_lists.py).
Thin: parse, call the engine (which opens the transaction), render."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated
from uuid import UUID

import msgspec

from engine import price_lists
from engine.domain.errors import ValidationError
from engine.domain.money import to_api
from web import keys
from web.api import REQUIRED, Reply, Req, RouteTable
from web.envelope import Pagination

routes = RouteTable()

GroupName = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
_MAX_PRICE = Decimal("9999999999.99")
_STAFF = dict(auth=REQUIRED, permission="price_lists:write", policy="admin", tag="Price lists")


class ItemIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    product_id: UUID
    price: Decimal
    variant_id: UUID | None = None

    def __post_init__(self) -> None:
        if not (self.price.is_finite() and 0 <= self.price <= _MAX_PRICE
                and self.price == self.price.quantize(Decimal("0.01"))):
            raise ValueError(f"price must be from 0 to {_MAX_PRICE} with at most two decimals")


class PriceListIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    customer_group: GroupName
    items: Annotated[list[ItemIn], msgspec.Meta(max_length=10_000)] = []
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None


class ItemOut(msgspec.Struct, rename="camel"):
    product_id: str
    variant_id: str | None
    price: Decimal


class PriceListOut(msgspec.Struct, rename="camel"):
    id: str
    name: str
    customer_group: str
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    active: bool            # inside its validity window now
    items: list[ItemOut]
    created_at: dt.datetime
    updated_at: dt.datetime


class PriceListPage(msgspec.Struct, rename="camel"):
    price_lists: list[PriceListOut]


class PageQuery(msgspec.Struct, rename="camel"):
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20


class GroupsIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    groups: Annotated[list[GroupName], msgspec.Meta(max_length=50)]


class GroupsOut(msgspec.Struct, rename="camel"):
    user_id: str
    groups: list[str]


class Deleted(msgspec.Struct):
    id: str
    deleted: bool


def _aware(value: dt.datetime | None, name: str) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValidationError("Timestamps need a time zone (e.g. Z).", details={name: ["must include a time zone"]})
    return value


def _spec(b: PriceListIn) -> price_lists.PriceListSpec:
    return price_lists.PriceListSpec(
        name=b.name.strip() or b.name, customer_group=b.customer_group, starts_at=_aware(b.starts_at, "startsAt"),
        ends_at=_aware(b.ends_at, "endsAt"),
        items=[price_lists.Item(i.product_id, i.variant_id, i.price) for i in b.items])


def _out(p: price_lists.PriceList) -> PriceListOut:
    r, now = p.row, dt.datetime.now(dt.timezone.utc)
    active = (r["starts_at"] is None or r["starts_at"] <= now) and (r["ends_at"] is None or now < r["ends_at"])
    return PriceListOut(
        id=str(r["id"]), name=r["name"], customer_group=r["customer_group"], starts_at=r["starts_at"],
        ends_at=r["ends_at"], active=active, created_at=r["created_at"], updated_at=r["updated_at"],
        items=[ItemOut(product_id=str(i["product_id"]), variant_id=str(i["variant_id"]) if i["variant_id"] else None,
                       price=to_api(i["price"])) for i in p.items])


_WRITE_ERRORS = ("VALIDATION_ERROR", "PRODUCT_NOT_FOUND", "VARIANT_NOT_FOUND")


@routes.post("/admin/price-lists", body=PriceListIn, response=PriceListOut, status=201, errors=_WRITE_ERRORS,
             summary="Create a price list for a customer group", **_STAFF)
async def create_price_list(req: Req) -> PriceListOut:
    return _out(await price_lists.create(req.app[keys.DB], req.tenant_id, _spec(req.body)))


@routes.get("/admin/price-lists", query=PageQuery, response=PriceListPage, paginated=True,
            summary="Price lists, newest first", **_STAFF)
async def list_price_lists(req: Req) -> Reply:
    q: PageQuery = req.query
    lists, total = await price_lists.list_all(req.app[keys.DB], req.tenant_id, page=q.page, page_size=q.page_size)
    return Reply(PriceListPage(price_lists=[_out(p) for p in lists]),
                 meta={"pagination": Pagination.of(total, q.page, q.page_size)})


@routes.get("/admin/price-lists/{id}", response=PriceListOut, errors=("PRICE_LIST_NOT_FOUND",),
            summary="One price list", **_STAFF)
async def get_price_list(req: Req) -> PriceListOut:
    return _out(await price_lists.get(req.app[keys.DB], req.tenant_id, req.params["id"]))


@routes.put("/admin/price-lists/{id}", body=PriceListIn, response=PriceListOut,
            errors=(*_WRITE_ERRORS, "PRICE_LIST_NOT_FOUND"), summary="Replace a price list (window and items)",
            **_STAFF)
async def replace_price_list(req: Req) -> PriceListOut:
    return _out(await price_lists.replace(req.app[keys.DB], req.tenant_id, req.params["id"], _spec(req.body)))


@routes.delete("/admin/price-lists/{id}", response=Deleted, errors=("PRICE_LIST_NOT_FOUND",),
               summary="Delete a price list (its buyers pay the list price again)", **_STAFF)
async def delete_price_list(req: Req) -> Deleted:
    await price_lists.delete(req.app[keys.DB], req.tenant_id, req.params["id"])
    return Deleted(id=str(req.params["id"]), deleted=True)


@routes.put("/admin/users/{id}/customer-groups", body=GroupsIn, response=GroupsOut, errors=("USER_NOT_FOUND",),
            summary="Set a user's customer groups (which price lists apply to them)", **_STAFF)
async def set_customer_groups(req: Req) -> GroupsOut:
    groups = await price_lists.set_groups(req.app[keys.DB], req.tenant_id, req.params["id"], req.body.groups)
    return GroupsOut(user_id=str(req.params["id"]), groups=groups)


@routes.get("/admin/users/{id}/customer-groups", response=GroupsOut, errors=("USER_NOT_FOUND",),
            summary="A user's customer groups", **_STAFF)
async def get_customer_groups(req: Req) -> GroupsOut:
    groups = await price_lists.groups_of(req.app[keys.DB], req.tenant_id, req.params["id"])
    return GroupsOut(user_id=str(req.params["id"]), groups=groups)
