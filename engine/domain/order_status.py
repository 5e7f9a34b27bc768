"""The order state machine: the only place that says which status may follow which.

    PENDING_PAYMENT -> PAID -> PROCESSING -> SHIPPED -> DELIVERED -> REFUNDED
    PENDING_PAYMENT | PAID | PROCESSING -> CANCELLED

CANCELLED and REFUNDED are final. Staying in the same status is not a transition (it is
refused like any other invalid move, so a duplicated command cannot pass as a change).

Cancelling is possible until the order ships. A refund may be requested for a DELIVERED order
until `refund_period_days` after delivery, the deadline instant itself included.

The storefront names are canonical and are what responses show; the platform document's
lowercase names are accepted as input aliases (pending = PENDING_PAYMENT, confirmed = PAID).
PROCESSING is the storefront's own step: a platform move from PAID to SHIPPED passes through it
(engine.tracking.ship_order records both), so this table stays the storefront's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum

from engine.domain.errors import CannotCancel, CannotRefund, InvalidStatusTransition, RefundPeriodExpired, ValidationError


class OrderStatus(str, Enum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    PROCESSING = "PROCESSING"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"

    def __str__(self) -> str:
        return self.value


class PaymentStatus(str, Enum):
    PENDING = "PENDING"
    PAID = "PAID"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"

    def __str__(self) -> str:
        return self.value


S = OrderStatus
TRANSITIONS: dict[OrderStatus, tuple[OrderStatus, ...]] = {
    S.PENDING_PAYMENT: (S.PAID, S.CANCELLED),
    S.PAID: (S.PROCESSING, S.CANCELLED),
    S.PROCESSING: (S.SHIPPED, S.CANCELLED),
    S.SHIPPED: (S.DELIVERED,),
    S.DELIVERED: (S.REFUNDED,),
    S.CANCELLED: (),
    S.REFUNDED: (),
}
CANCELLABLE = frozenset({S.PENDING_PAYMENT, S.PAID, S.PROCESSING})

ALIASES: dict[str, OrderStatus] = {
    "pending": S.PENDING_PAYMENT,
    "confirmed": S.PAID,
    **{s.value.lower(): s for s in OrderStatus},
}


def allowed_targets(current: OrderStatus) -> tuple[OrderStatus, ...]:
    """The statuses an order in `current` may move to, in the order of the lifecycle."""
    return TRANSITIONS[OrderStatus(current)]


def transition(current: OrderStatus, target: OrderStatus) -> OrderStatus:
    """Return `target` if an order may move there from `current`, else raise
    InvalidStatusTransition naming both statuses and the allowed targets."""
    current, target = OrderStatus(current), OrderStatus(target)
    allowed = TRANSITIONS[current]
    if target in allowed:
        return target
    names = ", ".join(s.value for s in allowed) or "none (final status)"
    raise InvalidStatusTransition(
        f"Cannot change order status from {current.value} to {target.value}; allowed: {names}.",
        extra={"currentStatus": current.value, "allowedStatuses": [s.value for s in allowed]})


def parse_status(text: object, field: str = "status") -> OrderStatus:
    """The status named by `text` (surrounding spaces ignored): a canonical name (PAID), its
    lower-case form (paid, pending_payment) or a platform alias (pending, confirmed).
    Anything else, mixed case included ('PENDING' is not a status) -> ValidationError with
    details under `field`."""
    if isinstance(text, str):
        key = text.strip()
        if key in OrderStatus.__members__:
            return OrderStatus[key]
        if key in ALIASES:
            return ALIASES[key]
    accepted = ", ".join([s.value for s in OrderStatus] + ["pending", "confirmed"])
    raise ValidationError(details={field: [f"Unknown order status {text!r}; expected one of {accepted}."]})


def can_cancel(status: OrderStatus) -> bool:
    return OrderStatus(status) in CANCELLABLE


def check_cancellable(status: OrderStatus) -> None:
    """Raise CannotCancel unless an order in `status` may still be cancelled."""
    status = OrderStatus(status)
    if status not in CANCELLABLE:
        raise CannotCancel(f"An order that is {status.value} cannot be cancelled.",
                           extra={"currentStatus": status.value})


def refund_deadline(delivered_at: datetime, refund_period_days: int) -> datetime:
    """The last instant at which a refund may be requested."""
    return delivered_at + timedelta(days=refund_period_days)


def check_refundable(status: OrderStatus, delivered_at: datetime | None, now: datetime,
                     refund_period_days: int) -> None:
    """Raise CannotRefund unless the order is DELIVERED (with a delivery time), and
    RefundPeriodExpired once `now` is past the deadline."""
    status = OrderStatus(status)
    if status is not S.DELIVERED or delivered_at is None:
        raise CannotRefund(f"Only delivered orders can be refunded; this order is {status.value}.",
                           extra={"currentStatus": status.value})
    if now > refund_deadline(delivered_at, refund_period_days):
        raise RefundPeriodExpired(
            f"Refunds must be requested within {refund_period_days} days of delivery.")


def can_refund(status: OrderStatus, delivered_at: datetime | None, now: datetime,
               refund_period_days: int) -> bool:
    try:
        check_refundable(status, delivered_at, now, refund_period_days)
    except (CannotRefund, RefundPeriodExpired):
        return False
    return True


def format_order_number(year: int, sequence: int) -> str:
    """'ORD-2026-00001234': the year and the order's sequence number, zero padded to 8
    digits (more digits once the sequence outgrows 8; never truncated, so never ambiguous)."""
    if sequence < 1:
        raise ValueError("order sequence starts at 1")
    if not 1 <= year <= 9999:
        raise ValueError("year must have at most four digits")
    return f"ORD-{year:04d}-{sequence:08d}"
