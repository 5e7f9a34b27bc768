"""Checkout: a cart (or a list of items) becomes an order, all or nothing.

The steps, and why in this order:
1. Read and check, no transaction held: one statement reads the cart, its lines, the buyer,
   both addresses and the shipping method (POST /orders reads its items, then the rest);
   CART_EMPTY, ITEMS_UNAVAILABLE, INVALID_ADDRESS, INVALID_SHIPPING_METHOD, INVALID_COUPON,
   price, KYC above `kyc_limit` (KYC_REQUIRED).
2. Reserve stock through the product actors (engine.stock), all or nothing
   (INSUFFICIENT_STOCK). No connection is held while waiting for the actors: a checkout
   holding one while the actor needs one could starve the pool.
3. One statement writes the order (`place_orders`, migration 0013, from an OrderRecord; in
   batched mode together with the orders whose reservations came back with it): it consumes the reservation's holds, bumps the
   cart's version only if it is still the version priced in step 1 (every cart write bumps
   it under the cart row lock, so two processes or two tabs cannot check one cart out twice:
   the second finds it empty - CART_EMPTY - or changed - CONFLICT), counts coupon usage
   within the limits, numbers the order from the tenant's sequence, inserts order, items and
   history, queues the payment expiry in the outbox, empties the cart and, with an
   Idempotency-Key, stores the response. Every write depends on every check, so a failed
   check writes nothing. Paying from the partner balance adds the conditional debit (then the
   order is PAID and the units sold) in the same transaction.
4. If anything after step 2 fails, the reservation is released.
A process that dies between steps 2 and 3 leaves its holds (engine.stock, migration 0007)
behind, and the hold reconciler gives their units back; a failed step 3 releases only holds
that are still there, so units never go back twice. The web layer runs `checkout` inside the
user's actor, so one process serialises one user's checkouts without lock waits; the cart
version is what makes it hold across processes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence
from uuid import UUID, uuid4

import asyncpg
import msgspec

from engine import coupons as coupon_store
from engine import outbox
from engine.addresses import FIELDS as ADDRESS_FIELDS
from engine.addresses import address_from
from engine.cart import CartView, cart_with_lines_query, load_cart_to_check_out
from engine.db import Database
from engine.domain.checkout_plan import CheckoutSnapshot, OrderLine, OrderPlan, plan_order
from engine.idempotency import KeyTaken, ResponseKey
from engine.domain.errors import (CartEmpty, Conflict, InsufficientBalance, InvalidCoupon, MaxQuantityExceeded,
                                  ProductNotFound, TooManyUnpaidOrders, ValidationError, VariantNotFound)
from engine.domain.money import money
from engine.domain.order_status import OrderStatus
from engine.order_writer import ItemRecord, OrderRecord, Written, write_orders
from engine.orders import change_status
from engine.payments import payment_url as payment_page
from engine.settings import Settings
from engine.shipping_store import FIELDS as METHOD_FIELDS
from engine.shipping_store import method_from_row
from engine.stock import Reservation, StockLine, StockService

PAYMENT_METHODS = ("CARD", "BANK_TRANSFER", "EWALLET", "BALANCE")
# The sandbox bank account shown for BANK_TRANSFER (a real shop configures its own).
BANK_NAME = "Sandbox Commerce Bank"
BANK_ACCOUNT = "40702810900000000001"
BANK_BIK = "044525999"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What the buyer chose at checkout (the body of POST /cart/checkout or POST /orders)."""

    shipping_address_id: UUID
    shipping_method_id: UUID
    payment_method: str
    billing_address_id: UUID | None = None
    coupon_codes: tuple[str, ...] = ()
    notes: str | None = None
    use_partner_balance: bool = False

    @property
    def pays_from_balance(self) -> bool:
        return self.payment_method == "BALANCE" or self.use_partner_balance


@dataclass(frozen=True, slots=True)
class ItemRequest:
    product_id: UUID
    quantity: int
    variant_id: UUID | None = None


