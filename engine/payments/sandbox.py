"""The sandbox payment provider: a hosted payment page served by the engine, HMAC-signed
webhook events, and refunds kept in its own books (sandbox_refunds).

It stands in for a real provider behind the same `PaymentProvider` port: the buyer pays or
fails on `/pay/{orderId}`; the sandbox then "calls" our webhook with a signed event built
byte for byte as the HTTP webhook would carry it. Refunds are idempotent per key, as a real
provider's are: a repeated call returns the first refund and moves no money.
"""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from uuid import UUID

from engine.db import Database
from engine.domain.errors import ValidationError
from engine.payments.provider import PaymentLink, PaymentProvider, PaymentRequest
from engine.payments.webhook import PAYMENT_FAILED, PAYMENT_SUCCEEDED, PaymentEvent, encode_event, sign
from engine.settings import Settings

NAME = "sandbox"


def payment_ref_of(order_id: UUID) -> str:
    return f"sbx_{order_id.hex}"


class SandboxProvider(PaymentProvider):
    name = NAME

    def __init__(self, settings: Settings, db: Database) -> None:
        self._settings = settings
        self._db = db

    async def create_payment(self, order: PaymentRequest) -> PaymentLink:
        url = None
        if order.method in ("CARD", "EWALLET"):
            url = f"{self._settings.public_base_url.rstrip('/')}/pay/{order.order_id}"
        return PaymentLink(payment_ref=payment_ref_of(order.order_id), payment_url=url)

    async def refund(self, payment_ref: str, amount: Decimal, idempotency_key: str) -> str:
        async with self._db.transaction() as conn:
            ref = await conn.fetchval(
                "INSERT INTO sandbox_refunds (idempotency_key, payment_ref, amount, refund_ref)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING RETURNING refund_ref",
                idempotency_key, payment_ref, amount, "sbr_" + secrets.token_hex(12))
            if ref is not None:
                return ref
            first = await conn.fetchrow(
                "SELECT payment_ref, amount, refund_ref FROM sandbox_refunds WHERE idempotency_key = $1",
                idempotency_key)
        if first["payment_ref"] != payment_ref or first["amount"] != amount:
            # A provider refuses a key reused for a different refund; so does the sandbox.
            raise ValidationError("Idempotency key reused for a different refund.")
        return first["refund_ref"]

    def signed_event(self, *, order_id: UUID, succeeded: bool, amount: Decimal, currency: str,
                     now: dt.datetime) -> tuple[bytes, str]:
        """The (body, Payment-Signature) of the webhook the sandbox sends after its page."""
        secret = self._settings.payment_webhook_secret
        if not secret:
            raise RuntimeError("PAYMENT_WEBHOOK_SECRET is not configured")
        event = PaymentEvent(event_id="evt_" + secrets.token_hex(12),
                             kind=PAYMENT_SUCCEEDED if succeeded else PAYMENT_FAILED,
                             order_id=order_id, payment_ref=payment_ref_of(order_id),
                             amount=amount, currency=currency)
        ts = int(now.timestamp())
        body = encode_event(event, created=ts)
        return body, sign(secret, body, ts)


async def payment_page_view(db: Database, order_id: UUID) -> dict | None:
    """What the hosted page shows: number, amount, status. The sandbox sees every tenant's
    orders by id, as a provider sees every payment it was given."""
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT id, order_number, total, currency, status, payment_status, payment_method, expires_at"
            " FROM orders WHERE id = $1", order_id)
    return dict(row) if row is not None else None
