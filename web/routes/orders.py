"""Checkout and orders: `POST /cart/checkout`, `POST /orders` (platform), order list and
detail, status changes, cancel. Thin: parse, call engine.checkout / engine.orders, render.

Checkout runs inside the user's actor and reserves through the product actors (both started
by web.resources), so one process serialises one user's checkouts; money-moving POSTs honour
Idempotency-Key (web.idempotency).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from aiohttp import web

from engine import checkout as engine_checkout
from engine import orders as engine_orders
from engine import refunds, tracking
from engine.carrier import carrier_for
from engine.clock import utc_now
from engine.checkout import PLACED_ORDER, ItemRequest, OrderRequest, PlacedOrder, placed_from_record
from engine.domain.errors import Forbidden, RefundFailed, ValidationError
from engine.idempotency import ResponseKey
from engine.domain.address import PostalAddress
from engine.domain.money import to_api
from engine.domain.order_status import OrderStatus, can_cancel, can_refund, parse_status
from web import keys
from web.api import REQUIRED, Reply, Req, RouteTable
from web.envelope import Pagination
from web.idempotency import idempotent
from web.idempotency import records as idempotent_records
from web.resources import PROVIDER, STOCK, USER_ACTORS

routes = RouteTable()

Money = Decimal
Text = Annotated[str, msgspec.Meta(max_length=1000)]
CouponCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
PaymentMethod = Literal["CARD", "BANK_TRANSFER", "EWALLET", "BALANCE"]


# ----------------------------------------------------------------------------- helpers

def _checkout_timeout(app: web.Application) -> float:
    # The user actor must outwait the stock actors and the order transaction inside it, or a
    # caller could hear 503 for a checkout that then succeeds.
    settings = app[keys.SETTINGS]
    return 2 * settings.actor_ask_timeout + settings.db_command_timeout


# ----------------------------------------------------------------------------- shapes

class CheckoutRequest(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    shipping_address_id: UUID
    shipping_method_id: UUID
    payment_method: PaymentMethod
    billing_address_id: UUID | None = None
    coupon_codes: Annotated[list[CouponCode], msgspec.Meta(max_length=10)] = []
    notes: Text | None = None
    use_partner_balance: bool = False


class OrderItemRequest(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    product_id: UUID
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    variant_id: UUID | None = None


class CreateOrderRequest(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    items: Annotated[list[OrderItemRequest], msgspec.Meta(min_length=1, max_length=100)]
    shipping_address_id: UUID
    shipping_method_id: UUID
    payment_method: PaymentMethod
    customer_id: UUID | None = None
    billing_address_id: UUID | None = None
    coupon_codes: Annotated[list[CouponCode], msgspec.Meta(max_length=10)] = []
    notes: Text | None = None
    use_partner_balance: bool = False


class BankDetails(msgspec.Struct, rename="camel"):
    bank_name: str
    account_number: str
    bik: str
    purpose: str


class Payment(msgspec.Struct, rename="camel"):
    method: str
    amount: Money
    currency: str
    expires_at: dt.datetime
    # Optional in the document (`paymentUrl?`, `bankDetails?`): left out when not applicable.
    payment_url: str | msgspec.UnsetType = msgspec.UNSET
    bank_details: BankDetails | msgspec.UnsetType = msgspec.UNSET


class Summary(msgspec.Struct, rename="camel"):
    subtotal: Money
    discount: Money
    shipping: Money
    tax: Money
    total: Money


class CheckoutResponse(msgspec.Struct, rename="camel"):
    order_id: str
    order_number: str
    status: str
    payment: Payment
    summary: Summary
    estimated_delivery: str | None


class OrdersQuery(msgspec.Struct, rename="camel"):
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20
    status: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    date_from: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    date_to: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    from_: Annotated[str, msgspec.Meta(max_length=40)] | None = msgspec.field(default=None, name="from")
    to: Annotated[str, msgspec.Meta(max_length=40)] | None = None


class OrderSummary(msgspec.Struct, rename="camel"):
    id: str
    order_number: str
    status: str
    payment_status: str
    item_count: int
    total: Money
    currency: str
    created_at: dt.datetime
    updated_at: dt.datetime


class OrdersResponse(msgspec.Struct, rename="camel"):
    orders: list[OrderSummary]


class ItemProduct(msgspec.Struct, rename="camel"):
    id: str
    name: str
    sku: str
    thumbnail_url: str | None


class OrderItem(msgspec.Struct, rename="camel"):
    id: str
    product: ItemProduct
    variant_id: str | None
    variant_attributes: dict[str, str] | None
    quantity: int
    unit_price: Money
    total_price: Money


class Pricing(msgspec.Struct, rename="camel"):
    subtotal: Money
    discount: Money
    shipping: Money
    tax: Money
    total: Money
    currency: str


class ShippingAddress(msgspec.Struct, rename="camel"):
    recipient_name: str
    street: str
    city: str
    region: str
    country: str
    postal_code: str
    phone: str | None


class BillingAddress(msgspec.Struct, rename="camel"):
    street: str
    city: str
    region: str
    country: str
    postal_code: str


class ShippingMethodView(msgspec.Struct, rename="camel"):
    name: str
    carrier: str | None
    estimated_delivery: str | None


class PaymentView(msgspec.Struct, rename="camel"):
    method: str
    transaction_id: str | None
    paid_at: dt.datetime | None


class CouponView(msgspec.Struct, rename="camel"):
    code: str
    discount: Money


class HistoryEntry(msgspec.Struct, rename="camel"):
    status: str
    changed_at: dt.datetime
    note: str | None


class OrderDetailResponse(msgspec.Struct, rename="camel"):
    id: str
    order_number: str
    status: str
    payment_status: str
    items: list[OrderItem]
    pricing: Pricing
    shipping_address: ShippingAddress
    billing_address: BillingAddress | None
    shipping_method: ShippingMethodView
    payment: PaymentView
    applied_coupons: list[CouponView]
    notes: str | None
    status_history: list[HistoryEntry]
    can_cancel: bool
    can_refund: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    refunded_amount: Money = Decimal(0)
    expires_at: dt.datetime | None = None


class StatusChangeRequest(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    status: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    note: Text | None = None
    # Shipping through the platform's PATCH: required with SHIPPED, refused with any other status.
    carrier: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    tracking_number: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    estimated_delivery: Annotated[str, msgspec.Meta(max_length=40)] | None = None


class CancelRequest(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class CancelResponse(msgspec.Struct, rename="camel"):
    order_id: str
    order_number: str
    status: str
    refund_status: str | None
    refund_amount: Money | None
    message: str


# ----------------------------------------------------------------------------- rendering

def _placed(p: PlacedOrder) -> CheckoutResponse:
    # The storefront types expiresAt as a string. A balance payment is settled inside the
    # checkout, so its payment window closed when it was issued: that instant (docs/DECISIONS.md).
    expires_at = p.expires_at if p.expires_at is not None else p.issued_at
    payment = Payment(method=p.payment_method, amount=to_api(p.total), currency=p.currency, expires_at=expires_at)
    if p.payment_url is not None:
        payment.payment_url = p.payment_url
    bank = p.bank_details
    if bank is not None:
        payment.bank_details = BankDetails(**{_snake(k): v for k, v in bank.items()})
    return CheckoutResponse(
        order_id=str(p.order_id), order_number=p.order_number, status=p.status, payment=payment,
        summary=Summary(subtotal=to_api(p.subtotal), discount=to_api(p.discount), shipping=to_api(p.shipping),
                        tax=to_api(p.tax), total=to_api(p.total)),
        estimated_delivery=p.estimated_delivery.isoformat() if p.estimated_delivery else None)


# Checkout's answer stored under an Idempotency-Key is the engine's record; replays render it so.
idempotent_records(PLACED_ORDER, lambda record: _placed(placed_from_record(record)))


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _order_request(body: Any) -> OrderRequest:
    if body.notes is not None and "\x00" in body.notes:
        raise ValidationError(details={"notes": ["contains NUL"]})
    return OrderRequest(shipping_address_id=body.shipping_address_id, shipping_method_id=body.shipping_method_id,
                        payment_method=body.payment_method, billing_address_id=body.billing_address_id,
                        coupon_codes=tuple(body.coupon_codes), notes=body.notes,
                        use_partner_balance=body.use_partner_balance)


CHECKOUT_ERRORS = ("VALIDATION_ERROR", "CART_EMPTY", "ITEMS_UNAVAILABLE", "INSUFFICIENT_STOCK", "INVALID_ADDRESS",
                   "INVALID_SHIPPING_METHOD", "INVALID_COUPON", "KYC_REQUIRED", "INSUFFICIENT_BALANCE",
                   "IDEMPOTENCY_KEY_REUSED", "CONFLICT", "RATE_LIMIT_EXCEEDED", "SERVICE_UNAVAILABLE",
                   "TOO_MANY_UNPAID_ORDERS")


# ----------------------------------------------------------------------------- handlers

@routes.post("/cart/checkout", body=CheckoutRequest, response=CheckoutResponse, status=201, auth=REQUIRED,
             policy="financial", idempotent=True, errors=CHECKOUT_ERRORS, tag="Checkout",
             summary="Check the cart out: reserve stock, create the order, payment instructions")
async def checkout(req: Req) -> web.StreamResponse:
    user_id = req.principal.user_id
    if user_id is None:
        raise Forbidden("Checkout belongs to a user account.")
    app = req.app
    request = _order_request(req.body)

    async def run(owner: ResponseKey | None) -> CheckoutResponse:
        placed = await app[USER_ACTORS].run(user_id, lambda: engine_checkout.checkout(
            app[keys.DB], app[STOCK], app[keys.SETTINGS], tenant_id=req.tenant_id, user_id=user_id,
            request=request, actor=req.principal.scope, now=utc_now(),
            respond=owner), timeout=_checkout_timeout(app))
        return _placed(placed)

    return await idempotent(req, run, status=201, stores_response=True)


# The platform document's endpoint: its budget is the API key plan's (and the order operations'
# 100/min for users), not the storefront's 2/min for the cart checkout button.
@routes.post("/orders", body=CreateOrderRequest, response=CheckoutResponse, status=201, auth=REQUIRED,
             policy="orders", user_policy="financial", idempotent=True,
             errors=CHECKOUT_ERRORS + ("PRODUCT_NOT_FOUND", "VARIANT_NOT_FOUND", "USER_NOT_FOUND",
                                       "MAX_QUANTITY_EXCEEDED", "FORBIDDEN"),
             tag="Orders", summary="Create an order from items (for yourself, or for a customer with orders:write)")
async def create_order(req: Req) -> web.StreamResponse:
    body, principal = req.body, req.principal
    if body.customer_id is not None and body.customer_id != principal.user_id:
        if not principal.can("orders:write"):
            raise Forbidden("Ordering for another customer requires `orders:write`.")
        user_id = body.customer_id
    elif principal.user_id is not None:
        user_id = principal.user_id
    else:
        raise ValidationError(details={"customerId": ["required when calling with an API key"]})
    app = req.app
    request = _order_request(body)
    items = [ItemRequest(product_id=i.product_id, quantity=i.quantity, variant_id=i.variant_id) for i in body.items]

    async def run(owner: ResponseKey | None) -> CheckoutResponse:
        placed = await app[USER_ACTORS].run(user_id, lambda: engine_checkout.place_order(
            app[keys.DB], app[STOCK], app[keys.SETTINGS], tenant_id=req.tenant_id, user_id=user_id,
            items=items, request=request, actor=principal.scope, now=utc_now(),
            respond=owner,
            limit_unpaid=user_id == principal.user_id), timeout=_checkout_timeout(app))
        return _placed(placed)

    return await idempotent(req, run, status=201, stores_response=True)


def _instant(text: str | None, field: str) -> dt.datetime | None:
    """An ISO 8601 date or date-time; a date means its midnight, no zone means UTC."""
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)  # out of range (year 1 at -05:00) fails here, not in SQL
    except (ValueError, OverflowError):
        raise ValidationError("Invalid query parameters.", details={field: ["must be an ISO 8601 date or date-time"]}) from None


@routes.get("/orders", query=OrdersQuery, response=OrdersResponse, auth=REQUIRED, policy="orders", paginated=True,
            errors=("VALIDATION_ERROR", "FORBIDDEN"), tag="Orders",
            summary="List orders (own orders; all with orders:read)")
async def list_orders(req: Req) -> Reply:
    q = req.query
    # Storefront spelling wins when both are given (CONTRACT.md).
    created_from = _instant(q.date_from if q.date_from is not None else q.from_,
                            "dateFrom" if q.date_from is not None else "from")
    created_to = _instant(q.date_to if q.date_to is not None else q.to, "dateTo" if q.date_to is not None else "to")
    status = parse_status(q.status) if q.status is not None else None
    rows, total = await engine_orders.list_orders(
        req.app[keys.DB], req.principal, engine_orders.OrderFilter(status, created_from, created_to),
        page=q.page, page_size=q.page_size)
    orders = [OrderSummary(id=str(r.id), order_number=r.order_number, status=r.status,
                           payment_status=r.payment_status, item_count=r.item_count, total=to_api(r.total),
                           currency=r.currency, created_at=r.created_at, updated_at=r.updated_at)
              for r in rows]
    return Reply(OrdersResponse(orders=orders), meta={"pagination": Pagination.of(total, q.page, q.page_size)})


def _address(a: PostalAddress) -> ShippingAddress:
    return ShippingAddress(recipient_name=a.recipient_name, street=a.street, city=a.city, region=a.region,
                           country=a.country, postal_code=a.postal_code, phone=a.phone)


def _detail(d: engine_orders.OrderDetail, refund_period_days: int) -> OrderDetailResponse:
    o = d.order
    bill = o.billing_address
    status = OrderStatus(o.status)
    return OrderDetailResponse(
        id=str(o.id), order_number=o.order_number, status=o.status, payment_status=o.payment_status,
        items=[OrderItem(id=str(i.id), product=ItemProduct(id=str(i.product_id), name=i.product_name,
                                                           sku=i.sku, thumbnail_url=i.thumbnail_url),
                         variant_id=str(i.variant_id) if i.variant_id else None,
                         variant_attributes=i.variant_attributes, quantity=i.quantity,
                         unit_price=to_api(i.unit_price), total_price=to_api(i.total_price))
               for i in d.items],
        pricing=Pricing(subtotal=to_api(o.subtotal), discount=to_api(o.discount), shipping=to_api(o.shipping),
                        tax=to_api(o.tax), total=to_api(o.total), currency=o.currency),
        shipping_address=_address(o.shipping_address),
        billing_address=None if bill is None else BillingAddress(
            street=bill.street, city=bill.city, region=bill.region, country=bill.country,
            postal_code=bill.postal_code),
        shipping_method=ShippingMethodView(name=o.shipping_method_name, carrier=o.carrier,
                                           estimated_delivery=o.estimated_delivery),
        payment=PaymentView(method=o.payment_method, transaction_id=o.transaction_id, paid_at=o.paid_at),
        applied_coupons=[CouponView(code=c.code, discount=to_api(c.discount)) for c in o.applied_coupons],
        notes=o.notes,
        status_history=[HistoryEntry(status=h.status, changed_at=h.changed_at, note=h.note) for h in d.history],
        can_cancel=can_cancel(status),
        can_refund=can_refund(status, o.delivered_at, utc_now(), refund_period_days)
        and o.refunded_amount < o.total,
        created_at=o.created_at, updated_at=o.updated_at, refunded_amount=to_api(o.refunded_amount),
        expires_at=o.expires_at)


@routes.get("/orders/{id}", response=OrderDetailResponse, auth=REQUIRED, policy="orders",
            errors=("ORDER_NOT_FOUND", "FORBIDDEN"), tag="Orders", summary="Order detail")
async def get_order(req: Req) -> OrderDetailResponse:
    detail = await engine_orders.get_order(req.app[keys.DB], req.principal, req.params["id"])
    return _detail(detail, req.app[keys.SETTINGS].refund_period_days)


def _shipping_fields(body: StatusChangeRequest, target: OrderStatus) -> dt.date | None:
    """The estimated delivery date of a PATCH to SHIPPED, after checking its shipping fields."""
    given = {"carrier": body.carrier, "trackingNumber": body.tracking_number,
             "estimatedDelivery": body.estimated_delivery}
    if target is not OrderStatus.SHIPPED:
        extra = [name for name, value in given.items() if value is not None]
        if extra:
            raise ValidationError(details={n: ["only allowed with status SHIPPED"] for n in extra})
        return None
    missing = [name for name in ("carrier", "trackingNumber") if not (given[name] or "").strip()]
    if missing:
        raise ValidationError(details={n: ["required when status is SHIPPED (POST /api/v1/admin/orders/{id}/ship"
                                           " makes a tracking number up)"] for n in missing})
    if body.estimated_delivery is None:
        return None
    try:
        return dt.date.fromisoformat(body.estimated_delivery.strip()[:10])
    except ValueError:
        raise ValidationError(details={"estimatedDelivery": ["must be an ISO 8601 date"]}) from None


@routes.patch("/orders/{id}/status", body=StatusChangeRequest, response=OrderDetailResponse, auth=REQUIRED,
              permission="orders:write", policy="orders",
              errors=("ORDER_NOT_FOUND", "INVALID_STATUS_TRANSITION", "VALIDATION_ERROR", "FORBIDDEN",
                      "REFUND_ALREADY_REQUESTED", "CANNOT_REFUND", "REFUND_FAILED"),
              tag="Orders", summary="Move an order through the state machine (staff or orders:write)")
async def change_status(req: Req) -> OrderDetailResponse:
    """Platform moves are taken as the platform defines them: `shipped` from a paid (confirmed)
    order records PROCESSING and SHIPPED, and needs `carrier` and `trackingNumber` (optional
    `estimatedDelivery`), from which the carrier sync delivers it; `refunded` refunds everything
    left through the refund machinery (money, stock, refund record, commission) and answers
    `REFUND_FAILED` if the provider refuses; `cancelled` on a paid order refunds it as
    `POST /orders/{id}/cancel` does."""
    body, principal, order_id = req.body, req.principal, req.params["id"]
    target = parse_status(body.status)
    estimated = _shipping_fields(body, target)
    db, settings = req.app[keys.DB], req.app[keys.SETTINGS]
    if target is OrderStatus.SHIPPED:
        await tracking.ship_order(db, principal, order_id, carrier_for(body.carrier), carrier_name=body.carrier,
                                  tracking_number=body.tracking_number, now=utc_now(), estimated_delivery=estimated)
    elif target is OrderStatus.REFUNDED:
        request_id = await refunds.refund_order(db, principal, order_id, note=body.note, now=utc_now())
        # Executed here so the answer shows the outcome; the queued job finds it done (or, if this
        # process dies first, does it).
        outcome = await refunds.execute_refund(db, req.app[PROVIDER], request_id,
                                               restock=settings.restock_on_refund, now=utc_now())
        if outcome != refunds.COMPLETED:
            raise RefundFailed(extra={"refundRequestId": str(request_id), "refundStatus": outcome})
    else:
        await engine_orders.set_status(db, principal, order_id, target, body.note)
    detail = await engine_orders.get_order(db, principal, order_id)
    return _detail(detail, settings.refund_period_days)


@routes.post("/orders/{id}/cancel", body=CancelRequest, response=CancelResponse, auth=REQUIRED, policy="orders",
             idempotent=True, errors=("VALIDATION_ERROR", "ORDER_NOT_FOUND", "CANNOT_CANCEL", "IDEMPOTENCY_KEY_REUSED",
                                      "FORBIDDEN"),
             tag="Orders", summary="Cancel an order that has not shipped")
async def cancel_order(req: Req) -> web.StreamResponse:
    reason = req.body.reason.strip()
    if not reason or "\x00" in reason:
        raise ValidationError("A reason is required.", details={"reason": ["required"]})

    async def run() -> CancelResponse:
        done = await engine_orders.cancel_order(req.app[keys.DB], req.principal, req.params["id"], reason)
        message = ("Order cancelled successfully. Refund will be processed within 3-5 business days."
                   if done.refund_pending else "Order cancelled successfully.")
        return CancelResponse(order_id=str(done.order_id), order_number=done.order_number, status="CANCELLED",
                              refund_status="PENDING" if done.refund_pending else None,
                              refund_amount=to_api(done.refund_amount) if done.refund_pending else None,
                              message=message)

    return await idempotent(req, run)
