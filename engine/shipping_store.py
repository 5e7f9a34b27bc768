"""Shipping methods as stored: the rows of `shipping_methods` as engine.domain.shipping_rules values.

jsonb formats (migration 0001):
- zones: [{"countries": ["RU"], "postalRanges": [["100000", "199999"]]}, ...]
- weight_bands: [{"maxGrams": 1000, "price": "350.00"}, {"maxGrams": null, "price": "900"}]
Prices are read as exact Decimals from their string (or integer) form, never via float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from engine.domain.money import money
from engine.domain.shipping_rules import ShippingMethod, WeightBand, Zone

_COLUMNS = ("id, name, carrier, description, min_days, max_days, currency, free_threshold, zones,"
            " weight_bands, active")
FIELDS = tuple(c.strip() for c in _COLUMNS.split(","))   # what method_from_row reads


def _amount(raw: Any) -> Decimal:
    # json.loads gives floats for JSON numbers with a fraction; str() keeps their shortest
    # decimal spelling ("350.5"), which is exactly what was written.
    return money(str(raw) if isinstance(raw, float) else raw)


def method_from_row(row: asyncpg.Record | dict[str, Any]) -> ShippingMethod:
    """One shipping_methods row (id, name, ..., zones, weight_bands, active) as a ShippingMethod."""
    zones = tuple(
        Zone(countries=frozenset(z.get("countries") or ()),
             postal_ranges=tuple((str(low), str(high)) for low, high in (z.get("postalRanges") or ())))
        for z in (row["zones"] or ()))
    bands = tuple(WeightBand(max_grams=b.get("maxGrams"), price=_amount(b["price"]))
                  for b in (row["weight_bands"] or ()))
    return ShippingMethod(
        id=str(row["id"]), name=row["name"], carrier=row["carrier"], description=row["description"],
        min_days=row["min_days"], max_days=row["max_days"], currency=row["currency"],
        free_threshold=row["free_threshold"], zones=zones, weight_bands=bands, active=row["active"])


async def load_methods(conn: asyncpg.Connection, tenant_id: UUID, *, include_inactive: bool = False) -> list[ShippingMethod]:
    """The tenant's shipping methods in display order (position, name); active ones only
    unless `include_inactive`."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM shipping_methods WHERE tenant_id = $1 AND ($2 OR active)"
        " ORDER BY position, name, id", tenant_id, include_inactive)
    return [method_from_row(r) for r in rows]

