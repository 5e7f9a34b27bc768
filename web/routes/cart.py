"""The cart (`/api/v1/cart...`), exactly as the storefront document shapes it.

Every cart command of a user runs inside that user's actor (`USER_ACTORS`, started by
web.resources), so one user's commands, checkout included, happen one at a time in this process.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Awaitable, Callable, Literal, TypeVar
from uuid import UUID

import msgspec
from aiohttp import web

from engine import cart_store
from engine.clock import utc_now
from engine.cart import CartLine, CartView
from engine.domain.errors import Forbidden, ValidationError
from engine.domain.money import to_api
from engine.domain.pricing import Quote
from web import keys
from web.api import REQUIRED, Req, RouteTable
from web.resources import USER_ACTORS

routes = RouteTable()

T = TypeVar("T")
Money = Decimal  # exact; shown as a JSON number in the major unit (2500, 25.99)
Quantity = Annotated[int, msgspec.Meta(ge=1, le=10_000)]  # the business maximum is a setting, checked later
CouponCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^\s*[A-Za-z0-9_-]+\s*$")]


# ----------------------------------------------------------------------------- helpers

def _user(req: Req) -> UUID:
    """Carts belong to people: an API key (no user) has none."""
    if req.principal.user_id is None:
        raise Forbidden("The cart belongs to a user account.")
    return req.principal.user_id


async def _as_user(req: Req, fn: Callable[[UUID], Awaitable[T]]) -> T:
    user_id = _user(req)
    return await req.app[USER_ACTORS].run(user_id, lambda: fn(user_id))


# ----------------------------------------------------------------------------- shapes

class CartProduct(msgspec.Struct, rename="camel"):
    id: str
    name: str
    slug: str
    sku: str
    price: Money
    compare_at_price: Money | None
    thumbnail_url: str | None
    status: str
    stock_quantity: int | None


class CartItem(msgspec.Struct, rename="camel"):
    id: str
    product: CartProduct
    variant_id: str | None
    variant_attributes: dict[str, str] | None
    quantity: int
    unit_price: Money
    total_price: Money
    added_at: dt.datetime


class CartSummary(msgspec.Struct, rename="camel"):
    subtotal: Money
    discount: Money
    shipping: Money | None
    tax: Money
    total: Money
    currency: str
    item_count: int
    total_quantity: int


class AppliedCoupon(msgspec.Struct, rename="camel"):
    code: str
    discount: Money
    type: Literal["PERCENTAGE", "FIXED"]


class CartResponse(msgspec.Struct, rename="camel"):
    id: str
    items: list[CartItem]
    summary: CartSummary
    applied_coupons: list[AppliedCoupon]
    estimated_commission: Money | None
    estimated_career_points: Money | None
    updated_at: dt.datetime


class ShortSummary(msgspec.Struct, rename="camel"):
    total: Money
    item_count: int
    total_quantity: int


class ProductRef(msgspec.Struct, rename="camel"):
    id: str
    name: str


class AddCartItemRequest(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    product_id: UUID
    quantity: Quantity
    variant_id: UUID | None = None


class AddCartItemResponse(msgspec.Struct, rename="camel"):
    cart_item_id: str
    product: ProductRef
    quantity: int
    unit_price: Money
    total_price: Money
    cart_summary: ShortSummary


class UpdateCartItemRequest(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    quantity: Quantity


class UpdateCartItemResponse(msgspec.Struct, rename="camel"):
    cart_item_id: str
    quantity: int
    unit_price: Money
    total_price: Money
    cart_summary: ShortSummary


class RemoveCartItemResponse(msgspec.Struct, rename="camel"):
    message: str
    cart_item_id: str
    cart_summary: ShortSummary


class ClearCartResponse(msgspec.Struct, rename="camel"):
    message: str
    items_removed: int


class ApplyCouponRequest(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    code: CouponCode


def _display_status(line: CartLine) -> str:
    if line.deleted:
        return "ARCHIVED"
    if line.status == "ACTIVE" and line.track_inventory and not line.stock_available:
        return "OUT_OF_STOCK"
    return line.status


def _item(line: CartLine) -> CartItem:
    return CartItem(
        id=str(line.id),
        product=CartProduct(id=str(line.product_id), name=line.product_name, slug=line.slug, sku=line.sku,
                            price=to_api(line.product_price), compare_at_price=to_api(line.compare_at_price),
                            thumbnail_url=line.thumbnail_url, status=_display_status(line),
                            stock_quantity=line.stock_available),
        variant_id=None if line.variant_id is None else str(line.variant_id),
        variant_attributes=line.variant_attributes, quantity=line.quantity, unit_price=to_api(line.unit_price),
        total_price=to_api(line.total_price), added_at=line.added_at)


def _quote(req: Req, view: CartView) -> Quote:
    return view.quote(tax_rate=req.app[keys.SETTINGS].tax_rate, now=utc_now())


def _short(quote: Quote) -> ShortSummary:
    return ShortSummary(total=to_api(quote.total), item_count=quote.item_count, total_quantity=quote.total_quantity)


def _cart(req: Req, view: CartView) -> CartResponse:
    quote = _quote(req, view)
    partner = req.principal.is_partner
    return CartResponse(
        id=str(view.id), items=[_item(line) for line in view.lines],
        summary=CartSummary(subtotal=to_api(quote.subtotal), discount=to_api(quote.discount), shipping=None,
                            tax=to_api(quote.tax), total=to_api(quote.total),
                            currency=req.app[keys.SETTINGS].currency, item_count=quote.item_count,
                            total_quantity=quote.total_quantity),
        applied_coupons=[AppliedCoupon(code=c.code, discount=to_api(c.discount), type=c.kind)
                         for c in quote.applied_coupons],
        estimated_commission=to_api(quote.estimated_commission) if partner else None,
        estimated_career_points=to_api(quote.estimated_career_points) if partner else None,
        updated_at=view.updated_at)


# ----------------------------------------------------------------------------- cart

_CART = dict(auth=REQUIRED, policy="cart", tag="Cart")


@routes.get("/cart", response=CartResponse, summary="Get current cart", **_CART)
async def get_cart(req: Req) -> CartResponse:
    view = await _as_user(req, lambda uid: cart_store.read_cart(req.app[keys.DB], req.tenant_id, uid))
    return _cart(req, view)


@routes.post("/cart/items", body=AddCartItemRequest, response=AddCartItemResponse, status=201,
             errors=("VALIDATION_ERROR", "PRODUCT_NOT_FOUND", "VARIANT_NOT_FOUND", "PRODUCT_UNAVAILABLE",
                     "INSUFFICIENT_STOCK", "MAX_QUANTITY_EXCEEDED"), summary="Add item to cart", **_CART)
async def add_item(req: Req) -> AddCartItemResponse:
    b: AddCartItemRequest = req.body
    view, line_id = await _as_user(req, lambda uid: cart_store.add_item(
        req.app[keys.DB], req.tenant_id, uid, product_id=b.product_id, variant_id=b.variant_id,
        quantity=b.quantity, max_item_quantity=req.app[keys.SETTINGS].max_item_quantity))
    line = view.line(line_id)
    assert line is not None  # added in the same transaction that read the view
    return AddCartItemResponse(cart_item_id=str(line.id), product=ProductRef(id=str(line.product_id),
                               name=line.product_name), quantity=line.quantity, unit_price=to_api(line.unit_price),
                               total_price=to_api(line.total_price), cart_summary=_short(_quote(req, view)))


@routes.patch("/cart/items/{id}", body=UpdateCartItemRequest, response=UpdateCartItemResponse,
              errors=("VALIDATION_ERROR", "CART_ITEM_NOT_FOUND", "PRODUCT_UNAVAILABLE", "INSUFFICIENT_STOCK",
                      "MAX_QUANTITY_EXCEEDED"), summary="Update cart item quantity", **_CART)
async def update_item(req: Req) -> UpdateCartItemResponse:
    line_id = req.params["id"]
    view = await _as_user(req, lambda uid: cart_store.update_item(
        req.app[keys.DB], req.tenant_id, uid, line_id, quantity=req.body.quantity,
        max_item_quantity=req.app[keys.SETTINGS].max_item_quantity))
    line = view.line(line_id)
    assert line is not None
    return UpdateCartItemResponse(cart_item_id=str(line.id), quantity=line.quantity,
                                  unit_price=to_api(line.unit_price), total_price=to_api(line.total_price),
                                  cart_summary=_short(_quote(req, view)))


@routes.delete("/cart/items/{id}", response=RemoveCartItemResponse, errors=("CART_ITEM_NOT_FOUND",),
               summary="Remove item from cart", **_CART)
async def remove_item(req: Req) -> RemoveCartItemResponse:
    line_id = req.params["id"]
    view = await _as_user(req, lambda uid: cart_store.remove_item(req.app[keys.DB], req.tenant_id, uid, line_id))
    return RemoveCartItemResponse(message="Item removed from cart", cart_item_id=str(line_id),
                                  cart_summary=_short(_quote(req, view)))


@routes.delete("/cart", response=ClearCartResponse, summary="Clear cart", **_CART)
async def clear_cart(req: Req) -> ClearCartResponse:
    removed = await _as_user(req, lambda uid: cart_store.empty_cart(req.app[keys.DB], req.tenant_id, uid))
    return ClearCartResponse(message="Cart cleared successfully", items_removed=removed)


@routes.post("/cart/coupons", body=ApplyCouponRequest, response=CartResponse,
             errors=("VALIDATION_ERROR", "INVALID_COUPON"), summary="Apply a coupon to the cart", **_CART)
async def apply_coupon(req: Req) -> CartResponse:
    view = await _as_user(req, lambda uid: cart_store.apply_coupon(
        req.app[keys.DB], req.tenant_id, uid, req.body.code, now=utc_now()))
    return _cart(req, view)


@routes.delete("/cart/coupons/{code}", response=CartResponse, text_params=("code",),
               errors=("COUPON_NOT_FOUND",), summary="Remove a coupon from the cart", **_CART)
async def remove_coupon(req: Req) -> CartResponse:
    code = req.params["code"]
    if not 1 <= len(code) <= 64:
        raise ValidationError("Invalid coupon code.", details={"code": ["must be 1-64 characters"]})
    view = await _as_user(req, lambda uid: cart_store.remove_coupon(req.app[keys.DB], req.tenant_id, uid, code))
    return _cart(req, view)
