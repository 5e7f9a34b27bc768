"""The payment-provider port: what the engine needs from any provider, sandbox or real.

Invariant: `refund` is idempotent per `idempotency_key`: calling it again with the same key
returns the first refund's reference and moves no more money. The refund job relies on it to
survive a crash between the provider's answer and our commit.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """What a provider needs to open a payment for an order."""

    order_id: UUID
    tenant_id: UUID
    order_number: str
    amount: Decimal
    currency: str
    method: str


@dataclass(frozen=True, slots=True)
class PaymentLink:
    """The provider's answer: its reference, and where the buyer pays (None for bank transfers)."""

    payment_ref: str
    payment_url: str | None


class RefundRejected(Exception):
    """The provider refused the refund for good (retrying cannot help)."""


class PaymentProvider(abc.ABC):
    """A payment provider adapter."""

    name: str

    @abc.abstractmethod
    async def create_payment(self, order: PaymentRequest) -> PaymentLink:
        """Open a payment for `order`; returns its reference and payment page."""

    @abc.abstractmethod
    async def refund(self, payment_ref: str, amount: Decimal, idempotency_key: str) -> str:
        """Refund `amount` of the payment; returns the refund reference. Idempotent per key."""
