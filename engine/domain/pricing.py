"""Cart pricing: subtotal, coupons, tax, total and the partner estimates of one cart or order.

Coupon stacking rule:
- A cart holds at most one PERCENTAGE coupon and at most one FIXED coupon. Adding a second
  coupon of a kind already applied is INVALID_COUPON (`check_stacking`).
- The percentage coupon applies to the subtotal first; the fixed coupon then comes off what
  remains. So 10 % and 500 off a 5000 subtotal give 500 + 500 = 1000, never 10 % of 4500.
- The discount never exceeds the subtotal: a fixed coupon larger than what remains takes only
  what remains, and the discounted subtotal is never negative.

Coupon validity window: `starts_at` is inclusive and `ends_at` exclusive (a coupon ending at
midnight is no longer valid at midnight), matching the API's from/to convention.
Minimum order is compared with the subtotal before any discount, inclusive (exactly the
minimum qualifies).

Totals:
- tax = tax_rate x (subtotal - discount), rounded half-up to the cent; shipping is not taxed.
  `tax_rate` is a fraction (0.20 for 20 %), as in Settings.tax_rate.
- total = subtotal - discount + shipping + tax; shipping None (no method chosen yet) counts 0
  and stays None in the quote, because the cart shows null there.
- Each line's share of the discounted subtotal is `money.allocate`d in proportion to the line
  totals; the partner estimates are the sum over lines of percent_of(share, line percentage),
  i.e. exactly what per-line accrual pays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Iterable, Literal
from uuid import UUID

from engine.domain.errors import InvalidCoupon
from engine.domain.money import allocate, money, percent_of, to_api

CouponKind = Literal["PERCENTAGE", "FIXED"]
KINDS: tuple[str, ...] = ("PERCENTAGE", "FIXED")
_ZERO = money(0)


@dataclass(frozen=True, slots=True)
class PricedLine:
    """One cart or order line at the price it is sold at. Percentages are 0-100."""

    line_id: UUID | str
    product_id: UUID | str
    variant_id: UUID | str | None
    unit_price: Decimal
    quantity: int
    commission_percentage: Decimal = Decimal(0)
    career_points_percentage: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        return money(self.unit_price * self.quantity)


@dataclass(frozen=True, slots=True)
class Coupon:
    """A coupon as stored, with the caller's usage counts. `value` is a percentage (0-100]
    for PERCENTAGE, an amount for FIXED."""

    code: str
    kind: CouponKind
    value: Decimal
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    min_order: Decimal | None = None
    usage_limit: int | None = None
    used_count: int = 0
    per_user_limit: int | None = None
    used_by_user: int = 0
    active: bool = True


@dataclass(frozen=True, slots=True)
class AppliedCoupon:
    code: str
    kind: CouponKind
    discount: Decimal


@dataclass(frozen=True, slots=True)
class RejectedCoupon:
    """A coupon left out of a lenient quote, with the reason INVALID_COUPON would give."""

    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Quote:
    """The priced cart. Invariant: total == subtotal - discount + (shipping or 0) + tax,
    0 <= discount <= subtotal, and sum(net_line_totals) == subtotal - discount."""

    subtotal: Decimal
    discount: Decimal
    shipping: Decimal | None
    tax: Decimal
    total: Decimal
    item_count: int
    total_quantity: int
    applied_coupons: list[AppliedCoupon] = field(default_factory=list)
    estimated_commission: Decimal = _ZERO
    estimated_career_points: Decimal = _ZERO
    net_line_totals: tuple[Decimal, ...] = ()   # each line's share of subtotal - discount, in line order
    rejected_coupons: list[RejectedCoupon] = field(default_factory=list)


def check_coupon(coupon: Coupon, subtotal: Decimal, now: datetime) -> None:
    """Raise InvalidCoupon saying why `coupon` cannot be used on `subtotal` at `now`."""

    def invalid(reason: str, message: str, **extra: object) -> InvalidCoupon:
        return InvalidCoupon(message, extra={"couponCode": coupon.code, "reason": reason, **extra})

    if not coupon.active:
        raise invalid("INACTIVE", f"Coupon {coupon.code} is not active.")
    if coupon.starts_at is not None and now < coupon.starts_at:
        raise invalid("NOT_STARTED", f"Coupon {coupon.code} is not valid yet.")
    if coupon.ends_at is not None and now >= coupon.ends_at:
        raise invalid("EXPIRED", f"Coupon {coupon.code} has expired.")
    if coupon.usage_limit is not None and coupon.used_count >= coupon.usage_limit:
        raise invalid("USAGE_LIMIT_REACHED", f"Coupon {coupon.code} has reached its usage limit.")
    if coupon.per_user_limit is not None and coupon.used_by_user >= coupon.per_user_limit:
        raise invalid("PER_USER_LIMIT_REACHED",
                      f"You have already used coupon {coupon.code} the maximum number of times.")
    if coupon.min_order is not None and money(subtotal) < coupon.min_order:
        minimum = to_api(coupon.min_order)
        raise invalid("BELOW_MINIMUM_ORDER", f"Coupon {coupon.code} requires a minimum order of {minimum}.",
                      minOrder=minimum)


def check_stacking(existing_kinds: Iterable[str], new_coupon: Coupon) -> None:
    """Raise InvalidCoupon if a coupon of `new_coupon`'s kind is already applied."""
    if new_coupon.kind in set(existing_kinds):
        raise InvalidCoupon(
            f"A {new_coupon.kind.lower()} coupon is already applied; only one coupon of each kind can be used.",
            extra={"couponCode": new_coupon.code, "reason": "KIND_ALREADY_APPLIED"})


