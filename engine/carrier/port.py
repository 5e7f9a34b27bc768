"""The carrier port: what the engine needs from any carrier, sandbox or real.

Invariant: `track` is a pure read; asking twice (or from two workers) at the same `now` gives the
same events with the same timestamps, so storing them under a unique key is idempotent. Events
never lie in the future of `now`, and come oldest first.
"""

from __future__ import annotations

import abc
import datetime as dt
from dataclasses import dataclass
from uuid import UUID

SHIPPED, IN_TRANSIT, OUT_FOR_DELIVERY, DELIVERED = "SHIPPED", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"
EXCEPTION = "EXCEPTION"


@dataclass(frozen=True, slots=True)
class Parcel:
    """A shipped parcel as the carrier knows it."""

    tracking_number: str
    shipped_at: dt.datetime
    destination_city: str | None = None


@dataclass(frozen=True, slots=True)
class CarrierEvent:
    status: str                 # SHIPPED, IN_TRANSIT, OUT_FOR_DELIVERY, DELIVERED, EXCEPTION
    location: str | None
    description: str
    occurred_at: dt.datetime


class Carrier(abc.ABC):
    """A carrier adapter."""

    name: str

    @abc.abstractmethod
    def new_tracking_number(self, order_id: UUID) -> str:
        """A tracking number for a parcel staff shipped without typing one."""

    @abc.abstractmethod
    def tracking_url(self, tracking_number: str) -> str | None:
        """Where a buyer follows the parcel on the carrier's site."""

    @abc.abstractmethod
    async def track(self, parcel: Parcel, now: dt.datetime) -> list[CarrierEvent]:
        """Every event of the parcel up to `now`, oldest first."""
