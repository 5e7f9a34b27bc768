"""CartView is a plain snapshot the pure pricing rules can price: counts, availability, quote."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from engine.cart import CartLine, CartView
from engine.domain.pricing import Coupon

NOW = dt.datetime(2024, 1, 15, 18, 0, tzinfo=dt.timezone.utc)


def line(price: str, quantity: int, *, status: str = "ACTIVE", deleted: bool = False, commission: str = "0") -> CartLine:
    return CartLine(
        id=uuid.uuid4(), product_id=uuid.uuid4(), variant_id=None, stock_id=uuid.uuid4(), product_name="P",
        sku="SKU", slug="p", thumbnail_url=None, status=status, deleted=deleted, unit_price=Decimal(price),
        product_price=Decimal(price), compare_at_price=None, currency="RUB", quantity=quantity,
        track_inventory=True, stock_available=10, max_per_order=None, commission_percentage=Decimal(commission),
        career_points_percentage=Decimal(0), variant_attributes=None, weight_grams=500, length_cm=None,
        width_cm=None, height_cm=None, added_at=NOW)


def view(*lines: CartLine, coupons: tuple[Coupon, ...] = ()) -> CartView:
    return CartView(id=uuid.uuid4(), user_id=uuid.uuid4(), lines=lines, coupons=coupons,
                    coupon_ids={c.code: uuid.uuid4() for c in coupons}, updated_at=NOW)


def test_counts_and_lookup():
    a, b = line("2500", 2), line("10.50", 3)
    v = view(a, b)
    assert (v.item_count, v.total_quantity, v.is_empty) == (2, 5, False)
    assert v.line(b.id) is b and v.line(uuid.uuid4()) is None
    assert b.total_price == Decimal("31.50")
    assert view().is_empty


def test_unavailable_lines():
    ok, draft, gone = line("1", 1), line("1", 1, status="DRAFT"), line("1", 1, deleted=True)
    assert view(ok, draft, gone).unavailable == (draft, gone)


def test_quote_is_the_document_example():
    q = view(line("2500", 2)).quote(tax_rate=Decimal("0.20"), now=NOW)
    assert (q.subtotal, q.discount, q.shipping, q.tax, q.total) == (5000, 0, None, 1000, 6000)


def test_quote_with_coupon_and_partner_estimate():
    v = view(line("1000", 2, commission="10"), coupons=(Coupon(code="HALF", kind="PERCENTAGE", value=Decimal(50)),))
    q = v.quote(tax_rate=Decimal("0.20"), now=NOW)
    assert q.discount == 1000 and q.total == 1200 and q.estimated_commission == 100
    lines = v.pricing_lines()
    assert lines[0].line_id == v.lines[0].id and lines[0].quantity == 2
