"""The stored idempotent answer of an order is a record that web renders (issue 16): rendering
the record as it comes back from storage gives the very bytes of the first answer."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import msgspec
import pytest

from engine.checkout import PlacedOrder, placed_from_record
from engine.order_writer import _encode
from web.envelope import success
from web.routes.orders import _placed

ISSUED = dt.datetime(2026, 12, 2, 12, 0, 1, 123456, tzinfo=dt.timezone.utc)


def _order(**changes: object) -> PlacedOrder:
    base = PlacedOrder(order_id=uuid.uuid4(), order_number="", status="PENDING_PAYMENT", payment_method="CARD",
                       currency="RUB", subtotal=Decimal("7500.00"), discount=Decimal("750.10"),
                       shipping=Decimal("0"), tax=Decimal("1349.98"), total=Decimal("8099.88"), issued_at=ISSUED,
                       expires_at=ISSUED + dt.timedelta(minutes=30), payment_url="http://pay.example/x?t=1",
                       estimated_delivery=dt.date(2026, 12, 9),
                       applied_coupons=[{"code": "WELCOME10", "kind": "PERCENT", "discount": "750.10"}])
    return msgspec.structs.replace(base, **changes)


def _stored(order: PlacedOrder, number: str) -> bytes:
    """What place_orders stores: the record as the writer encodes it, its number set, via jsonb
    (whose key order and spacing differ from the encoder's)."""
    doc = json.loads(_encode(order))
    doc["order_number"] = number
    return json.dumps(dict(reversed(list(doc.items())))).encode()


@pytest.mark.parametrize("changes", [{}, {"payment_method": "BANK_TRANSFER", "payment_url": None},
                                     {"payment_method": "BALANCE", "status": "PAID", "expires_at": None,
                                      "payment_url": None, "applied_coupons": []}])
def test_a_stored_record_renders_the_first_answer_byte_for_byte(changes: dict[str, object]) -> None:
    order = _order(**changes)
    first = msgspec.structs.replace(order, order_number="ORD-2026-00000042")
    replayed = placed_from_record(_stored(order, "ORD-2026-00000042"))
    assert replayed == first
    assert success(_placed(replayed), status=201).body == success(_placed(first), status=201).body


def test_bank_details_name_the_order_number() -> None:
    order = _order(payment_method="BANK_TRANSFER", order_number="ORD-2026-00000007")
    assert order.bank_details is not None
    assert order.bank_details["purpose"] == "Payment for order ORD-2026-00000007"
    assert _order().bank_details is None