class PlacedOrder(msgspec.Struct, frozen=True, kw_only=True):
    """What placing an order answers, as plain data: checkout returns it, and with an
    Idempotency-Key the order statement stores it (as JSON, the number it assigned filled in)
    so web renders the first answer and every replay from the same record (issue 16)."""

    order_id: UUID
    order_number: str
    status: str
    payment_method: str
    currency: str
    subtotal: Decimal
    discount: Decimal
    shipping: Decimal
    tax: Decimal
    total: Decimal
    issued_at: dt.datetime              # the checkout's `now`: a balance payment's window closed then
    expires_at: dt.datetime | None
    payment_url: str | None
    estimated_delivery: dt.date | None
    applied_coupons: list[dict[str, str]] = msgspec.field(default_factory=list)

    @property
    def bank_details(self) -> dict[str, str] | None:
        if self.payment_method != "BANK_TRANSFER":
            return None
        return {"bankName": BANK_NAME, "accountNumber": BANK_ACCOUNT, "bik": BANK_BIK,
                "purpose": f"Payment for order {self.order_number}"}


# The kind under which a PlacedOrder is stored as an idempotent response (web renders it).
PLACED_ORDER = "placed_order"
_decode_placed = msgspec.json.Decoder(PlacedOrder).decode


def placed_from_record(record: bytes | str) -> PlacedOrder:
    """The PlacedOrder a stored response record holds (what `place_orders` stored)."""
    return _decode_placed(record)


_Plan = OrderPlan  # the name this module used before the plan moved to engine.domain


# ----------------------------------------------------------------------------- entry points

async def checkout(db: Database, stock: StockService, settings: Settings, *, tenant_id: UUID, user_id: UUID,
                   request: OrderRequest, actor: str, now: dt.datetime,
                   respond: ResponseKey | None = None, limit_unpaid: bool = True) -> PlacedOrder:
    """The user's cart as an order (POST /cart/checkout). With `respond` (the request's
    Idempotency-Key), the response is stored in the order's own transaction. With
    `limit_unpaid`, TOO_MANY_UNPAID_ORDERS when the buyer already holds `max_unpaid_orders`."""
    async with db.connection() as conn:
        cart, context = await load_cart_to_check_out(conn, tenant_id, user_id, query=_CART_AND_CONTEXT,
                                                     args=_context_args(request))
        if cart is None:
            raise CartEmpty()
        lines = [OrderLine.of(line) for line in cart.lines]
        codes = [c.code for c in cart.coupons] + list(request.coupon_codes)
        plan = await _plan(conn, settings, tenant_id, user_id, lines, codes, request, now, context)
    return await _place(db, stock, settings, tenant_id=tenant_id, user_id=user_id, plan=plan, request=request,
                        cart=cart, actor=actor, now=now, respond=respond, limit_unpaid=limit_unpaid)


async def place_order(db: Database, stock: StockService, settings: Settings, *, tenant_id: UUID, user_id: UUID,
                      items: Sequence[ItemRequest], request: OrderRequest, actor: str,
                      now: dt.datetime, respond: ResponseKey | None = None,
                      limit_unpaid: bool = False) -> PlacedOrder:
    """An order straight from items (POST /orders), for `user_id` (the caller, or a customer
    of the tenant named by an orders:write key). Same checks and guarantees as checkout;
    `limit_unpaid` when the buyer orders for themselves."""
    if not items:
        raise ValidationError(details={"items": ["at least one item is required"]})
    async with db.connection() as conn:
        lines = await _load_items(conn, settings, tenant_id, items, user_id)
        plan = await _plan(conn, settings, tenant_id, user_id, lines, list(request.coupon_codes), request, now)
    return await _place(db, stock, settings, tenant_id=tenant_id, user_id=user_id, plan=plan, request=request,
                        cart=None, actor=actor, now=now, respond=respond, limit_unpaid=limit_unpaid)


# ----------------------------------------------------------------------------- step 1: check and price

