"""Carriers: the port the engine tracks parcels through (port.py) and the sandbox carrier behind
it (sandbox.py). A real carrier is a new adapter implementing `Carrier`, not a rewrite."""

from __future__ import annotations

from engine.carrier.port import Carrier, CarrierEvent, Parcel
from engine.carrier.sandbox import SandboxCarrier

__all__ = ["Carrier", "CarrierEvent", "Parcel", "SandboxCarrier", "carrier_for"]


def carrier_for(name: str | None = None) -> Carrier:
    """The adapter that tracks parcels of the carrier called `name` (the order's carrier as
    staff typed it). Only the sandbox exists so far, so it answers for every name."""
    return SandboxCarrier()
