"""Which payment provider is on, and the secrets each side of the webhook uses.

Two secrets, two owners, as with a real provider: the provider signs its webhooks with *its*
secret (the sandbox: SANDBOX_PROVIDER_SECRET); our webhook endpoint verifies them with *ours*
(PAYMENT_WEBHOOK_SECRET), which an operator sets to the value the provider gave them. Nothing
of ours signs events with our own secret outside dev. In `commerce dev` both default to one
public development value (the sandbox's to ours when only ours is set), so the sandbox page
works on a fresh checkout; outside dev there are no defaults (and `commerce serve` refuses dev
mode).
"""

from __future__ import annotations

from engine.settings import Settings, SettingsError

SANDBOX, NONE = "sandbox", "none"
PROVIDERS = (SANDBOX, NONE)
# Public on purpose, like the development JWT key: it protects nothing outside a laptop.
DEV_PAYMENT_SECRET = "dev-only-payment-secret-not-for-production-0000"


def provider_name(settings: Settings) -> str:
    """The configured provider: PAYMENT_PROVIDER, else sandbox in dev mode and none outside it,
    so a production deployment never settles orders through the sandbox by accident."""
    name = (settings.payment_provider or "").strip().lower()
    if not name:
        return SANDBOX if settings.dev_mode else NONE
    if name not in PROVIDERS:
        raise SettingsError(f"PAYMENT_PROVIDER={settings.payment_provider!r}: expected one of {', '.join(PROVIDERS)}")
    return name


def webhook_secret(settings: Settings) -> str | None:
    """Ours: what /payments/webhook verifies signatures with."""
    return settings.payment_webhook_secret or (DEV_PAYMENT_SECRET if settings.dev_mode else None)


def sandbox_secret(settings: Settings) -> str | None:
    """The sandbox provider's: what it signs its webhooks and its payment-page tokens with.
    In dev mode it defaults to the shop's secret, so setting PAYMENT_WEBHOOK_SECRET alone keeps
    the page working on a laptop; outside dev it must be configured on its own."""
    if settings.sandbox_provider_secret:
        return settings.sandbox_provider_secret
    return webhook_secret(settings) if settings.dev_mode else None


def check(settings: Settings) -> None:
    """Refuse a configuration that cannot work: an unknown provider, or the sandbox outside dev
    without its own secret."""
    if provider_name(settings) == SANDBOX and not sandbox_secret(settings):
        raise SettingsError("PAYMENT_PROVIDER=sandbox needs SANDBOX_PROVIDER_SECRET outside dev mode")
