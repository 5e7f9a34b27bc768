"""What a checkout will order, decided from what was read - no I/O, `now` passed in.

`plan_order` holds the checkout's rules in the order they answer: the buyer exists, every line
is purchasable (ITEMS_UNAVAILABLE), the shipping address exists and its country and postal code
are well formed (INVALID_ADDRESS), the billing address exists when one was named, the coupons
apply (pricing: INVALID_COUPON), the method ships there (shipping_rules), the free-shipping
threshold is compared with the discounted goods, the total above `kyc_limit` needs a verified
buyer (KYC_REQUIRED), and a tracked line needs a stock row (INSUFFICIENT_STOCK).
The coupon usage limits are checked here for the early, explained answer, and again by the order
statement under the coupon's row lock (migration 0013), which is the one that holds under
concurrency.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, Sequence
from uuid import UUID

from engine.domain.errors import (InsufficientStock, InvalidAddress, InvalidCoupon, ItemsUnavailable, KycRequired, UserNotFound,
                           ValidationError)
from engine.domain.money import money
from engine.domain.pricing import Coupon, PricedLine, Quote, price
from engine.domain.shipping_rules import ItemSize, ShippingMethod, ShippingOption, pack, quote_method, validate_destination
from engine.domain.address import PostalAddress as Address


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
class CheckoutSnapshot:
    """What checkout read: the lines, the buyer, the addresses (None where missing or not the
    buyer's) and whether a billing address was asked for."""

    lines: Sequence[OrderLine]
    buyer_found: bool
    kyc_status: str | None
    shipping_address: Address | None
    billing_address: Address | None = None
    billing_requested: bool = False
    unknown_coupon: str | None = None   # the first code (normalized) that matched no coupon


class PlanSettings(Protocol):
    """What the rules read of the settings (engine.settings.Settings has them)."""

    @property
    def tax_rate(self) -> Decimal: ...
    @property
    def kyc_limit(self) -> Decimal: ...
    @property
    def currency(self) -> str: ...


class PlanCoupon(Protocol):
    """A coupon as stored (engine.coupons.StoredCoupon): its id, and what pricing needs."""

    @property
    def id(self) -> UUID: ...
    @property
    def coupon(self) -> Coupon: ...


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """Everything the checkout decided, ready to be reserved and written."""

    lines: list[OrderLine]
    coupon_ids: list[UUID]
    quote: Quote
    option: ShippingOption
    shipping_address: Address
    billing_address: Address | None
    currency: str


def plan_order(snapshot: CheckoutSnapshot, coupons: Sequence[PlanCoupon], method: ShippingMethod | None,
               settings: PlanSettings, now: dt.datetime) -> OrderPlan:
    if not snapshot.buyer_found:
        raise UserNotFound()
    lines = list(snapshot.lines)
    unavailable = [ln for ln in lines if not ln.purchasable]
    if unavailable:
        raise ItemsUnavailable(extra={"items": [
            {"productId": str(ln.product_id), "variantId": str(ln.variant_id) if ln.variant_id else None,
             "name": ln.product_name} for ln in unavailable]})

    shipping_address = snapshot.shipping_address
    if shipping_address is None:
        raise InvalidAddress("Shipping address not found.", details={"shippingAddressId": ["not found"]})
    try:
        country, postal = validate_destination(shipping_address.country, shipping_address.postal_code)
    except ValidationError:
        raise InvalidAddress(details={"shippingAddressId": ["country or postal code is malformed"]}) from None
    billing = None
    if snapshot.billing_requested:
        billing = snapshot.billing_address
        if billing is None:
            raise InvalidAddress("Billing address not found.", details={"billingAddressId": ["not found"]})

    if snapshot.unknown_coupon is not None:
        raise InvalidCoupon(extra={"couponCode": snapshot.unknown_coupon[:64], "reason": "UNKNOWN_CODE"})
    chosen = [c.coupon for c in coupons]
    priced = [PricedLine(line_id=str(i), product_id=ln.product_id, variant_id=ln.variant_id,
                         unit_price=money(ln.unit_price), quantity=ln.quantity,
                         commission_percentage=ln.commission_percentage,
                         career_points_percentage=ln.career_points_percentage) for i, ln in enumerate(lines)]
    goods = price(priced, chosen, None, settings.tax_rate, now, strict=True)
    parcel = pack(ItemSize(ln.weight_grams, ln.length_cm, ln.width_cm, ln.height_cm, ln.quantity) for ln in lines)
    # The free-shipping threshold is compared with what the goods cost after discounts.
    option = quote_method(method, country, postal, parcel, goods.subtotal - goods.discount, now.date())
    quote = price(priced, chosen, option.price, settings.tax_rate, now, strict=True)

    if quote.total > settings.kyc_limit and snapshot.kyc_status != "VERIFIED":
        raise KycRequired(extra={"kycLimit": settings.kyc_limit, "kycStatus": snapshot.kyc_status})
    for ln in lines:
        if ln.track_inventory and ln.stock_id is None:  # tracked but no stock row: nothing to sell
            raise InsufficientStock("Only 0 available.", extra={"available": 0, "productId": str(ln.product_id)})
    currency = method.currency if method is not None else settings.currency
    return OrderPlan(lines, [c.id for c in coupons], quote, option, shipping_address, billing, currency)
