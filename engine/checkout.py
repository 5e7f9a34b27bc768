"""Checkout: a cart (or a list of items) becomes an order, all or nothing.

The steps, and why in this order:
1. Read and check, no transaction held: one statement reads the cart, its lines, the buyer,
   both addresses and the shipping method (POST /orders reads its items, then the rest);
   CART_EMPTY, ITEMS_UNAVAILABLE, INVALID_ADDRESS, INVALID_SHIPPING_METHOD, INVALID_COUPON,
   price, KYC above `kyc_limit` (KYC_REQUIRED).
2. Reserve stock through the product actors (engine.stock), all or nothing
   (INSUFFICIENT_STOCK). No connection is held while waiting for the actors: a checkout
   holding one while the actor needs one could starve the pool.
3. One statement writes the order (`_PLACE`): it consumes the reservation's holds, bumps the
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
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Sequence
from uuid import UUID, uuid4

import asyncpg

from engine import coupons as coupon_store
from engine import outbox
from engine.addresses import FIELDS as ADDRESS_FIELDS
from engine.addresses import Address, address_from
from engine.cart import CartView, cart_with_lines_query, load_cart_to_check_out
from engine.db import Database
from engine.idempotency import ResponseSlot, StoredResponse
from engine.domain.errors import (CartEmpty, Conflict, InsufficientBalance, InsufficientStock, InvalidAddress,
                           InvalidCoupon, ItemsUnavailable, KycRequired, MaxQuantityExceeded, ProductNotFound,
                           TooManyUnpaidOrders, UserNotFound, ValidationError, VariantNotFound)
from engine.domain.money import money
from engine.domain.order_status import OrderStatus
from engine.orders import change_status
from engine.payments import payment_url as payment_page
from engine.domain.pricing import Coupon, PricedLine, Quote, price
from engine.settings import Settings
from engine.domain.shipping_rules import ItemSize, ShippingOption, pack, quote_method, validate_destination
from engine.shipping_store import FIELDS as METHOD_FIELDS
from engine.shipping_store import method_from_row
from engine.stock import Reservation, StockLine, StockService

PAYMENT_METHODS = ("CARD", "BANK_TRANSFER", "EWALLET", "BALANCE")
# The sandbox bank account shown for BANK_TRANSFER (a real shop configures its own).
BANK_NAME = "Sandbox Commerce Bank"
BANK_ACCOUNT = "40702810900000000001"
BANK_BIK = "044525999"


@dataclass(frozen=True, slots=True)
class OrderLine:
    """A line as the order keeps it: what was bought, at which price, from which stock row."""

    product_id: UUID
    variant_id: UUID | None
    stock_id: UUID | None
    product_name: str
    sku: str
    thumbnail_url: str | None
    variant_attributes: dict[str, str] | None
    unit_price: Decimal
    quantity: int
    commission_percentage: Decimal
    career_points_percentage: Decimal
    track_inventory: bool
    purchasable: bool
    weight_grams: int | None = None
    length_cm: Decimal | None = None
    width_cm: Decimal | None = None
    height_cm: Decimal | None = None

    @classmethod
    def of(cls, line: Any) -> "OrderLine":
        """From an engine.cart.CartLine (or anything with the same attributes)."""
        return cls(product_id=line.product_id, variant_id=line.variant_id, stock_id=line.stock_id,
                   product_name=line.product_name, sku=line.sku, thumbnail_url=line.thumbnail_url,
                   variant_attributes=line.variant_attributes, unit_price=line.unit_price, quantity=line.quantity,
                   commission_percentage=line.commission_percentage,
                   career_points_percentage=line.career_points_percentage, track_inventory=line.track_inventory,
                   purchasable=line.status == "ACTIVE" and not line.deleted, weight_grams=line.weight_grams,
                   length_cm=line.length_cm, width_cm=line.width_cm, height_cm=line.height_cm)


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


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    order_id: UUID
    order_number: str
    status: str
    payment_method: str
    currency: str
    quote: Quote
    expires_at: dt.datetime | None
    payment_url: str | None
    bank_details: dict[str, str] | None
    estimated_delivery: dt.date | None
    applied_coupons: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything step 1 decided, ready to be written."""

    lines: list[OrderLine]
    coupon_ids: list[UUID]
    quote: Quote
    option: ShippingOption
    shipping_address: Address
    billing_address: Address | None
    currency: str


# ----------------------------------------------------------------------------- entry points