# The buyer (u), the chosen addresses (sa, ba) and the shipping method (sm), their columns
# prefixed s_, b_ and m_ (NULLs where one does not exist or is not the buyer's): joined to
# `c`, the buyer's cart row, in checkout's one read of the cart, or alone for POST /orders.
_CONTEXT_COLUMNS = f"""
       u.id AS u_id, u.kyc_status, {", ".join(f"sa.{c} AS s_{c}" for c in ADDRESS_FIELDS)},
       {", ".join(f"ba.{c} AS b_{c}" for c in ADDRESS_FIELDS)},
       {", ".join(f"sm.{c} AS m_{c}" for c in METHOD_FIELDS)}"""
_CONTEXT_JOINS = """
  LEFT JOIN addresses sa ON sa.id = $3 AND sa.tenant_id = u.tenant_id AND sa.user_id = u.id
                         AND sa.deleted_at IS NULL
  LEFT JOIN addresses ba ON ba.id = $4 AND ba.tenant_id = u.tenant_id AND ba.user_id = u.id
                         AND ba.deleted_at IS NULL
  LEFT JOIN shipping_methods sm ON sm.id = $5 AND sm.tenant_id = u.tenant_id"""
_CONTEXT = f"SELECT {_CONTEXT_COLUMNS} FROM users u {_CONTEXT_JOINS} WHERE u.id = $2 AND u.tenant_id = $1"
_CART_AND_CONTEXT = cart_with_lines_query(
    _CONTEXT_COLUMNS, f"LEFT JOIN users u ON u.id = c.user_id AND u.tenant_id = c.tenant_id {_CONTEXT_JOINS}")


def _context_args(request: OrderRequest) -> tuple[Any, ...]:
    return request.shipping_address_id, request.billing_address_id, request.shipping_method_id


async def _plan(conn: asyncpg.Connection, settings: Settings, tenant_id: UUID, user_id: UUID,
                lines: list[OrderLine], codes: list[str], request: OrderRequest, now: dt.datetime,
                context: asyncpg.Record | None = None) -> OrderPlan:
    """Read what the rules need (the context, unless checkout's one read brought it, and the
    coupons), then let the pure planner decide (engine.domain.checkout_plan)."""
    if context is None:
        context = await conn.fetchrow(_CONTEXT, tenant_id, user_id, *_context_args(request))
    found = context is not None and context["u_id"] is not None
    stored = []
    unknown = None
    seen: set[str] = set()
    for code in codes if found else ():
        normal = coupon_store.normalize_code(code)
        if normal in seen:
            continue
        seen.add(normal)
        coupon = await coupon_store.find_for_user(conn, tenant_id, normal, user_id)
        if coupon is None:
            unknown = coupon_store.normalize_code(code)
            break
        stored.append(coupon)
    snapshot = CheckoutSnapshot(
        lines=lines, buyer_found=found, kyc_status=context["kyc_status"] if found else None,
        shipping_address=address_from(context, "s_") if found else None,
        billing_address=address_from(context, "b_") if found and request.billing_address_id is not None else None,
        billing_requested=request.billing_address_id is not None, unknown_coupon=unknown)
    method = (None if not found or context["m_id"] is None
              else method_from_row({f: context["m_" + f] for f in METHOD_FIELDS}))
    return plan_order(snapshot, stored, method, settings, now)


_ITEM_ROWS = """
SELECT p.id AS product_id, v.id AS variant_id, s.id AS stock_id, p.name AS product_name,
       coalesce(v.sku, p.sku) AS sku, p.status, (p.deleted_at IS NOT NULL OR v.deleted_at IS NOT NULL) AS deleted,
       buyer_price(p.tenant_id, $4, p.id, v.id, coalesce(v.price, p.price), now()) AS unit_price,
       p.track_inventory, p.max_per_order,
       p.commission_percentage, p.career_points_percentage, v.attributes AS variant_attributes,
       p.weight_grams, p.length_cm, p.width_cm, p.height_cm,
       (SELECT i.thumbnail_url FROM product_images i WHERE i.product_id = p.id
         ORDER BY i.is_primary DESC, i.position, i.id LIMIT 1) AS thumbnail_url,
       EXISTS (SELECT 1 FROM product_variants x WHERE x.product_id = p.id AND x.deleted_at IS NULL) AS has_variants
  FROM products p
  LEFT JOIN product_variants v ON v.id = $3 AND v.product_id = p.id AND v.tenant_id = p.tenant_id
  LEFT JOIN stock s ON s.product_id = p.id AND s.variant_id IS NOT DISTINCT FROM $3
 WHERE p.id = $2 AND p.tenant_id = $1
"""


