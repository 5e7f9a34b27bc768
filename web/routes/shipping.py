"""Shipping and tracking: methods and quotes as the storefront document shapes them, the staff's
management of methods (with their zones and weight bands), marking an order shipped, and the
order's tracking. Thin: parse, call engine.shipping / engine.tracking, render.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import msgspec

from engine import shipping as service
from engine import tracking
from engine.clock import utc_now
from engine.carrier import carrier_for
from engine.domain.errors import ValidationError
from engine.domain.money import to_api
from web import keys
from web.api import OPTIONAL, REQUIRED, Reply, Req, RouteTable
from web.envelope import Pagination

routes = RouteTable()

Money = Decimal
_MAX_MONEY = Decimal("9999999999.99")  # numeric(12,2)
Country = Annotated[str, msgspec.Meta(max_length=8)]        # the shape is checked by shipping_rules
PostalCode = Annotated[str, msgspec.Meta(max_length=32)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Days = Annotated[int, msgspec.Meta(ge=0, le=365)]
_STAFF = dict(auth=REQUIRED, permission="shipping:write", tag="Shipping", policy="admin")


def _number(value: Decimal | int) -> Decimal | int:
    """Sizes as JSON numbers: whole ones as integers (25), others with their decimals."""
    return int(value) if value == int(value) else value


def _check_amount(name: str, value: Decimal | None) -> None:
    if value is not None and not (value.is_finite() and 0 <= value <= _MAX_MONEY
                                  and value == value.quantize(Decimal("0.01"))):
        raise ValueError(f"{name} must be a number from 0 to {_MAX_MONEY} with at most 2 decimals")


# ----------------------------------------------------------------------------- storefront shapes

class MethodsQuery(msgspec.Struct, rename="camel"):
    country: Country
    postal_code: PostalCode | None = None
    cart_id: UUID | None = None


class EstimatedDays(msgspec.Struct):
    min: int
    max: int


class ShippingMethodOut(msgspec.Struct, rename="camel"):
    id: str
    name: str
    carrier: str
    description: str | None
    estimated_days: EstimatedDays
    price: Money
    currency: str
    is_free: bool
    free_threshold: Money | None


class ShippingMethodsResponse(msgspec.Struct, rename="camel"):
    methods: list[ShippingMethodOut]


class Destination(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    country: Country
    postal_code: PostalCode
    region: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    city: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class ItemIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    product_id: UUID
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    variant_id: UUID | None = None


class CalculateShippingRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    destination: Destination
    items: Annotated[list[ItemIn], msgspec.Meta(min_length=1, max_length=100)] | None = None
    cart_id: UUID | None = None


class DestinationOut(msgspec.Struct, rename="camel"):
    country: str
    postal_code: str


class Dimensions(msgspec.Struct):
    length: Decimal | int
    width: Decimal | int
    height: Decimal | int


class PackageOut(msgspec.Struct, rename="camel"):
    total_weight: int
    dimensions: Dimensions


class EstimatedDelivery(msgspec.Struct):
    min: str
    max: str


class OptionOut(msgspec.Struct, rename="camel"):
    method_id: str
    name: str
    carrier: str
    price: Money
    currency: str
    estimated_delivery: EstimatedDelivery
    is_free: bool


class CalculateShippingResponse(msgspec.Struct, rename="camel"):
    destination: DestinationOut
    package: PackageOut
    options: list[OptionOut]


@routes.get("/shipping/methods", query=MethodsQuery, response=ShippingMethodsResponse, auth=OPTIONAL,
            policy="shipping", paginated=True, errors=("VALIDATION_ERROR", "SHIPPING_NOT_AVAILABLE", "CART_NOT_FOUND"),
            tag="Shipping", summary="Shipping methods serving a destination")
async def list_methods(req: Req) -> Reply:
    q = req.query
    offers = await service.offers(req.app[keys.DB], req.tenant_id, q.country, q.postal_code,
                                  user_id=req.principal.user_id, cart_id=q.cart_id)
    return Reply(ShippingMethodsResponse(methods=[
        ShippingMethodOut(id=o.method.id, name=o.method.name, carrier=o.method.carrier,
                          description=o.method.description,
                          estimated_days=EstimatedDays(min=o.method.min_days, max=o.method.max_days),
                          price=to_api(o.price), currency=o.method.currency, is_free=o.is_free,
                          free_threshold=to_api(o.method.free_threshold))
        for o in offers]), meta={"pagination": Pagination.whole(len(offers))})


@routes.post("/shipping/calculate", body=CalculateShippingRequest, response=CalculateShippingResponse,
             auth=OPTIONAL, policy="shipping",
             errors=("VALIDATION_ERROR", "INVALID_DESTINATION", "PRODUCT_NOT_FOUND", "CART_NOT_FOUND"),
             tag="Shipping", summary="Shipping options, prices and dates for items or a cart")
async def calculate(req: Req) -> CalculateShippingResponse:
    b = req.body
    if (b.items is None) == (b.cart_id is None):
        raise ValidationError(details={"items": ["give items or cartId (exactly one)"]})
    items = None if b.items is None else [service.ItemRequest(i.product_id, i.quantity, i.variant_id) for i in b.items]
    parcel, options = await service.calculate(
        req.app[keys.DB], req.tenant_id, b.destination.country, b.destination.postal_code, items=items,
        user_id=req.principal.user_id, cart_id=b.cart_id, today=utc_now().date())
    return CalculateShippingResponse(
        destination=DestinationOut(country=b.destination.country, postal_code=b.destination.postal_code),
        package=PackageOut(total_weight=parcel.weight_grams, dimensions=Dimensions(
            length=_number(parcel.length), width=_number(parcel.width), height=_number(parcel.height))),
        options=[OptionOut(method_id=o.method_id, name=o.name, carrier=o.carrier, price=to_api(o.price),
                           currency=o.currency, is_free=o.is_free,
                           estimated_delivery=EstimatedDelivery(min=o.estimated_min.isoformat(),
                                                                max=o.estimated_max.isoformat()))
                 for o in options])


# ----------------------------------------------------------------------------- staff: methods and zones

class ZoneIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    countries: Annotated[list[Annotated[str, msgspec.Meta(min_length=2, max_length=2)]],
                         msgspec.Meta(min_length=1, max_length=300)]
    postal_ranges: Annotated[list[tuple[Annotated[str, msgspec.Meta(min_length=1, max_length=16)],
                                        Annotated[str, msgspec.Meta(min_length=1, max_length=16)]]],
                             msgspec.Meta(max_length=200)] = []


class BandIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    price: Money
    max_grams: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)] | None = None

    def __post_init__(self) -> None:
        _check_amount("price", self.price)


Zones = Annotated[list[ZoneIn], msgspec.Meta(max_length=100)]
Bands = Annotated[list[BandIn], msgspec.Meta(min_length=1, max_length=50)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Position = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Description = Annotated[str, msgspec.Meta(max_length=2000)]


class MethodIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    name: Name
    carrier: Name
    min_days: Days
    max_days: Days
    zones: Zones
    weight_bands: Bands
    description: Description | None = None
    currency: Currency | None = None
    free_threshold: Money | None = None
    active: bool = True
    position: Position = 0

    def __post_init__(self) -> None:
        _check_amount("freeThreshold", self.free_threshold)


class MethodPatch(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    carrier: Name | msgspec.UnsetType = msgspec.UNSET
    min_days: Days | msgspec.UnsetType = msgspec.UNSET
    max_days: Days | msgspec.UnsetType = msgspec.UNSET
    zones: Zones | msgspec.UnsetType = msgspec.UNSET
    weight_bands: Bands | msgspec.UnsetType = msgspec.UNSET
    description: Description | None | msgspec.UnsetType = msgspec.UNSET
    currency: Currency | msgspec.UnsetType = msgspec.UNSET
    free_threshold: Money | None | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET
    position: Position | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if isinstance(self.free_threshold, Decimal):
            _check_amount("freeThreshold", self.free_threshold)


class ZoneOut(msgspec.Struct, rename="camel"):
    countries: list[str]
    postal_ranges: list[list[str]]


class BandOut(msgspec.Struct, rename="camel"):
    max_grams: int | None
    price: Money


class StaffMethodOut(msgspec.Struct, rename="camel"):
    id: str
    name: str
    carrier: str
    description: str | None
    min_days: int
    max_days: int
    currency: str
    free_threshold: Money | None
    zones: list[ZoneOut]
    weight_bands: list[BandOut]
    active: bool
    position: int
    created_at: dt.datetime


class StaffMethodsResponse(msgspec.Struct, rename="camel"):
    methods: list[StaffMethodOut]


class Deleted(msgspec.Struct, rename="camel"):
    message: str
    id: str


def _stored(values: dict[str, Any]) -> dict[str, Any]:
    """Request fields (snake_case) as shipping_methods columns (jsonb in the 0001 format)."""
    out = dict(values)
    if "zones" in out:
        out["zones"] = [{"countries": z.countries, "postalRanges": [list(r) for r in z.postal_ranges]}
                        for z in out["zones"]]
    if "weight_bands" in out:
        out["weight_bands"] = [{"maxGrams": b.max_grams, "price": str(b.price)} for b in out["weight_bands"]]
    return out


def _staff_method(m: service.StaffMethod) -> StaffMethodOut:
    return StaffMethodOut(
        id=str(m.id), name=m.name, carrier=m.carrier, description=m.description, min_days=m.min_days,
        max_days=m.max_days, currency=m.currency, free_threshold=to_api(m.free_threshold),
        zones=[ZoneOut(countries=list(z.countries), postal_ranges=[[a, b] for a, b in z.postal_ranges])
               for z in m.zones],
        weight_bands=[BandOut(max_grams=b.max_grams, price=to_api(b.price)) for b in m.weight_bands],
        active=m.active, position=m.position, created_at=m.created_at)


@routes.get("/admin/shipping/methods", response=StaffMethodsResponse, errors=("FORBIDDEN",),
            summary="Staff: every shipping method, inactive ones included", **_STAFF)
async def staff_list_methods(req: Req) -> StaffMethodsResponse:
    return StaffMethodsResponse(methods=[_staff_method(r) for r in await service.list_all(req.app[keys.DB],
                                                                                           req.tenant_id)])


@routes.post("/shipping/methods", body=MethodIn, response=StaffMethodOut, status=201,
             errors=("VALIDATION_ERROR", "FORBIDDEN"), summary="Staff: create a shipping method with its zones",
             **_STAFF)
async def create_method(req: Req) -> StaffMethodOut:
    values = {f: getattr(req.body, f) for f in req.body.__struct_fields__}
    if values["currency"] is None:
        values["currency"] = req.app[keys.SETTINGS].currency
    return _staff_method(await service.create_method(req.app[keys.DB], req.tenant_id, _stored(values)))


@routes.patch("/shipping/methods/{id}", body=MethodPatch, response=StaffMethodOut,
              errors=("VALIDATION_ERROR", "SHIPPING_METHOD_NOT_FOUND", "FORBIDDEN"),
              summary="Staff: change a shipping method, its zones or its weight bands", **_STAFF)
async def update_method(req: Req) -> StaffMethodOut:
    changes = {f: v for f in req.body.__struct_fields__ if (v := getattr(req.body, f)) is not msgspec.UNSET}
    return _staff_method(await service.update_method(req.app[keys.DB], req.tenant_id, req.params["id"],
                                                     _stored(changes)))


@routes.delete("/shipping/methods/{id}", response=Deleted, errors=("SHIPPING_METHOD_NOT_FOUND", "FORBIDDEN"),
               summary="Staff: retire a shipping method (orders keep their snapshot)", **_STAFF)
async def delete_method(req: Req) -> Deleted:
    await service.deactivate_method(req.app[keys.DB], req.tenant_id, req.params["id"])
    return Deleted(message="Shipping method deleted", id=str(req.params["id"]))


# ----------------------------------------------------------------------------- shipping an order, tracking

class ShipRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    carrier: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    tracking_number: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class TrackingEventOut(msgspec.Struct):
    status: str
    location: str | None
    description: str
    timestamp: dt.datetime


class TrackingResponse(msgspec.Struct, rename="camel"):
    order_id: str
    order_number: str
    status: str
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    estimated_delivery: str | None
    events: list[TrackingEventOut]
    shipped_at: dt.datetime | None
    delivered_at: dt.datetime | None


def _tracking(t: tracking.Tracking) -> TrackingResponse:
    o = t.order
    return TrackingResponse(
        order_id=str(o.order_id), order_number=o.order_number, status=o.status, carrier=o.carrier,
        tracking_number=o.tracking_number, tracking_url=o.tracking_url,
        estimated_delivery=o.estimated_delivery.isoformat() if o.estimated_delivery else None,
        events=[TrackingEventOut(status=e.status, location=e.location, description=e.description,
                                 timestamp=e.occurred_at) for e in t.events],
        shipped_at=o.shipped_at, delivered_at=o.delivered_at)


@routes.post("/admin/orders/{id}/ship", body=ShipRequest, response=TrackingResponse, auth=REQUIRED,
             permission="orders:write", policy="orders",
             errors=("VALIDATION_ERROR", "ORDER_NOT_FOUND", "INVALID_STATUS_TRANSITION", "FORBIDDEN"),
             tag="Orders", summary="Staff: hand the parcel to the carrier (PROCESSING or PAID -> SHIPPED)")
async def ship_order(req: Req) -> TrackingResponse:
    db = req.app[keys.DB]
    await tracking.ship_order(db, req.principal, req.params["id"], carrier_for(req.body.carrier),
                              carrier_name=req.body.carrier, tracking_number=req.body.tracking_number, now=utc_now())
    return _tracking(await tracking.get_tracking(db, req.principal, req.params["id"]))


@routes.get("/orders/{id}/tracking", response=TrackingResponse, auth=REQUIRED, policy="orders",
            errors=("ORDER_NOT_FOUND", "NOT_SHIPPED", "FORBIDDEN"), tag="Orders", summary="Where the order's parcel is")
async def get_tracking(req: Req) -> TrackingResponse:
    return _tracking(await tracking.get_tracking(req.app[keys.DB], req.principal, req.params["id"]))
