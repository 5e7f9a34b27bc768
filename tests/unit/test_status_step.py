"""The order state machine in set form: one rule for a single change and for a whole batch."""

from __future__ import annotations

import pytest

from engine.domain.errors import InvalidStatusTransition
from engine.domain.order_status import TRANSITIONS, OrderStatus
from engine.domain.status_step import Event, StockMove, check_expected, plan_moves, step

S = OrderStatus


def test_every_allowed_move_has_a_step_and_every_other_move_is_refused():
    for current in OrderStatus:
        for target in OrderStatus:
            if target in TRANSITIONS[current]:
                made = step(current, target)
                assert (made.source, made.target) == (current, target)
            else:
                with pytest.raises(InvalidStatusTransition):
                    step(current, target)


@pytest.mark.parametrize("current, stock, events", [
    (S.PENDING_PAYMENT, StockMove.RELEASE, ()),
    (S.PAID, StockMove.RETURN, (Event.REFUND_CANCELLED_ORDER,)),
    (S.PROCESSING, StockMove.RETURN, (Event.REFUND_CANCELLED_ORDER,)),
])
def test_cancelling_releases_unpaid_units_and_returns_paid_ones_with_a_refund(current, stock, events):
    made = step(current, S.CANCELLED)
    assert made.stock is stock and made.events == events
    assert made.stamp == "cancelled_at" and made.clears_deadline and made.records_reason


def test_paying_sells_the_reservation_and_announces_it():
    made = step("PENDING_PAYMENT", "PAID")
    assert made.stock is StockMove.SELL and made.payment_status == "PAID" and made.events == (Event.ORDER_PAID,)
    assert made.stamp == "paid_at" and made.clears_deadline and not made.records_reason


def test_delivery_accrues_commission_and_refund_marks_the_payment():
    assert step(S.SHIPPED, S.DELIVERED).events == (Event.ACCRUE_COMMISSION,)
    assert step(S.DELIVERED, S.REFUNDED).payment_status == "REFUNDED"
    assert step(S.PROCESSING, S.SHIPPED).stock is None


def test_a_batch_is_grouped_by_step_and_refusals_carry_the_single_change_error():
    orders = {1: S.PENDING_PAYMENT, 2: "PAID", 3: S.DELIVERED, 4: S.PENDING_PAYMENT, 5: S.CANCELLED}
    moves = plan_moves(orders, S.CANCELLED)
    assert moves.groups == {step(S.PENDING_PAYMENT, S.CANCELLED): [1, 4], step(S.PAID, S.CANCELLED): [2]}
    assert sorted(moves.refused) == [3, 5] and moves.moved == [1, 4, 2]
    assert moves.refused[3].extra["currentStatus"] == "DELIVERED"


def test_expect_refuses_what_the_caller_did_not_decide_on():
    moves = plan_moves({"a": S.PENDING_PAYMENT, "b": S.PAID}, S.CANCELLED, expect=S.PENDING_PAYMENT)
    assert moves.moved == ["a"] and "no longer PENDING_PAYMENT" in moves.refused["b"].message
    check_expected(S.PAID, None)
    check_expected(S.PAID, [S.PAID, S.PROCESSING])
    with pytest.raises(InvalidStatusTransition):
        check_expected(S.PAID, "PROCESSING")


def test_an_empty_batch_moves_nothing():
    moves = plan_moves({}, S.CANCELLED)
    assert moves.groups == {} and moves.refused == {} and moves.moved == []