async def _load_items(conn: asyncpg.Connection, settings: Settings, tenant_id: UUID,
                      items: Sequence[ItemRequest], user_id: UUID) -> list[OrderLine]:
    merged: dict[tuple[UUID, UUID | None], int] = {}
    for item in items:
        merged[(item.product_id, item.variant_id)] = merged.get((item.product_id, item.variant_id), 0) + item.quantity
    lines = []
    for (product_id, variant_id), quantity in merged.items():
        r = await conn.fetchrow(_ITEM_ROWS, tenant_id, product_id, variant_id, user_id)  # $4: the buyer's prices
        if r is None or (r["deleted"] and variant_id is None):
            raise ProductNotFound(extra={"productId": str(product_id)})
        if variant_id is not None and r["variant_id"] is None:
            raise VariantNotFound(extra={"variantId": str(variant_id)})
        if variant_id is None and r["has_variants"]:
            raise ValidationError(details={"items": [f"product {product_id} has variants: variantId is required"]})
        limit = settings.max_item_quantity if r["max_per_order"] is None else min(settings.max_item_quantity,
                                                                                  r["max_per_order"])
        if quantity > limit:
            raise MaxQuantityExceeded(f"At most {limit} of this item per order.",
                                      extra={"maxQuantity": limit, "productId": str(product_id)})
        attrs = r["variant_attributes"]
        lines.append(OrderLine(
            product_id=product_id, variant_id=r["variant_id"], stock_id=r["stock_id"],
            product_name=r["product_name"], sku=r["sku"], thumbnail_url=r["thumbnail_url"],
            variant_attributes=None if attrs is None else {str(k): str(v) for k, v in dict(attrs).items()},
            unit_price=r["unit_price"], quantity=quantity, commission_percentage=r["commission_percentage"],
            career_points_percentage=r["career_points_percentage"], track_inventory=r["track_inventory"],
            purchasable=r["status"] == "ACTIVE" and not r["deleted"], weight_grams=r["weight_grams"],
            length_cm=r["length_cm"], width_cm=r["width_cm"], height_cm=r["height_cm"]))
    return lines


# ----------------------------------------------------------------------------- steps 2-4: reserve and write

# The order is written by `place_orders` (migration 0013) from an OrderRecord
# (engine.order_writer): one call, one commit, for this order and - in batched mode - the other
# orders whose reservations came back with it (group commit). Paying from the balance adds
# the debit in the same transaction, so such an order is written alone.


async def _place(db: Database, stock: StockService, settings: Settings, *, tenant_id: UUID, user_id: UUID,
                 plan: _Plan, request: OrderRequest, cart: CartView | None, actor: str,
                 now: dt.datetime, respond: ResponseKey | None, limit_unpaid: bool) -> PlacedOrder:
    reservation = await stock.reserve_all(
        StockLine(ln.stock_id if ln.track_inventory else None, ln.quantity, ln.product_id, ln.variant_id)
        for ln in plan.lines)
    try:
        if request.pays_from_balance:  # the debit joins the order's transaction: no order without it
            async with db.transaction() as conn:
                return await _write(conn, settings, tenant_id=tenant_id, user_id=user_id, plan=plan,
                                    request=request, cart=cart, actor=actor, now=now, reservation=reservation,
                                    respond=respond, limit_unpaid=limit_unpaid)
        order = _Order(settings, tenant_id=tenant_id, user_id=user_id, plan=plan, request=request, cart=cart,
                       actor=actor, now=now, reservation=reservation, respond=respond, limit_unpaid=limit_unpaid)
        written = await stock.write_order(order.record)
        if not written.cart_ok and written.holds_ok and cart is not None:
            async with db.connection() as conn:
                return await order.outcome(conn, written)
        return await order.outcome(None, written)
    except BaseException:
        await _release_quietly(stock, reservation)
        raise


