"""Payments: the provider port (provider.py), the sandbox adapter behind it (sandbox.py), signed
webhooks (webhook.py), applying payment events to orders (settlement.py) and executing refunds
(refund_execution.py). A real provider is a new adapter implementing `PaymentProvider`, not a rewrite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datetime as dt
    from uuid import UUID

    from engine.db import Database
    from engine.payments.provider import PaymentProvider
    from engine.settings import Settings


def provider_for(settings: "Settings", db: "Database") -> "PaymentProvider":
    """The adapter PAYMENT_PROVIDER names (engine.payments.config): the sandbox, or none."""
    from engine.payments.config import SANDBOX, provider_name

    if provider_name(settings) == SANDBOX:
        from engine.payments.sandbox import SandboxProvider

        return SandboxProvider(settings, db)
    from engine.payments.unconfigured import NoProvider

    return NoProvider()


def payment_url(settings: "Settings", *, method: str, order_id: "UUID", tenant_id: "UUID",
                now: "dt.datetime") -> str | None:
    """Where the buyer of a CARD or EWALLET order pays: the configured provider's page, carrying
    a token for this order alone; None without a provider that hosts one."""
    from engine.payments.config import SANDBOX, provider_name

    if method not in ("CARD", "EWALLET") or provider_name(settings) != SANDBOX:
        return None
    from engine.payments.sandbox import page_url

    return page_url(settings, order_id, tenant_id, now=now)
