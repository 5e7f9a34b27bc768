"""The adapter when no payment provider is configured (PAYMENT_PROVIDER=none, the default of
`commerce serve`): no hosted page, and refunds refused for good, so a refund job records a
FAILED refund for staff to settle by hand instead of pretending money moved."""

from __future__ import annotations

from decimal import Decimal

from engine.payments.provider import PaymentLink, PaymentProvider, PaymentRequest, RefundRejected


class NoProvider(PaymentProvider):
    name = "none"

    async def create_payment(self, order: PaymentRequest) -> PaymentLink:
        return PaymentLink(payment_ref=f"none_{order.order_id.hex}", payment_url=None)

    async def refund(self, payment_ref: str, amount: Decimal, idempotency_key: str) -> str:
        raise RefundRejected("No payment provider is configured; refund this payment by hand.")