async def _release_quietly(stock: StockService, reservation: Reservation) -> None:
    try:
        await stock.release_all(reservation)
    except Exception:  # the original failure matters more; a failed release is the lesser loss
        pass


class _Order:
    """One checkout's order: its record for the order statement, and what its outcome means."""

    def __init__(self, settings: Settings, *, tenant_id: UUID, user_id: UUID, plan: _Plan, request: OrderRequest,
                 cart: CartView | None, actor: str, now: dt.datetime, reservation: Reservation,
                 respond: ResponseKey | None, limit_unpaid: bool = False) -> None:
        q = plan.quote
        self.settings, self.plan, self.cart, self.respond = settings, plan, cart, respond
        self.tenant_id, self.now = tenant_id, now
        self.balance = request.pays_from_balance
        # The hoarding limit: the buyer's own unpaid orders only (a balance payment is paid at once).
        self.unpaid_limit = (settings.max_unpaid_orders if limit_unpaid and not self.balance
                             and settings.max_unpaid_orders > 0 else None)
        self.method = "BALANCE" if self.balance else request.payment_method
        self.expires_at = None if self.balance else now + dt.timedelta(seconds=settings.payment_expiry_seconds)
        option = plan.option
        self.applied = [{"code": c.code, "kind": c.kind, "discount": str(c.discount)} for c in q.applied_coupons]
        self.order_id = uuid4()
        self.answer = self.placed()  # its number comes from the statement
        self.record = OrderRecord(
            order_id=self.order_id, tenant_id=tenant_id, user_id=user_id, year=f"{now.year:04d}",
            holds=list(reservation.holds), coupon_ids=sorted(plan.coupon_ids),
            cart_id=None if cart is None else cart.id, cart_version=None if cart is None else cart.version,
            payment_method=self.method, currency=plan.currency, subtotal=q.subtotal, discount=q.discount,
            shipping=q.shipping or money(0), tax=q.tax, total=q.total,
            shipping_address=plan.shipping_address.snapshot(),
            billing_address=None if plan.billing_address is None else plan.billing_address.snapshot(),
            shipping_method_id=UUID(option.method_id),
            shipping_method={"id": option.method_id, "name": option.name, "carrier": option.carrier,
                             "price": str(option.price), "estimatedDelivery": option.estimated_max.isoformat(),
                             "estimatedFrom": option.estimated_min.isoformat()},
            applied_coupons=self.applied, notes=request.notes, expires_at=self.expires_at,
            estimated_delivery=option.estimated_max, created_at=now, changed_by=actor,
            expiry_job=outbox.EXPIRE_ORDER,
            items=[ItemRecord(product_id=ln.product_id, variant_id=ln.variant_id,
                              stock_id=ln.stock_id if ln.track_inventory else None, product_name=ln.product_name,
                              sku=ln.sku, thumbnail_url=ln.thumbnail_url, variant_attributes=ln.variant_attributes,
                              quantity=ln.quantity, unit_price=money(ln.unit_price),
                              commission_percentage=ln.commission_percentage,
                              career_points_percentage=ln.career_points_percentage) for ln in plan.lines],
            # With an Idempotency-Key, the answer as data; the statement fills in the number.
            response_status=None if respond is None else respond.status,
            response_kind=None if respond is None else PLACED_ORDER,
            response_record=None if respond is None else self.answer,
            response_scope=None if respond is None else respond.scope,
            response_key=None if respond is None else respond.key,
            request_hash=None if respond is None else respond.digest.hex(),
            key_ttl=None if respond is None else respond.ttl, key_lease=None if respond is None else respond.lease,
            unpaid_limit=self.unpaid_limit)

    def placed(self) -> PlacedOrder:
        q, settings, method = self.plan.quote, self.settings, self.method
        payment_url = payment_page(settings, method=method, order_id=self.order_id, tenant_id=self.tenant_id,
                                   now=self.now)
        status = OrderStatus.PAID if self.balance else OrderStatus.PENDING_PAYMENT
        return PlacedOrder(order_id=self.order_id, order_number="", status=status.value, payment_method=method,
                           currency=self.plan.currency, subtotal=q.subtotal, discount=q.discount,
                           shipping=q.shipping or money(0), tax=q.tax, total=q.total, issued_at=self.now,
                           expires_at=self.expires_at, payment_url=payment_url,
                           estimated_delivery=self.plan.option.estimated_max, applied_coupons=self.applied)

    async def outcome(self, conn: asyncpg.Connection | None, written: Written) -> PlacedOrder:
        """The order, or the error of the first check that failed (nothing was written then).
        `conn` is needed only to tell an emptied cart from a changed one."""
        if not written.key_ok:  # another request has the Idempotency-Key: its answer is the caller's
            raise KeyTaken()
        if not written.holds_ok:  # the reconciler took them: this checkout outlived hold_grace
            raise Conflict("The stock reservation expired during checkout; check out again.")
        if not written.cart_ok:
            assert conn is not None and self.cart is not None
            if await conn.fetchval("SELECT NOT EXISTS (SELECT 1 FROM cart_items WHERE cart_id = $1)", self.cart.id):
                raise CartEmpty()  # another tab or process checked it out first
            raise Conflict("The cart changed during checkout; review it and try again.")
        if not written.coupons_ok:
            raise InvalidCoupon("A coupon reached its usage limit.", extra={"reason": "USAGE_LIMIT_REACHED"})
        if not written.slot_ok:
            raise TooManyUnpaidOrders(f"At most {self.unpaid_limit} unpaid orders at once: pay or cancel one first.",
                                      extra={"limit": self.unpaid_limit})
        number = written.order_number
        assert number is not None
        return msgspec.structs.replace(self.answer, order_number=number)


