"""One status change, for one order or many: what a move does besides changing the status.

engine.domain.order_status says which status may follow which; this module says what each
allowed move *does* (the stock it moves, the instant it stamps, the deadline it clears, the
events it announces) and decides a move for a whole set of orders at once, so a staff click
(one order) and the expiry sweep (hundreds) go through the same rules and the same statement
(engine.orders.apply_step).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, Hashable, Iterable, Mapping, TypeVar

from engine.domain.errors import InvalidStatusTransition
from engine.domain.order_status import OrderStatus, transition

S = OrderStatus
K = TypeVar("K", bound=Hashable)


class StockMove(str, Enum):
    SELL = "SELL"         # reserved -> sold (payment confirmed)
    RELEASE = "RELEASE"   # reserved -> available (an unpaid order ends)
    RETURN = "RETURN"     # sold -> available (a paid order is cancelled)


class Event(str, Enum):
    ORDER_PAID = "ORDER_PAID"
    REFUND_CANCELLED_ORDER = "REFUND_CANCELLED_ORDER"
    ACCRUE_COMMISSION = "ACCRUE_COMMISSION"   # only for orders a partner bought


@dataclass(frozen=True, slots=True)
class Step:
    """An allowed move and its effects. `stamp` names the order's instant that records the
    first arrival in `target` (kept if already set, except cancelled_at)."""

    source: OrderStatus
    target: OrderStatus
    stock: StockMove | None = None
    stamp: str | None = None
    clears_deadline: bool = False
    payment_status: str | None = None
    records_reason: bool = False
    events: tuple[Event, ...] = ()


def step(current: OrderStatus | str, target: OrderStatus | str) -> Step:
    """The Step from `current` to `target`; InvalidStatusTransition if the move is not allowed."""
    current = OrderStatus(current)
    target = transition(current, OrderStatus(target))
    if target is S.PAID:
        return Step(current, target, StockMove.SELL, "paid_at", clears_deadline=True, payment_status="PAID",
                    events=(Event.ORDER_PAID,))
    if target is S.CANCELLED:
        if current is S.PENDING_PAYMENT:
            return Step(current, target, StockMove.RELEASE, "cancelled_at", clears_deadline=True,
                        records_reason=True)
        # PAID or PROCESSING: the units were sold; the money goes back by a refund job.
        return Step(current, target, StockMove.RETURN, "cancelled_at", clears_deadline=True,
                    records_reason=True, events=(Event.REFUND_CANCELLED_ORDER,))
    if target is S.SHIPPED:
        return Step(current, target, stamp="shipped_at")
    if target is S.DELIVERED:
        return Step(current, target, stamp="delivered_at", events=(Event.ACCRUE_COMMISSION,))
    if target is S.REFUNDED:
        return Step(current, target, payment_status="REFUNDED")
    return Step(current, target)


def check_expected(current: OrderStatus | str, expect: Iterable[OrderStatus | str] | OrderStatus | str | None) -> None:
    """InvalidStatusTransition unless `current` is one of the statuses the caller's decision was
    based on (`expect`; None: any). A timer that expects PENDING_PAYMENT never cancels an
    order paid a moment earlier, though PAID -> CANCELLED is a legal move for staff."""
    if expect is None:
        return
    current = OrderStatus(current)
    expected = {OrderStatus(expect)} if isinstance(expect, str) else {OrderStatus(e) for e in expect}
    if current not in expected:
        raise InvalidStatusTransition(
            f"The order is {current.value}, no longer {'/'.join(sorted(e.value for e in expected))}.",
            extra={"currentStatus": current.value})


@dataclass(frozen=True, slots=True)
class Moves(Generic[K]):
    """The decision for a set of orders: which move each one makes (grouped by Step, so each
    group is one statement) and why the others may not move."""

    groups: dict[Step, list[K]] = field(default_factory=dict)
    refused: dict[K, InvalidStatusTransition] = field(default_factory=dict)

    @property
    def moved(self) -> list[K]:
        return [key for keys in self.groups.values() for key in keys]


def plan_moves(orders: Mapping[K, OrderStatus | str], target: OrderStatus | str, *,
               expect: Iterable[OrderStatus | str] | OrderStatus | str | None = None) -> Moves[K]:
    """The state machine in set form: every order (key -> current status) that may move to
    `target` grouped by its Step, every other one refused with the error a single change
    would raise. Keys keep their input order within a group."""
    groups: dict[Step, list[K]] = defaultdict(list)
    refused: dict[K, InvalidStatusTransition] = {}
    for key, current in orders.items():
        try:
            check_expected(current, expect)
            groups[step(current, target)].append(key)
        except InvalidStatusTransition as exc:
            refused[key] = exc
    return Moves(dict(groups), refused)
