"""The order as the engine hands it to readers: typed records, never raw rows.

An order keeps copies (snapshots) of what it was placed with — the address, the shipping
method, the coupons — as JSON, so later edits never rewrite it; these records read those copies
back into named fields. Response shapes (camelCase, money as API numbers) are web's business.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping
from uuid import UUID

from engine.domain.address import PostalAddress
from engine.domain.money import money


@dataclass(frozen=True, slots=True)
class OrderSummary:
    id: UUID
    order_number: str
    status: str
    payment_status: str
    item_count: int
    total: Decimal
    currency: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> "OrderSummary":
        return cls(r["id"], r["order_number"], r["status"], r["payment_status"], r["item_count"], r["total"],
                   r["currency"], r["created_at"], r["updated_at"])


@dataclass(frozen=True, slots=True)
class OrderLine:
    id: UUID
    product_id: UUID
    product_name: str
    sku: str
    thumbnail_url: str | None
    variant_id: UUID | None
    variant_attributes: dict[str, str] | None
    quantity: int
    unit_price: Decimal
    total_price: Decimal

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> "OrderLine":
        return cls(r["id"], r["product_id"], r["product_name"], r["sku"], r["thumbnail_url"], r["variant_id"],
                   r["variant_attributes"], r["quantity"], r["unit_price"], r["total_price"])


@dataclass(frozen=True, slots=True)
class StatusEntry:
    status: str
    note: str | None
    changed_by: str
    changed_at: dt.datetime


@dataclass(frozen=True, slots=True)
class AppliedCoupon:
    code: str
    discount: Decimal


@dataclass(frozen=True, slots=True)
class Order:
    id: UUID
    order_number: str
    status: str
    payment_status: str
    subtotal: Decimal
    discount: Decimal
    shipping: Decimal
    tax: Decimal
    total: Decimal
    refunded_amount: Decimal
    currency: str
    shipping_address: PostalAddress
    billing_address: PostalAddress | None
    shipping_method_name: str
    carrier: str | None
    estimated_delivery: str | None   # the order's own estimate (a date), else the method's text
    payment_method: str
    transaction_id: str | None
    applied_coupons: tuple[AppliedCoupon, ...]
    notes: str | None
    paid_at: dt.datetime | None
    delivered_at: dt.datetime | None
    expires_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, o: Mapping[str, Any]) -> "Order":
        method = o["shipping_method"] or {}
        bill = o["billing_address"]
        return cls(
            id=o["id"], order_number=o["order_number"], status=o["status"], payment_status=o["payment_status"],
            subtotal=o["subtotal"], discount=o["discount"], shipping=o["shipping"], tax=o["tax"], total=o["total"],
            refunded_amount=o["refunded_amount"], currency=o["currency"],
            shipping_address=PostalAddress.from_snapshot(o["shipping_address"]),
            billing_address=None if bill is None else PostalAddress.from_snapshot(bill),
            shipping_method_name=method.get("name", ""), carrier=method.get("carrier"),
            estimated_delivery=(o["estimated_delivery"].isoformat() if o["estimated_delivery"]
                                else method.get("estimatedDelivery")),
            payment_method=o["payment_method"], transaction_id=o["transaction_id"],
            applied_coupons=tuple(AppliedCoupon(c["code"], money(c["discount"]))
                                  for c in (o["applied_coupons"] or [])),
            notes=o["notes"], paid_at=o["paid_at"], delivered_at=o["delivered_at"], expires_at=o["expires_at"],
            created_at=o["created_at"], updated_at=o["updated_at"])
