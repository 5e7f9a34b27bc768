"""The sandbox carrier: parcels move SHIPPED -> IN_TRANSIT -> OUT_FOR_DELIVERY -> DELIVERED over
time, on a schedule derived from the tracking number alone.

Each step's delay (hours after the previous one) comes from a hash of the tracking number, so
the same parcel always has the same journey and tests choose what has happened by passing `now`:
- IN_TRANSIT 2-8 h after shipping, OUT_FOR_DELIVERY 18-65 h after that, DELIVERED 1-5 h later;
- so every parcel is DELIVERED at most `MAX_TRANSIT` (80 h) after it shipped.
No I/O and no clock reads: the carrier's "network" is this arithmetic.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from uuid import UUID

from engine.carrier.port import (DELIVERED, IN_TRANSIT, OUT_FOR_DELIVERY, SHIPPED, Carrier, CarrierEvent,
                                 Parcel)

MAX_TRANSIT = dt.timedelta(hours=80)


def schedule(tracking_number: str) -> tuple[dt.timedelta, dt.timedelta, dt.timedelta]:
    """Offsets from shipping of IN_TRANSIT, OUT_FOR_DELIVERY and DELIVERED for this number."""
    b = hashlib.sha256(tracking_number.encode()).digest()
    in_transit = dt.timedelta(hours=2 + b[0] % 7)
    out_for_delivery = in_transit + dt.timedelta(hours=18 + b[1] % 48)
    delivered = out_for_delivery + dt.timedelta(hours=1 + b[2] % 5)
    return in_transit, out_for_delivery, delivered


class SandboxCarrier(Carrier):
    name = "sandbox"

    def new_tracking_number(self, order_id: UUID) -> str:
        return f"SBX{order_id.int % 10**10:010d}"

    def tracking_url(self, tracking_number: str) -> str | None:
        return f"https://sandbox-carrier.example/track/{tracking_number}"

    async def track(self, parcel: Parcel, now: dt.datetime) -> list[CarrierEvent]:
        return journey(parcel, now)


def journey(parcel: Parcel, now: dt.datetime) -> list[CarrierEvent]:
    """The parcel's events up to `now`, oldest first (pure: the sandbox's whole behaviour)."""
    in_transit, out, delivered = schedule(parcel.tracking_number)
    city = parcel.destination_city or "Destination"
    t0 = parcel.shipped_at
    steps = [
        CarrierEvent(SHIPPED, "Warehouse", "Package shipped", t0),
        CarrierEvent(IN_TRANSIT, f"{city} Sorting Center", "Arrived at sorting center", t0 + in_transit),
        CarrierEvent(OUT_FOR_DELIVERY, city, "Out for delivery", t0 + out),
        CarrierEvent(DELIVERED, city, "Package delivered", t0 + delivered),
    ]
    return [e for e in steps if e.occurred_at <= now]
