"""Cart pricing: coupon validity and stacking, discount, tax, total and partner estimates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from engine.domain.errors import InvalidCoupon
from engine.domain.pricing import AppliedCoupon, Coupon, PricedLine, check_coupon, check_stacking, price

D = Decimal
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
TAX = D("0.20")


def line(unit_price: str, quantity: int, commission: str = "0", points: str = "0", n: int = 1) -> PricedLine:
    return PricedLine(f"line-{n}", f"product-{n}", None, D(unit_price), quantity, D(commission), D(points))


def pct(value: str, code: str = "WELCOME10", **kw) -> Coupon:
    return Coupon(code=code, kind="PERCENTAGE", value=D(value), **kw)


def fixed(value: str, code: str = "MINUS500", **kw) -> Coupon:
    return Coupon(code=code, kind="FIXED", value=D(value), **kw)


def test_line_total_is_unit_price_times_quantity():
    assert line("25.99", 3).total == D("77.97")


def test_storefront_cart_example_subtotal_5000_no_coupon_no_shipping():
    quote = price([line("2500", 2)], [], None, TAX, NOW)
    assert (quote.subtotal, quote.discount, quote.shipping, quote.tax, quote.total) == (
        D("5000"), D("0"), None, D("1000"), D("6000"))
    assert (quote.item_count, quote.total_quantity) == (1, 2)
    assert quote.applied_coupons == []


def test_percentage_coupon_discount_is_taxed_after_discount_and_shipping_untaxed():
    quote = price([line("2500", 2), line("2500", 1, n=2)], [pct("10")], D("350"), TAX, NOW)
    assert quote.subtotal == D("7500")
    assert quote.discount == D("750")
    assert quote.tax == D("1350.00")                    # 20 % of 6750; shipping not taxed
    assert quote.total == D("7500") - D("750") + D("350") + D("1350")
    assert quote.applied_coupons == [AppliedCoupon("WELCOME10", "PERCENTAGE", D("750.00"))]
    assert (quote.item_count, quote.total_quantity) == (2, 3)


def test_percentage_applies_first_then_fixed_comes_off_the_rest():
    quote = price([line("5000", 1)], [fixed("500"), pct("10")], None, TAX, NOW)
    assert quote.discount == D("1000")                  # 10 % of 5000, then 500; not 10 % of 4500
    assert {c.code: c.discount for c in quote.applied_coupons} == {"WELCOME10": D("500"), "MINUS500": D("500")}
    assert [c.code for c in quote.applied_coupons] == ["MINUS500", "WELCOME10"]   # given order kept


def test_discount_never_exceeds_subtotal():
    quote = price([line("300", 1)], [pct("100"), fixed("50")], D("350"), TAX, NOW)
    assert quote.discount == D("300")
    assert [c.discount for c in quote.applied_coupons] == [D("300"), D("0")]
    assert quote.tax == 0 and quote.total == D("350")
    assert price([line("300", 1)], [fixed("1000")], None, TAX, NOW).discount == D("300")


def test_tax_rounds_half_up_to_the_cent():
    assert price([line("0.05", 1)], [], None, D("0.1"), NOW).tax == D("0.01")     # 0.005
    assert price([line("0.04", 1)], [], None, D("0.1"), NOW).tax == D("0.00")
    assert price([line("10.01", 1)], [], None, D("0.2"), NOW).tax == D("2.00")    # 2.002


def test_empty_cart_prices_to_zero():
    quote = price([], [], None, TAX, NOW)
    assert (quote.subtotal, quote.tax, quote.total, quote.item_count, quote.total_quantity) == (0, 0, 0, 0, 0)
    assert quote.estimated_commission == 0 and quote.net_line_totals == ()


def test_partner_estimates_use_each_lines_share_of_the_discounted_subtotal():
    lines = [line("100", 1, commission="10", points="5", n=1), line("200", 1, commission="20", points="0", n=2)]
    quote = price(lines, [fixed("30")], None, TAX, NOW)
    assert quote.net_line_totals == (D("90.00"), D("180.00"))      # 270 split 1:2
    assert sum(quote.net_line_totals) == quote.subtotal - quote.discount
    assert quote.estimated_commission == D("9.00") + D("36.00")
    assert quote.estimated_career_points == D("4.50")


def test_estimates_and_shares_are_exact_to_the_cent_with_awkward_splits():
    lines = [line("33.33", 1, "10", n=1), line("33.33", 1, "10", n=2), line("33.34", 1, "10", n=3)]
    quote = price(lines, [pct("10")], None, TAX, NOW)
    assert sum(quote.net_line_totals) == quote.subtotal - quote.discount == D("90.00")
    assert quote.estimated_commission == D("9.00")


# --- coupon validity ---------------------------------------------------------------------

@pytest.mark.parametrize(("coupon", "reason"), [
    (pct("10", active=False), "not active"),
    (pct("10", starts_at=NOW + timedelta(seconds=1)), "not valid yet"),
    (pct("10", ends_at=NOW), "expired"),                              # end is exclusive
    (pct("10", usage_limit=5, used_count=5), "usage limit"),
    (pct("10", per_user_limit=1, used_by_user=1), "maximum number of times"),
    (pct("10", min_order=D("5000.01")), "minimum order of 5000.01"),
    (pct("10", min_order=D("6000")), "minimum order of 6000"),
])
def test_check_coupon_says_why_it_cannot_be_used(coupon, reason):
    with pytest.raises(InvalidCoupon) as exc:
        check_coupon(coupon, D("5000"), NOW)
    assert reason in exc.value.message
    assert exc.value.code == "INVALID_COUPON"
    assert exc.value.extra["couponCode"] == "WELCOME10"


def test_coupon_below_minimum_reports_the_minimum_as_a_number():
    with pytest.raises(InvalidCoupon) as exc:
        check_coupon(pct("10", min_order=D("6000.00")), D("5000"), NOW)
    assert exc.value.extra["minOrder"] == 6000 and exc.value.extra["reason"] == "BELOW_MINIMUM_ORDER"


@pytest.mark.parametrize("coupon", [
    pct("10"),
    pct("10", starts_at=NOW),                                        # start is inclusive
    pct("10", ends_at=NOW + timedelta(microseconds=1)),
    pct("10", min_order=D("5000")),                                  # exactly the minimum
    pct("10", usage_limit=5, used_count=4, per_user_limit=2, used_by_user=1),
])
def test_check_coupon_accepts_usable_coupons_at_the_edges(coupon):
    check_coupon(coupon, D("5000"), NOW)


def test_stacking_allows_one_coupon_of_each_kind():
    check_stacking([], pct("10"))
    check_stacking(["PERCENTAGE"], fixed("500"))
    with pytest.raises(InvalidCoupon, match="percentage coupon is already applied"):
        check_stacking(["PERCENTAGE"], pct("5", code="OTHER"))
    with pytest.raises(InvalidCoupon, match="fixed coupon is already applied"):
        check_stacking(("PERCENTAGE", "FIXED"), fixed("100", code="OTHER"))


def test_price_strict_raises_for_an_unusable_or_doubled_coupon():
    with pytest.raises(InvalidCoupon, match="expired"):
        price([line("100", 1)], [pct("10", ends_at=NOW)], None, TAX, NOW)
    with pytest.raises(InvalidCoupon, match="already applied"):
        price([line("100", 1)], [pct("10"), pct("20", code="TWENTY")], None, TAX, NOW)
    with pytest.raises(InvalidCoupon, match="minimum order"):
        price([line("100", 1)], [fixed("10", min_order=D("100.01"))], None, TAX, NOW)


def test_price_lenient_leaves_unusable_coupons_out_and_says_why():
    quote = price([line("100", 1)], [pct("10", ends_at=NOW), fixed("5"), fixed("7", code="SEVEN")],
                  None, TAX, NOW, strict=False)
    assert [c.code for c in quote.applied_coupons] == ["MINUS500"]
    assert quote.discount == D("5")
    assert [(r.code, "expired" in r.reason or "already applied" in r.reason) for r in quote.rejected_coupons] == [
        ("WELCOME10", True), ("SEVEN", True)]


def test_negative_tax_rate_is_a_programming_error():
    with pytest.raises(ValueError):
        price([line("1", 1)], [], None, D("-0.1"), NOW)