async def checkout(db: Database, stock: StockService, settings: Settings, *, tenant_id: UUID, user_id: UUID,
                   request: OrderRequest, actor: str, now: dt.datetime,
                   respond: ResponseSlot | None = None, limit_unpaid: bool = True) -> PlacedOrder:
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
                      now: dt.datetime, respond: ResponseSlot | None = None,
                      limit_unpaid: bool = False) -> PlacedOrder:
    """An order straight from items (POST /orders), for `user_id` (the caller, or a customer
    of the tenant named by an orders:write key). Same checks and guarantees as checkout;
    `limit_unpaid` when the buyer orders for themselves."""
    if not items:
        raise ValidationError(details={"items": ["at least one item is required"]})
    async with db.connection() as conn:
        lines = await _load_items(conn, settings, tenant_id, items)
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
                context: asyncpg.Record | None = None) -> _Plan:
    if context is None:
        context = await conn.fetchrow(_CONTEXT, tenant_id, user_id, *_context_args(request))
    if context is None or context["u_id"] is None:
        raise UserNotFound()
    unavailable = [ln for ln in lines if not ln.purchasable]
    if unavailable:
        raise ItemsUnavailable(extra={"items": [
            {"productId": str(ln.product_id), "variantId": str(ln.variant_id) if ln.variant_id else None,
             "name": ln.product_name} for ln in unavailable]})

    shipping_address = address_from(context, "s_")
    if shipping_address is None:
        raise InvalidAddress("Shipping address not found.", details={"shippingAddressId": ["not found"]})
    try:
        country, postal = validate_destination(shipping_address.country, shipping_address.postal_code)
    except ValidationError:
        raise InvalidAddress(details={"shippingAddressId": ["country or postal code is malformed"]}) from None
    billing = None
    if request.billing_address_id is not None:
        billing = address_from(context, "b_")
        if billing is None:
            raise InvalidAddress("Billing address not found.", details={"billingAddressId": ["not found"]})

    stored = []
    seen: set[str] = set()
    for code in codes:
        normal = coupon_store.normalize_code(code)
        if normal in seen:
            continue
        seen.add(normal)
        found = await coupon_store.find_for_user(conn, tenant_id, normal, user_id)
        if found is None:
            raise coupon_store.invalid(code)
        stored.append(found)
    coupons: list[Coupon] = [s.coupon for s in stored]

    priced = [PricedLine(line_id=str(i), product_id=ln.product_id, variant_id=ln.variant_id,
                         unit_price=money(ln.unit_price), quantity=ln.quantity,
                         commission_percentage=ln.commission_percentage,
                         career_points_percentage=ln.career_points_percentage) for i, ln in enumerate(lines)]
    goods = price(priced, coupons, None, settings.tax_rate, now, strict=True)
    method = None if context["m_id"] is None else method_from_row({f: context["m_" + f] for f in METHOD_FIELDS})
    parcel = pack(ItemSize(ln.weight_grams, ln.length_cm, ln.width_cm, ln.height_cm, ln.quantity) for ln in lines)
    # The free-shipping threshold is compared with what the goods cost after discounts.
    option = quote_method(method, country, postal, parcel, goods.subtotal - goods.discount, now.date())
    quote = price(priced, coupons, option.price, settings.tax_rate, now, strict=True)

    if quote.total > settings.kyc_limit and context["kyc_status"] != "VERIFIED":
        raise KycRequired(extra={"kycLimit": settings.kyc_limit, "kycStatus": context["kyc_status"]})
    for ln in lines:
        if ln.track_inventory and ln.stock_id is None:  # tracked but no stock row: nothing to sell
            raise InsufficientStock("Only 0 available.", extra={"available": 0, "productId": str(ln.product_id)})
    currency = method.currency if method is not None else settings.currency
    return _Plan(lines, [s.id for s in stored], quote, option, shipping_address, billing, currency)