async def _write(conn: asyncpg.Connection, settings: Settings, *, tenant_id: UUID, user_id: UUID, plan: _Plan,
                 request: OrderRequest, cart: CartView | None, actor: str, now: dt.datetime,
                 reservation: Reservation, respond: ResponseKey | None, limit_unpaid: bool = False) -> PlacedOrder:
    """This order alone, on `conn` (in the caller's transaction when it pays from the balance)."""
    order = _Order(settings, tenant_id=tenant_id, user_id=user_id, plan=plan, request=request, cart=cart,
                   actor=actor, now=now, reservation=reservation, respond=respond, limit_unpaid=limit_unpaid)
    placed = await order.outcome(conn, (await write_orders(conn, [order.record]))[0])
    if order.balance:
        await _pay_from_balance(conn, tenant_id, user_id, order.order_id, placed.order_number, plan.quote.total)
        await change_status(conn, order.order_id, OrderStatus.PAID, actor=actor, note="Paid from partner balance",
                            tenant_id=tenant_id)
    return placed


async def _pay_from_balance(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, order_id: UUID,
                            number: str, amount: Decimal) -> None:
    """Debit the partner balance, conditionally (never below zero), with its ledger row."""
    left = await conn.fetchval(
        "UPDATE partner_balances SET balance = balance - $1, updated_at = now()"
        " WHERE user_id = $2 AND tenant_id = $3 AND balance >= $1 RETURNING balance", amount, user_id, tenant_id)
    if left is None:
        have = await conn.fetchval("SELECT balance FROM partner_balances WHERE user_id = $1 AND tenant_id = $2",
                                   user_id, tenant_id)
        raise InsufficientBalance(extra={"balance": money(have or 0), "required": amount})
    await conn.execute(
        "INSERT INTO partner_ledger (tenant_id, user_id, order_id, kind, amount, note)"
        " VALUES ($1, $2, $3, 'PAYMENT', $4, $5)", tenant_id, user_id, order_id, -amount, f"Payment for order {number}")