def price(lines: Iterable[PricedLine], coupons: Iterable[Coupon], shipping: Decimal | None,
          tax_rate: Decimal, now: datetime, *, strict: bool = True) -> Quote:
    """Price a cart. With `strict` (checkout) an unusable coupon raises InvalidCoupon; without
    it (showing a cart) the coupon is left out and listed in `rejected_coupons`, so a coupon
    that expired while sitting in a cart does not make the cart unreadable."""
    lines = list(lines)
    if tax_rate < 0:
        raise ValueError("tax_rate must not be negative")
    subtotal = money(sum((line.total for line in lines), _ZERO))

    usable: list[Coupon] = []
    rejected: list[RejectedCoupon] = []
    for coupon in coupons:
        try:
            check_stacking((c.kind for c in usable), coupon)
            check_coupon(coupon, subtotal, now)
        except InvalidCoupon as exc:
            if strict:
                raise
            rejected.append(RejectedCoupon(coupon.code, exc.message))
            continue
        usable.append(coupon)

    discounts: dict[str, Decimal] = {}
    remaining = subtotal
    for kind in KINDS:   # percentage first, then fixed off what remains
        for coupon in usable:
            if coupon.kind == kind:
                wanted = percent_of(subtotal, coupon.value) if kind == "PERCENTAGE" else money(coupon.value)
                discounts[coupon.code] = min(wanted, remaining)
                remaining -= discounts[coupon.code]
    applied = [AppliedCoupon(c.code, c.kind, discounts[c.code]) for c in usable]
    discount = subtotal - remaining

    tax = money(tax_rate * remaining)
    shipping = None if shipping is None else money(shipping)
    total = remaining + (shipping or _ZERO) + tax

    shares = allocate(remaining, [line.total for line in lines]) if lines else []
    commission = sum((percent_of(s, line.commission_percentage) for s, line in zip(shares, lines)), _ZERO)
    points = sum((percent_of(s, line.career_points_percentage) for s, line in zip(shares, lines)), _ZERO)

    return Quote(
        subtotal=subtotal, discount=discount, shipping=shipping, tax=tax, total=total,
        item_count=len(lines), total_quantity=sum(line.quantity for line in lines),
        applied_coupons=applied, estimated_commission=commission, estimated_career_points=points,
        net_line_totals=tuple(shares), rejected_coupons=rejected,
    )
