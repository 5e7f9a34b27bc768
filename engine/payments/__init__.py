"""Payments: the provider port (provider.py), the sandbox adapter behind it (sandbox.py), signed
webhooks (webhook.py), applying payment events to orders (settlement.py) and executing refunds
(refund_execution.py). A real provider is a new adapter implementing `PaymentProvider`, not a rewrite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.db import Database
    from engine.payments.provider import PaymentProvider
    from engine.settings import Settings


def provider_for(settings: "Settings", db: "Database") -> "PaymentProvider":
    """The configured payment provider (the sandbox: the only adapter so far)."""
    from engine.payments.sandbox import SandboxProvider

    return SandboxProvider(settings, db)
