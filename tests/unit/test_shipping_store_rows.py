"""Mapping shipping_methods rows to shipping_rules values, and the idempotency request digest."""

from __future__ import annotations

import uuid
from decimal import Decimal

from engine.idempotency import request_hash
from engine.shipping_store import method_from_row


def _row(**over):
    row = {"id": uuid.uuid4(), "name": "Standard", "carrier": "Russian Post", "description": None, "min_days": 3,
           "max_days": 5, "currency": "RUB", "free_threshold": Decimal("5000.00"),
           "zones": [{"countries": ["RU"], "postalRanges": [["100000", "199999"]]}, {"countries": ["KZ"]}],
           "weight_bands": [{"maxGrams": 1000, "price": "350.00"}, {"maxGrams": None, "price": 900},
                            {"maxGrams": 500, "price": 250.1}],
           "active": True}
    row.update(over)
    return row


def test_rows_become_methods_with_exact_prices_and_zones():
    m = method_from_row(_row())
    assert m.serves("RU", "125009") and not m.serves("RU", "200000") and m.serves("KZ", "050000")
    assert m.price_for(400) == Decimal("250.10")
    assert m.price_for(1000) == Decimal("350.00") and m.price_for(5000) == Decimal("900.00")
    assert m.is_free_for(Decimal("5000")) and isinstance(m.id, str)


def test_empty_json_and_inactive_rows():
    m = method_from_row(_row(zones=[], weight_bands=[], active=False))
    assert not m.serves("RU") and m.price_for(1) is None


def test_request_hash_separates_parts_unambiguously():
    assert request_hash("POST", "/a", b"{}") == request_hash("POST", "/a", b"{}")
    assert request_hash("POST", "/ab", b"") != request_hash("POST", "/a", b"b")
    assert request_hash("POST", "/a", b"{}") != request_hash("PUT", "/a", b"{}")