_ITEM_ROWS = """
SELECT p.id AS product_id, v.id AS variant_id, s.id AS stock_id, p.name AS product_name,
       coalesce(v.sku, p.sku) AS sku, p.status, (p.deleted_at IS NOT NULL OR v.deleted_at IS NOT NULL) AS deleted,
       coalesce(v.price, p.price) AS unit_price, p.track_inventory, p.max_per_order,
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
                      items: Sequence[ItemRequest]) -> list[OrderLine]:
    merged: dict[tuple[UUID, UUID | None], int] = {}
    for item in items:
        merged[(item.product_id, item.variant_id)] = merged.get((item.product_id, item.variant_id), 0) + item.quantity
    lines = []
    for (product_id, variant_id), quantity in merged.items():
        r = await conn.fetchrow(_ITEM_ROWS, tenant_id, product_id, variant_id)
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

# The order in ONE statement (one round trip, one commit) unless it is paid from the balance,
# which adds the debit in the same transaction. Reads and locks come first, each gated on the
# one before, so nothing is written unless every check passes:
#   held     the reservation's holds, locked ($1); all must still be there (not reclaimed);
#   cart     the cart's version bumped if still the one priced ($3, $4) - a cart write or a
#            checkout in another process since then makes this find nothing; cart row lock next,
#            as every cart write takes it first;
#   usable   the coupons ($2) still within their limits, locked in id order;
#   slot     with a limit on unpaid orders ($43, NULL for none): one of the buyer's numbered
#            slots (migration 0011), free when absent or when its order is no longer unpaid.
#            Its primary key is what makes two concurrent orders unable to share a slot: the
#            loser's ON CONFLICT sees the winner's row and its still-unpaid order, and refuses;
#   go       one row when all of it holds.
# Then, each from `go`: holds consumed (the order owns the units from here on), coupon usage
# counted, order numbered from the tenant's sequence, items, history, redemptions, the payment
# expiry job, the cart emptied, and - with an Idempotency-Key - the response stored under the
# key ($38-$42: rendered beforehand with a marker where the order number goes, which the
# statement replaces with the number it assigned). The caller learns which check failed from
# the flags.
_PLACE = """
WITH held AS (SELECT id FROM stock_holds WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE),
     holds_ok AS (SELECT (SELECT count(*) FROM held) = cardinality($1::uuid[]) AS ok),
     cart AS (UPDATE carts SET version = version + 1, updated_at = now()
               WHERE id = $3 AND version = $4 AND (SELECT ok FROM holds_ok) RETURNING id),
     cart_ok AS (SELECT (SELECT ok FROM holds_ok) AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM cart)) AS ok),
     usable AS (SELECT c.id FROM coupons c
                 WHERE c.id = ANY($2::uuid[]) AND (SELECT ok FROM cart_ok) AND c.active
                   AND (c.usage_limit IS NULL OR c.used_count < c.usage_limit)
                   AND (c.per_user_limit IS NULL OR c.per_user_limit >
                        (SELECT count(*) FROM coupon_redemptions r WHERE r.coupon_id = c.id AND r.user_id = $6))
                 ORDER BY c.id FOR UPDATE),
     coupons_ok AS (SELECT (SELECT count(*) FROM usable) = cardinality($2::uuid[]) AS ok),
     checked AS (SELECT 1 AS one WHERE (SELECT ok FROM cart_ok) AND (SELECT ok FROM coupons_ok)),
     free_slot AS (SELECT s FROM generate_series(1, $43::int) s
                    WHERE EXISTS (SELECT 1 FROM checked)
                      AND NOT EXISTS (SELECT 1 FROM unpaid_order_slots u WHERE u.user_id = $6 AND u.slot = s
                                         AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = u.order_id
                                                           AND o.status <> 'PENDING_PAYMENT'))
                    ORDER BY s LIMIT 1),
     slot AS (INSERT INTO unpaid_order_slots (user_id, slot, order_id) SELECT $6, s, $7 FROM free_slot
              ON CONFLICT (user_id, slot) DO UPDATE SET order_id = EXCLUDED.order_id, claimed_at = now()
               WHERE EXISTS (SELECT 1 FROM orders o WHERE o.id = unpaid_order_slots.order_id
                               AND o.status <> 'PENDING_PAYMENT')
              RETURNING 1),
     slot_ok AS (SELECT $43::int IS NULL OR EXISTS (SELECT 1 FROM slot) AS ok),
     go AS (SELECT 1 AS one FROM checked WHERE (SELECT ok FROM slot_ok)),
     consumed AS (DELETE FROM stock_holds WHERE id IN (SELECT id FROM held) AND EXISTS (SELECT 1 FROM go)),
     counted AS (UPDATE coupons SET used_count = used_count + 1
                  WHERE id IN (SELECT id FROM usable) AND EXISTS (SELECT 1 FROM go)),
     numbered AS (SELECT next_order_sequence($5)::text AS n FROM go),
     placed AS (
        INSERT INTO orders (id, tenant_id, user_id, order_number, status, payment_method, currency, subtotal,
                            discount, shipping, tax, total, shipping_address, billing_address, shipping_method_id,
                            shipping_method, applied_coupons, notes, expires_at, estimated_delivery,
                            created_at, updated_at)
        SELECT $7, $5, $6, 'ORD-' || $8 || '-' || lpad(n, greatest(8, length(n)), '0'), 'PENDING_PAYMENT',
               $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $24
          FROM numbered RETURNING id, order_number),
     items AS (
        INSERT INTO order_items (tenant_id, order_id, product_id, variant_id, stock_id, product_name, sku,
                                 thumbnail_url, variant_attributes, quantity, unit_price, total_price,
                                 commission_percentage, career_points_percentage)
        SELECT $5, p.id, i.product_id, i.variant_id, i.stock_id, i.product_name, i.sku, i.thumbnail_url,
               i.attributes::jsonb, i.quantity, i.unit_price, i.unit_price * i.quantity, i.commission,
               i.career_points
          FROM placed p, unnest($25::uuid[], $26::uuid[], $27::uuid[], $28::text[], $29::text[], $30::text[],
                                $31::text[], $32::int[], $33::numeric[], $34::numeric[], $35::numeric[])
               AS i(product_id, variant_id, stock_id, product_name, sku, thumbnail_url, attributes, quantity,
                    unit_price, commission, career_points)),
     history AS (INSERT INTO order_status_history (tenant_id, order_id, status, note, changed_by)
                 SELECT $5, id, 'PENDING_PAYMENT', NULL, $36 FROM placed),
     redeemed AS (INSERT INTO coupon_redemptions (tenant_id, coupon_id, user_id, order_id)
                  SELECT $5, u.id, $6, p.id FROM placed p, usable u),
     queued AS (INSERT INTO outbox (tenant_id, job, payload, not_before)
                SELECT $5, $37, jsonb_build_object('order_id', id::text), $22 FROM placed WHERE $22 IS NOT NULL),
     uncouponed AS (DELETE FROM cart_coupons WHERE cart_id = (SELECT id FROM cart) AND EXISTS (SELECT 1 FROM go)),
     emptied AS (DELETE FROM cart_items WHERE cart_id = (SELECT id FROM cart) AND EXISTS (SELECT 1 FROM go)),
     stored AS (UPDATE idempotency_keys
                   SET response_status = $38,
                       response_body = convert_to(replace(convert_from($39::bytea, 'UTF8'), $40,
                                                          (SELECT order_number FROM placed)), 'UTF8')
                 WHERE tenant_id = $5 AND scope = $41 AND key = $42 AND response_status IS NULL
                   AND EXISTS (SELECT 1 FROM placed) RETURNING 1)
