"""The order state machine, status names and aliases, cancel and refund eligibility, numbers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.domain.errors import CannotCancel, CannotRefund, InvalidStatusTransition, RefundPeriodExpired, ValidationError
from engine.domain.order_status import (
    OrderStatus,
    PaymentStatus,
    allowed_targets,
    can_cancel,
    can_refund,
    check_cancellable,
    check_refundable,
    format_order_number,
    parse_status,
    transition,
)

S = OrderStatus
VALID = {
    (S.PENDING_PAYMENT, S.PAID), (S.PAID, S.PROCESSING), (S.PROCESSING, S.SHIPPED),
    (S.SHIPPED, S.DELIVERED), (S.DELIVERED, S.REFUNDED),
    (S.PENDING_PAYMENT, S.CANCELLED), (S.PAID, S.CANCELLED), (S.PROCESSING, S.CANCELLED),
}
ALL_PAIRS = [(a, b) for a in OrderStatus for b in OrderStatus]


def test_statuses_are_the_storefront_names_and_compare_as_strings():
    assert [s.value for s in OrderStatus] == [
        "PENDING_PAYMENT", "PAID", "PROCESSING", "SHIPPED", "DELIVERED", "CANCELLED", "REFUNDED"]
    assert S.PAID == "PAID" and str(S.PAID) == "PAID"
    assert [s.value for s in PaymentStatus] == ["PENDING", "PAID", "FAILED", "REFUNDED"]


@pytest.mark.parametrize(("current", "target"), sorted(VALID))
def test_valid_transitions_return_the_target(current, target):
    assert transition(current, target) is target


@pytest.mark.parametrize(("current", "target"), [p for p in ALL_PAIRS if p not in VALID])
def test_every_other_transition_is_refused_including_staying_put(current, target):
    with pytest.raises(InvalidStatusTransition) as exc:
        transition(current, target)
    assert current.value in exc.value.message and target.value in exc.value.message
    assert exc.value.code == "INVALID_STATUS_TRANSITION"
    assert exc.value.extra["allowedStatuses"] == [s.value for s in allowed_targets(current)]


def test_refused_transition_message_lists_the_allowed_targets():
    with pytest.raises(InvalidStatusTransition, match="allowed: PROCESSING, CANCELLED"):
        transition(S.PAID, S.SHIPPED)
    with pytest.raises(InvalidStatusTransition, match="none"):
        transition(S.CANCELLED, S.PAID)


@pytest.mark.parametrize(("text", "expected"), [
    ("PENDING_PAYMENT", S.PENDING_PAYMENT), ("pending_payment", S.PENDING_PAYMENT),
    ("pending", S.PENDING_PAYMENT), ("confirmed", S.PAID), ("paid", S.PAID), ("PAID", S.PAID),
    ("processing", S.PROCESSING), ("shipped", S.SHIPPED), ("delivered", S.DELIVERED),
    ("cancelled", S.CANCELLED), ("refunded", S.REFUNDED), ("DELIVERED", S.DELIVERED), (" shipped ", S.SHIPPED),
])
def test_parse_status_accepts_canonical_names_and_platform_aliases(text, expected):
    assert parse_status(text) is expected


@pytest.mark.parametrize("text", ["", "unknown", "PENDING", "Paid", "CONFIRMED", "canceled", None, 3])
def test_parse_status_rejects_unknown_names_with_details(text):
    with pytest.raises(ValidationError) as exc:
        parse_status(text)
    assert list(exc.value.details) == ["status"] and "PENDING_PAYMENT" in exc.value.details["status"][0]
    with pytest.raises(ValidationError) as exc:
        parse_status(text, field="filter.status")
    assert list(exc.value.details) == ["filter.status"]


@pytest.mark.parametrize("status", list(OrderStatus))
def test_orders_can_be_cancelled_only_until_they_ship(status):
    cancellable = status in (S.PENDING_PAYMENT, S.PAID, S.PROCESSING)
    assert can_cancel(status) is cancellable
    if cancellable:
        check_cancellable(status)
    else:
        with pytest.raises(CannotCancel, match=status.value):
            check_cancellable(status)


DELIVERED_AT = datetime(2026, 1, 10, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("now", [DELIVERED_AT, DELIVERED_AT + timedelta(days=14)])  # deadline inclusive
def test_delivered_orders_are_refundable_within_the_period(now):
    check_refundable(S.DELIVERED, DELIVERED_AT, now, 14)
    assert can_refund(S.DELIVERED, DELIVERED_AT, now, 14)


def test_refund_after_the_period_has_expired():
    late = DELIVERED_AT + timedelta(days=14, microseconds=1)
    with pytest.raises(RefundPeriodExpired, match="14 days"):
        check_refundable(S.DELIVERED, DELIVERED_AT, late, 14)
    assert not can_refund(S.DELIVERED, DELIVERED_AT, late, 14)


@pytest.mark.parametrize("status", [s for s in OrderStatus if s is not S.DELIVERED])
def test_only_delivered_orders_are_refundable(status):
    with pytest.raises(CannotRefund, match=status.value):
        check_refundable(status, DELIVERED_AT, DELIVERED_AT, 14)
    assert not can_refund(status, DELIVERED_AT, DELIVERED_AT, 14)


def test_delivered_without_a_delivery_time_cannot_be_refunded():
    with pytest.raises(CannotRefund):
        check_refundable(S.DELIVERED, None, DELIVERED_AT, 14)


def test_order_numbers_are_zero_padded_to_eight_digits_and_grow_beyond():
    assert format_order_number(2026, 1234) == "ORD-2026-00001234"
    assert format_order_number(2024, 1) == "ORD-2024-00000001"
    assert format_order_number(2026, 99_999_999) == "ORD-2026-99999999"
    assert format_order_number(2026, 100_000_000) == "ORD-2026-100000000"
    with pytest.raises(ValueError):
        format_order_number(2026, 0)
