"""Signed payment webhooks: `Payment-Signature: t=<unix>,v1=<hex hmac_sha256(secret, f"{t}.{body}")>`.

Invariants: an event is applied only if its signature matches the shared secret, its timestamp
is within `webhook_tolerance_seconds` of now, and its event id was never accepted before (the
claim in processed_webhook_events commits in the same transaction as the event's effect, so a
crash mid-way leaves the event unclaimed and the provider's retry still works). Anything else
is `InvalidSignature` (401). A *different* event about an order already paid is a no-op.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from uuid import UUID

from engine.db import Database
from engine.domain.errors import InvalidSignature, ValidationError
from engine.payments import settlement
from engine.payments.config import webhook_secret
from engine.settings import Settings

SIGNATURE_HEADER = "Payment-Signature"
PAYMENT_SUCCEEDED = "payment.succeeded"
PAYMENT_FAILED = "payment.failed"
_KINDS = (PAYMENT_SUCCEEDED, PAYMENT_FAILED)


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    event_id: str
    kind: str
    order_id: UUID
    payment_ref: str | None
    amount: Decimal
    currency: str


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The Payment-Signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str | None, header: str | None, body: bytes, *, now: int, tolerance: int) -> None:
    """Raise InvalidSignature unless `header` signs `body` with `secret` within `tolerance` seconds."""
    if not secret or not header:
        raise InvalidSignature()
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise InvalidSignature() from None
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("Webhook timestamp is outside the accepted window.")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    # Several v1 values are allowed (secret rotation); compare each in constant time.
    if not any(hmac.compare_digest(expected, got) for got in parts.get("v1", [])):
        raise InvalidSignature()


def encode_event(event: PaymentEvent, *, created: int) -> bytes:
    """The JSON body a provider sends for `event` (amounts as strings: exact)."""
    return json.dumps({
        "id": event.event_id, "type": event.kind, "created": created,
        "data": {"orderId": str(event.order_id), "paymentRef": event.payment_ref,
                 "amount": str(event.amount), "currency": event.currency},
    }, separators=(",", ":")).encode()


def parse_event(body: bytes) -> PaymentEvent:
    """Decode a verified body; a malformed one is a 400 (the provider sent something wrong)."""
    try:
        doc = json.loads(body, parse_float=Decimal)
        data = doc["data"]
        event_id, kind = doc["id"], doc["type"]
        if not isinstance(event_id, str) or not 1 <= len(event_id) <= 200 or kind not in _KINDS:
            raise ValueError
        amount = Decimal(str(data["amount"]))
        if not amount.is_finite() or amount < 0:
            raise ValueError
        ref = data.get("paymentRef")
        return PaymentEvent(event_id, kind, UUID(str(data["orderId"])),
                            str(ref)[:200] if ref is not None else None, amount, str(data["currency"])[:3])
    except (ValueError, KeyError, TypeError, InvalidOperation, AttributeError):
        raise ValidationError("Malformed payment event.", details={"body": ["malformed event"]}) from None


async def receive(db: Database, settings: Settings, header: str | None, body: bytes, *,
                  now: dt.datetime, provider: str = "sandbox") -> str:
    """Verify, de-duplicate and apply one webhook delivery; returns the outcome recorded."""
    verify_signature(webhook_secret(settings), header, body,
                     now=int(now.timestamp()), tolerance=settings.webhook_tolerance_seconds)
    event = parse_event(body)
    async with db.transaction() as conn:
        claimed = await conn.fetchval(
            "INSERT INTO processed_webhook_events (event_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1",
            event.event_id)
        if claimed is None:
            raise InvalidSignature("This webhook event was already processed.")
        source = f"provider:{provider}"
        if event.kind == PAYMENT_SUCCEEDED:
            return await settlement.payment_succeeded(
                conn, event.order_id, amount=event.amount, currency=event.currency, provider=provider,
                payment_ref=event.payment_ref, event_id=event.event_id, source=source, now=now)
        return await settlement.payment_failed(conn, event.order_id, event_id=event.event_id, source=source,
                                               amount=event.amount, now=now)