SELECT (SELECT ok FROM holds_ok) AS holds_ok, (SELECT ok FROM cart_ok) AS cart_ok,
       (SELECT ok FROM coupons_ok) AS coupons_ok, (SELECT ok FROM slot_ok) AS slot_ok,
       (SELECT order_number FROM placed) AS order_number,
       EXISTS (SELECT 1 FROM stored) AS stored
"""


async def _place(db: Database, stock: StockService, settings: Settings, *, tenant_id: UUID, user_id: UUID,
                 plan: _Plan, request: OrderRequest, cart: CartView | None, actor: str,
                 now: dt.datetime, respond: ResponseSlot | None, limit_unpaid: bool) -> PlacedOrder:
    reservation = await stock.reserve_all(
        StockLine(ln.stock_id if ln.track_inventory else None, ln.quantity, ln.product_id, ln.variant_id)
        for ln in plan.lines)
    try:
        if request.pays_from_balance:  # the debit joins the order's transaction: no order without it
            async with db.transaction() as conn:
                return await _write(conn, settings, tenant_id=tenant_id, user_id=user_id, plan=plan,
                                    request=request, cart=cart, actor=actor, now=now, reservation=reservation,
                                    respond=respond, limit_unpaid=limit_unpaid)
        async with db.connection() as conn:
            return await _write(conn, settings, tenant_id=tenant_id, user_id=user_id, plan=plan,
                                request=request, cart=cart, actor=actor, now=now, reservation=reservation,
                                respond=respond, limit_unpaid=limit_unpaid)
    except BaseException:
        await _release_quietly(stock, reservation)
        raise


async def _release_quietly(stock: StockService, reservation: Reservation) -> None:
    try:
        await stock.release_all(reservation)
    except Exception:  # the original failure matters more; a failed release is the lesser loss
        pass


async def _write(conn: asyncpg.Connection, settings: Settings, *, tenant_id: UUID, user_id: UUID, plan: _Plan,
                 request: OrderRequest, cart: CartView | None, actor: str, now: dt.datetime,
                 reservation: Reservation, respond: ResponseSlot | None, limit_unpaid: bool) -> PlacedOrder:
    q = plan.quote
    balance = request.pays_from_balance
    method = "BALANCE" if balance else request.payment_method
    expires_at = None if balance else now + dt.timedelta(seconds=settings.payment_expiry_seconds)
    option = plan.option
    shipping_snapshot = {"id": option.method_id, "name": option.name, "carrier": option.carrier,
                         "price": str(option.price), "estimatedDelivery": option.estimated_max.isoformat(),
                         "estimatedFrom": option.estimated_min.isoformat()}
    applied = [{"code": c.code, "kind": c.kind, "discount": str(c.discount)} for c in q.applied_coupons]
    lines = plan.lines
    # The hoarding limit: the buyer's own unpaid orders only (a balance payment is paid at once).
    unpaid_limit = settings.max_unpaid_orders if limit_unpaid and not balance and settings.max_unpaid_orders > 0 else None
    order_id = uuid4()

    def placed(number: str) -> PlacedOrder:
        payment_url = payment_page(settings, method=method, order_id=order_id, tenant_id=tenant_id, now=now)
        bank = ({"bankName": BANK_NAME, "accountNumber": BANK_ACCOUNT, "bik": BANK_BIK,
                 "purpose": f"Payment for order {number}"} if method == "BANK_TRANSFER" else None)
        status = OrderStatus.PAID if balance else OrderStatus.PENDING_PAYMENT
        return PlacedOrder(order_id=order_id, order_number=number, status=status.value, payment_method=method,
                           currency=plan.currency, quote=q, expires_at=expires_at, payment_url=payment_url,
                           bank_details=bank, estimated_delivery=option.estimated_max, applied_coupons=applied)

    marker, response_status, template = None, None, None
    if respond is not None:  # the response as it will be, a marker standing for the order number
        marker = f"ORD-{uuid4().hex}"
        response_status, template = respond.render(placed(marker))
    row = await conn.fetchrow(
        _PLACE, list(reservation.holds), sorted(plan.coupon_ids), None if cart is None else cart.id,
        None if cart is None else cart.version, tenant_id, user_id, order_id, f"{now.year:04d}",
        method, plan.currency, q.subtotal, q.discount, q.shipping or money(0), q.tax, q.total,
        plan.shipping_address.snapshot(),
        None if plan.billing_address is None else plan.billing_address.snapshot(),
        UUID(option.method_id), shipping_snapshot, applied, request.notes, expires_at, option.estimated_max,
        now,
        [ln.product_id for ln in lines], [ln.variant_id for ln in lines],
        [ln.stock_id if ln.track_inventory else None for ln in lines], [ln.product_name for ln in lines],
        [ln.sku for ln in lines], [ln.thumbnail_url for ln in lines],
        [None if ln.variant_attributes is None else json.dumps(ln.variant_attributes) for ln in lines],
        [ln.quantity for ln in lines], [money(ln.unit_price) for ln in lines],
        [ln.commission_percentage for ln in lines], [ln.career_points_percentage for ln in lines],
        actor, outbox.EXPIRE_ORDER, response_status, template, marker,
        None if respond is None else respond.scope, None if respond is None else respond.key,
        unpaid_limit)
    if not row["holds_ok"]:  # the reconciler took them: this checkout outlived hold_grace
        raise Conflict("The stock reservation expired during checkout; check out again.")
    if not row["cart_ok"]:
        if await conn.fetchval("SELECT NOT EXISTS (SELECT 1 FROM cart_items WHERE cart_id = $1)", cart.id):
            raise CartEmpty()  # another tab or process checked it out first
        raise Conflict("The cart changed during checkout; review it and try again.")
    if not row["coupons_ok"]:
        raise InvalidCoupon("A coupon reached its usage limit.", extra={"reason": "USAGE_LIMIT_REACHED"})
    if not row["slot_ok"]:
        raise TooManyUnpaidOrders(f"At most {unpaid_limit} unpaid orders at once: pay or cancel one first.",
                                  extra={"limit": unpaid_limit})
    number = row["order_number"]

    if balance:
        await _pay_from_balance(conn, tenant_id, user_id, order_id, number, q.total)
        await change_status(conn, order_id, OrderStatus.PAID, actor=actor, note="Paid from partner balance",
                            tenant_id=tenant_id)
    if respond is not None and row["stored"]:
        # Committed with the order (or, paying from the balance, commits with the debit).
        respond.stored = StoredResponse(response_status, template.replace(marker.encode(), number.encode()))
    return placed(number)


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
