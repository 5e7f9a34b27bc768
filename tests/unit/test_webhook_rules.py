"""Webhook rules (engine.domain.webhooks): signature scheme, retry timing, allowed targets."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.domain.errors import ValidationError
from engine.domain.webhooks import RetryPolicy, address_allowed, encode_event, parse_target, sign
from engine.payments import webhook as payment_webhook

T0 = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)


def test_signature_is_the_payment_webhook_scheme():
    body = b'{"a":1}'
    assert sign("s3cret", body, 1_700_000_000) == payment_webhook.sign("s3cret", body, 1_700_000_000)
    payment_webhook.verify_signature("s3cret", sign("s3cret", body, 100), body, now=100, tolerance=5)


def test_event_body_is_stable_for_a_resend():
    one = encode_event("e1", "order.paid", T0, {"orderId": "o"})
    assert one == encode_event("e1", "order.paid", T0, {"orderId": "o"})
    assert b'"occurredAt":"2026-12-02T12:00:00Z"' in one and one.startswith(b'{"success":true')


def test_backoff_doubles_up_to_the_cap_and_gives_up_after_the_window():
    p = RetryPolicy(base_seconds=30, max_seconds=3600, window_seconds=86400)
    waits = [(p.next_attempt(n, T0, T0) - T0).total_seconds() for n in range(1, 10)]
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert p.next_attempt(3, T0, T0 + dt.timedelta(hours=23, minutes=59)) is None
    assert p.next_attempt(10_000, T0, T0) is not None   # no overflow on a huge attempt count


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("10.0.0.1", False),
    ("172.16.5.5", False), ("192.168.0.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
    ("0.0.0.0", False), ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False),
    ("::ffff:10.0.0.1", False), ("224.0.0.1", False), ("255.255.255.255", False), ("not-an-ip", False),
])
def test_only_public_addresses_outside_dev_mode(address, public):
    assert address_allowed(address, allow_private=False) is public
    assert address_allowed("127.0.0.1", allow_private=True)


@pytest.mark.parametrize("url", [
    "http://example.com/h", "https://127.0.0.1/h", "https://[::1]/h", "https://localhost/h", "https://intranet/h",
    "https://u:p@example.com/h", "file:///etc/passwd", "https:///h", "https://example.com:99999/h",
    "https://example.com/h#frag", "gopher://example.com/", "https://" + "a" * 2001,
])
def test_bad_targets_are_refused_outside_dev_mode(url):
    with pytest.raises(ValidationError):
        parse_target(url, dev_mode=False)


def test_dev_mode_allows_http_and_loopback():
    assert parse_target("http://127.0.0.1:8080/hook", dev_mode=True).port == 8080
    assert parse_target("https://hooks.example.com/x", dev_mode=False).host == "hooks.example.com"
