"""The sandbox payment provider, our side of it: the adapter behind the `PaymentProvider` port.

`create_payment` answers the link of the sandbox's hosted page, carrying a signed, expiring
token bound to the order and tenant (engine.payments.pay_tokens); refunds are kept in the
sandbox's own books (sandbox_refunds), idempotent per key as a real provider's are: a repeated
call returns the first refund and moves no money. The page itself, and the signed webhook the
sandbox sends after it, are the provider's side: engine.payments.sandbox_page.
"""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from uuid import UUID

from engine.db import Database
from engine.domain.errors import ValidationError
from engine.payments import pay_tokens
from engine.payments.config import sandbox_secret
from engine.payments.provider import PaymentLink, PaymentProvider, PaymentRequest
from engine.settings import Settings

NAME = "sandbox"
# The page stays readable this long after the payment window closes, so a buyer who comes
# back late sees what became of the order instead of a 404.
PAGE_GRACE_SECONDS = 3600


def payment_ref_of(order_id: UUID) -> str:
    return f"sbx_{order_id.hex}"


def page_url(settings: Settings, order_id: UUID, tenant_id: UUID, *, now: dt.datetime) -> str | None:
    """The hosted page of this order, for its buyer alone (None when the sandbox has no secret)."""
    secret = sandbox_secret(settings)
    if not secret:
        return None
    expires = int(now.timestamp()) + settings.payment_expiry_seconds + PAGE_GRACE_SECONDS
    token = pay_tokens.issue(secret, order_id, tenant_id, expires_at=expires)
    return f"{settings.public_base_url.rstrip('/')}/pay/{token}"


class SandboxProvider(PaymentProvider):
    name = NAME

    def __init__(self, settings: Settings, db: Database) -> None:
        self._settings = settings
        self._db = db

    async def create_payment(self, order: PaymentRequest) -> PaymentLink:
        url = None
        if order.method in ("CARD", "EWALLET"):
            url = page_url(self._settings, order.order_id, order.tenant_id, now=dt.datetime.now(dt.timezone.utc))
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
