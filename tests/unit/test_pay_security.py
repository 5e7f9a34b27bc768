"""Pay-page tokens, the payment-provider switch, dev-mode links and `serve` refusing dev mode."""

from __future__ import annotations

import uuid

import pytest

from engine.payments import pay_tokens
from engine.payments.config import DEV_PAYMENT_SECRET, check, provider_name, sandbox_secret, webhook_secret
from engine.settings import Settings, SettingsError
from ops.dev import dev_public_base_url
from ops.serve import refuse_dev_mode

ORDER, TENANT = uuid.uuid4(), uuid.uuid4()


def test_a_token_grants_its_order_and_tenant_until_it_expires():
    token = pay_tokens.issue("s3cret", ORDER, TENANT, expires_at=1000)
    assert pay_tokens.verify("s3cret", token, now=1000) == pay_tokens.PayGrant(ORDER, TENANT, 1000)
    assert pay_tokens.verify("s3cret", token, now=1001) is None
    assert pay_tokens.verify("other", token, now=0) is None
    assert pay_tokens.verify(None, token, now=0) is None
    assert str(ORDER) not in token and ORDER.hex not in token.lower()


def test_every_edited_character_breaks_the_token():
    token = pay_tokens.issue("s3cret", ORDER, TENANT, expires_at=2**40)
    for i in range(len(token)):
        for c in "A_-z0":
            if token[i] != c:
                edited = token[:i] + c + token[i + 1:]
                got = pay_tokens.verify("s3cret", edited, now=0)
                assert got is None or got == pay_tokens.verify("s3cret", token, now=0), (i, c)
    for junk in ("", "=", "a" * 75, "a" * 500, "Ω" * 10, token + "AA", token[:-1]):
        assert pay_tokens.verify("s3cret", junk, now=0) is None


def test_the_form_token_is_bound_to_its_pay_token():
    a = pay_tokens.issue("s3cret", ORDER, TENANT, expires_at=5)
    b = pay_tokens.issue("s3cret", uuid.uuid4(), TENANT, expires_at=5)
    assert pay_tokens.csrf_ok("s3cret", a, pay_tokens.csrf_token("s3cret", a))
    assert not pay_tokens.csrf_ok("s3cret", a, pay_tokens.csrf_token("s3cret", b))
    assert not pay_tokens.csrf_ok("s3cret", a, pay_tokens.csrf_token("other", a))
    assert not pay_tokens.csrf_ok("s3cret", a, None) and not pay_tokens.csrf_ok("s3cret", a, "")


def test_the_sandbox_is_on_in_dev_and_off_in_production_unless_named():
    assert provider_name(Settings(dev_mode=True)) == "sandbox"
    assert provider_name(Settings(dev_mode=False)) == "none"
    assert provider_name(Settings(dev_mode=False, payment_provider="sandbox")) == "sandbox"
    assert provider_name(Settings(dev_mode=True, payment_provider="none")) == "none"
    with pytest.raises(SettingsError):
        provider_name(Settings(payment_provider="paypal-ish"))
    with pytest.raises(SettingsError):   # the sandbox outside dev needs its own secret
        check(Settings(dev_mode=False, payment_provider="sandbox", payment_webhook_secret="ours"))
    check(Settings(dev_mode=False, payment_provider="sandbox", sandbox_provider_secret="theirs"))


def test_dev_mode_has_payment_secrets_and_production_has_none_by_default():
    dev = Settings(dev_mode=True)
    assert webhook_secret(dev) == sandbox_secret(dev) == DEV_PAYMENT_SECRET
    prod = Settings(dev_mode=False)
    assert webhook_secret(prod) is None and sandbox_secret(prod) is None
    assert webhook_secret(Settings(payment_webhook_secret="x", sandbox_provider_secret="y")) == "x"
    assert sandbox_secret(Settings(dev_mode=True, payment_webhook_secret="x")) == "x"     # a laptop with one secret
    assert sandbox_secret(Settings(dev_mode=False, payment_webhook_secret="x")) is None   # production: never ours


@pytest.mark.parametrize(("host", "port", "url"), [
    ("127.0.0.1", 8123, "http://127.0.0.1:8123"), ("0.0.0.0", 9000, "http://127.0.0.1:9000"),
    ("localhost", 8080, "http://localhost:8080"), ("::1", 8081, "http://[::1]:8081"), ("::", 8082, "http://[::1]:8082"),
])
def test_dev_links_follow_the_address_the_engine_listens_on(host, port, url):
    assert dev_public_base_url(host, port, env={}) == url
    assert dev_public_base_url(host, port, env={"PUBLIC_BASE_URL": "https://x.example"}) == "https://x.example"


def test_serve_refuses_dev_mode():
    with pytest.raises(SettingsError):
        refuse_dev_mode(Settings(dev_mode=True))
    refuse_dev_mode(Settings(dev_mode=False))
