"""engine.domain.checkout_plan: the checkout's rules, decided from what was read (no I/O)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal

import pytest

from engine.addresses import Address
from engine.domain.checkout_plan import CheckoutSnapshot, OrderLine, plan_order
from engine.domain.errors import (InsufficientStock, InvalidAddress, InvalidCoupon, ItemsUnavailable, KycRequired,
                           UserNotFound)
from engine.domain.pricing import Coupon
from engine.settings import Settings
from engine.domain.shipping_rules import ShippingMethod, WeightBand, Zone

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)
SETTINGS = Settings(kyc_limit=Decimal("1000"), tax_rate=Decimal("0.20"))
METHOD = ShippingMethod(id=str(uuid.uuid4()), name="Courier", carrier="SDEK", description=None, min_days=1,
                        max_days=3, currency="RUB", free_threshold=Decimal("500"),
                        zones=(Zone(frozenset({"RU"})),), weight_bands=(WeightBand(None, Decimal("300")),))


def _address(country: str = "RU", postal: str = "101000") -> Address:
    return Address(id=uuid.uuid4(), recipient_name="A", street="S", city="C", region="R", country=country,
                   postal_code=postal, phone=None, is_default=True, created_at=NOW, updated_at=NOW)


def _line(price: str = "100", quantity: int = 1, **changes) -> OrderLine:
    line = OrderLine(product_id=uuid.uuid4(), variant_id=None, stock_id=uuid.uuid4(), product_name="Thing", sku="T",
                     thumbnail_url=None, variant_attributes=None, unit_price=Decimal(price), quantity=quantity,
                     commission_percentage=Decimal(0), career_points_percentage=Decimal(0), track_inventory=True,
                     purchasable=True)
    return replace(line, **changes)


def _snapshot(*lines: OrderLine, **changes) -> CheckoutSnapshot:
    snap = CheckoutSnapshot(lines=list(lines) or [_line()], buyer_found=True, kyc_status="NONE",
                            shipping_address=_address())
    return replace(snap, **changes)


@dataclass(frozen=True)
class _Stored:
    id: uuid.UUID
    coupon: Coupon


def _coupon(kind: str = "PERCENTAGE", value: str = "10", **changes) -> _Stored:
    return _Stored(uuid.uuid4(), Coupon(code="C" + uuid.uuid4().hex[:6].upper(), kind=kind, value=Decimal(value),
                                        **changes))


def test_a_plain_order_is_priced_shipped_and_taxed():
    plan = plan_order(_snapshot(_line("100", 2)), [], METHOD, SETTINGS, NOW)
    assert plan.quote.subtotal == Decimal("200.00")
    assert plan.option.price == Decimal("300.00")
    assert plan.quote.tax == Decimal("40.00")             # on the goods, not the shipping
    assert plan.quote.total == Decimal("540.00")
    assert plan.currency == "RUB" and plan.coupon_ids == []


def test_free_shipping_threshold_is_compared_after_discounts():
    # 500 of goods reaches the threshold; 10 % off takes them below it.
    assert plan_order(_snapshot(_line("500")), [], METHOD, SETTINGS, NOW).option.price == 0
    coupon = _coupon("PERCENTAGE", "10")
    plan = plan_order(_snapshot(_line("500")), [coupon], METHOD, SETTINGS, NOW)
    assert plan.option.price == Decimal("300.00") and plan.coupon_ids == [coupon.id]


def test_the_rules_answer_in_order():
    with pytest.raises(UserNotFound):
        plan_order(_snapshot(buyer_found=False), [], METHOD, SETTINGS, NOW)
    with pytest.raises(ItemsUnavailable) as info:
        plan_order(_snapshot(_line(purchasable=False), shipping_address=None), [], METHOD, SETTINGS, NOW)
    assert len(info.value.extra["items"]) == 1
    with pytest.raises(InvalidAddress):
        plan_order(_snapshot(shipping_address=None), [], METHOD, SETTINGS, NOW)
    with pytest.raises(InvalidAddress):
        plan_order(_snapshot(shipping_address=_address(postal="!!")), [], METHOD, SETTINGS, NOW)
    with pytest.raises(InvalidAddress):
        plan_order(_snapshot(billing_requested=True, unknown_coupon="NOPE"), [], METHOD, SETTINGS, NOW)
    with pytest.raises(InvalidCoupon) as info:
        plan_order(_snapshot(unknown_coupon="NOPE"), [], METHOD, SETTINGS, NOW)
    assert info.value.extra == {"couponCode": "NOPE", "reason": "UNKNOWN_CODE"}


def test_coupon_limits_are_checked_before_anything_is_reserved():
    used_up = _coupon(usage_limit=3, used_count=3)
    with pytest.raises(InvalidCoupon):
        plan_order(_snapshot(), [used_up], METHOD, SETTINGS, NOW)
    mine_used = _coupon(per_user_limit=1, used_by_user=1)
    with pytest.raises(InvalidCoupon):
        plan_order(_snapshot(), [mine_used], METHOD, SETTINGS, NOW)


def test_kyc_is_required_above_the_limit_unless_verified():
    big = _line("1000")
    with pytest.raises(KycRequired) as info:
        plan_order(_snapshot(big), [], METHOD, SETTINGS, NOW)
    assert info.value.extra["kycStatus"] == "NONE"
    assert plan_order(_snapshot(big, kyc_status="VERIFIED"), [], METHOD, SETTINGS, NOW).quote.total > 1000


def test_a_tracked_line_without_a_stock_row_is_insufficient_stock():
    with pytest.raises(InsufficientStock):
        plan_order(_snapshot(_line(stock_id=None)), [], METHOD, SETTINGS, NOW)
    untracked = _line(stock_id=None, track_inventory=False)
    assert plan_order(_snapshot(untracked), [], METHOD, SETTINGS, NOW).lines == [untracked]
