"""Saved addresses (`/api/v1/addresses`): the customer's own, CRUD. Checkout takes their ids."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from uuid import UUID

import msgspec

from engine import addresses as store
from engine.domain.errors import Forbidden
from web import keys
from web.api import REQUIRED, Reply, Req, RouteTable
from web.envelope import Pagination

routes = RouteTable()

# Non-blank, bounded text: PostgreSQL `text` would take anything; the API must not.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
Street = Annotated[str, msgspec.Meta(min_length=1, max_length=300, pattern=r"\S")]
Place = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"\S")]
Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]  # ISO 3166-1 alpha-2, uppercase
PostalCode = Annotated[str, msgspec.Meta(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]*$")]
Phone = Annotated[str, msgspec.Meta(min_length=3, max_length=32, pattern=r"^\+?[0-9][0-9 ()-]*$")]


class AddressIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    recipient_name: Name
    street: Street
    city: Place
    region: Place
    country: Country
    postal_code: PostalCode
    phone: Phone | None = None
    is_default: bool = False


class AddressPatch(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    recipient_name: Name | msgspec.UnsetType = msgspec.UNSET
    street: Street | msgspec.UnsetType = msgspec.UNSET
    city: Place | msgspec.UnsetType = msgspec.UNSET
    region: Place | msgspec.UnsetType = msgspec.UNSET
    country: Country | msgspec.UnsetType = msgspec.UNSET
    postal_code: PostalCode | msgspec.UnsetType = msgspec.UNSET
    phone: Phone | None | msgspec.UnsetType = msgspec.UNSET  # null removes the phone
    is_default: bool | msgspec.UnsetType = msgspec.UNSET


class AddressOut(msgspec.Struct, rename="camel"):
    id: str
    recipient_name: str
    street: str
    city: str
    region: str
    country: str
    postal_code: str
    phone: str | None
    is_default: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class AddressList(msgspec.Struct, rename="camel"):
    addresses: list[AddressOut]


class AddressQuery(msgspec.Struct, rename="camel"):
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20


class Deleted(msgspec.Struct, rename="camel"):
    message: str
    id: str


def _out(a: store.Address) -> AddressOut:
    return AddressOut(id=str(a.id), recipient_name=a.recipient_name, street=a.street, city=a.city,
                      region=a.region, country=a.country, postal_code=a.postal_code, phone=a.phone,
                      is_default=a.is_default, created_at=a.created_at, updated_at=a.updated_at)


def _user(req: Req) -> UUID:
    """Addresses belong to people: an API key (no user) has none of its own."""
    if req.principal.user_id is None:
        raise Forbidden("Saved addresses belong to a user account.")
    return req.principal.user_id


def _fields(body: msgspec.Struct) -> dict[str, Any]:
    return {name: getattr(body, name) for name in body.__struct_fields__
            if getattr(body, name) is not msgspec.UNSET}


@routes.get("/addresses", policy="account", query=AddressQuery, response=AddressList, auth=REQUIRED, paginated=True,
            tag="Addresses", summary="List my saved addresses")
async def list_addresses(req: Req) -> Reply:
    q = req.query
    items, total = await store.list_addresses(req.app[keys.DB], req.tenant_id, _user(req),
                                              page=q.page, page_size=q.page_size)
    return Reply(AddressList(addresses=[_out(a) for a in items]),
                 meta={"pagination": Pagination.of(total, q.page, q.page_size)})


@routes.post("/addresses", policy="account", body=AddressIn, response=AddressOut, status=201, auth=REQUIRED,
             errors=("VALIDATION_ERROR",), tag="Addresses", summary="Save an address")
async def create_address(req: Req) -> AddressOut:
    a = await store.create_address(req.app[keys.DB], req.tenant_id, _user(req), _fields(req.body))
    return _out(a)


@routes.get("/addresses/{id}", policy="account", response=AddressOut, auth=REQUIRED, errors=("ADDRESS_NOT_FOUND",),
            tag="Addresses", summary="One of my saved addresses")
async def get_address(req: Req) -> AddressOut:
    a = await store.read_address(req.app[keys.DB], req.tenant_id, _user(req), req.params["id"])
    return _out(a)


@routes.patch("/addresses/{id}", policy="account", body=AddressPatch, response=AddressOut, auth=REQUIRED,
              errors=("VALIDATION_ERROR", "ADDRESS_NOT_FOUND"), tag="Addresses", summary="Edit a saved address")
async def update_address(req: Req) -> AddressOut:
    a = await store.update_address(req.app[keys.DB], req.tenant_id, _user(req), req.params["id"],
                                   _fields(req.body))
    return _out(a)


@routes.delete("/addresses/{id}", policy="account", response=Deleted, auth=REQUIRED, errors=("ADDRESS_NOT_FOUND",),
               tag="Addresses", summary="Delete a saved address")
async def delete_address(req: Req) -> Deleted:
    await store.delete_address(req.app[keys.DB], req.tenant_id, _user(req), req.params["id"])
    return Deleted(message="Address deleted", id=str(req.params["id"]))
