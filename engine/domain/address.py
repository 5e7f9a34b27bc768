"""A postal address as a value, and the copy of it an order keeps.

An order stores the address it was placed with as JSON (camelCase keys), so a later edit of
the address book never rewrites history; `snapshot` and `from_snapshot` are the one mapping
between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True, slots=True, kw_only=True)
class PostalAddress:
    recipient_name: str
    street: str
    city: str
    region: str
    country: str
    postal_code: str
    phone: str | None

    def snapshot(self) -> dict[str, Any]:
        """The camelCase copy an order keeps, so later edits never rewrite history."""
        return {"recipientName": self.recipient_name, "street": self.street, "city": self.city,
                "region": self.region, "country": self.country, "postalCode": self.postal_code,
                "phone": self.phone}

    @classmethod
    def from_snapshot(cls, s: Mapping[str, Any]) -> "PostalAddress":
        """An order's copy read back (missing keys, from older orders, read as empty)."""
        return cls(recipient_name=s.get("recipientName", ""), street=s.get("street", ""), city=s.get("city", ""),
                   region=s.get("region", ""), country=s.get("country", ""), postal_code=s.get("postalCode", ""),
                   phone=s.get("phone"))
