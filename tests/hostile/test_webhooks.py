"""Payment webhooks: a forged signature, a stale timestamp or a replayed event changes nothing.

The control case (a correctly signed, fresh event) pays the order; every attack is 401
INVALID_SIGNATURE and leaves the order, its payment and its events as they were.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest

from engine.payments import webhook

HOOK = "/api/v1/payments/webhook"


@pytest.fixture
async def pending_order(db, tenant) -> tuple[uuid.UUID, Decimal]:
    """A PENDING_PAYMENT order with its payment row, arranged directly (the webhook is the subject)."""
    user = await tenant.user("customer")
    oid = await db.fetchval(
        "INSERT INTO orders (tenant_id, user_id, order_number, status, payment_method, currency, subtotal, total,"
        " shipping_address, shipping_method, expires_at) VALUES ($1, $2, $3, 'PENDING_PAYMENT', 'CARD', 'RUB',"
        " 100, 100, '{}'::jsonb, '{}'::jsonb, now() + interval '30 minutes') RETURNING id",
        tenant.id, user.id, f"HOOK-{uuid.uuid4().hex[:8]}")
    await db.execute("INSERT INTO payments (tenant_id, order_id, provider, payment_ref, method, currency, amount)"
                     " VALUES ($1, $2, 'sandbox', $3, 'CARD', 'RUB', 100)", tenant.id, oid, f"ref-{oid}")
    return oid, Decimal("100")


def _event(order_id: uuid.UUID, *, event_id: str | None = None, created: int | None = None) -> bytes:
    ev = webhook.PaymentEvent(event_id or f"evt_{uuid.uuid4().hex}", webhook.PAYMENT_SUCCEEDED, order_id,
                              f"ref-{order_id}", Decimal("100"), "RUB")
    return webhook.encode_event(ev, created=created or int(time.time()))


async def _send(api, body: bytes, signature: str | None):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[webhook.SIGNATURE_HEADER] = signature
    return await api.post(HOOK, data=body, headers=headers)


async def _state(db, oid) -> tuple:
    row = await db.fetchrow("SELECT o.status, o.payment_status, p.status AS p FROM orders o JOIN payments p"
                            " ON p.order_id = o.id WHERE o.id = $1", oid)
    events = await db.fetchval("SELECT count(*) FROM payment_events WHERE order_id = $1", oid)
    return tuple(row) + (events,)


@pytest.mark.parametrize("attack", ["no-header", "garbage", "wrong-secret", "body-tampered", "stale", "future",
                                    "empty-v1"])
async def test_forged_or_stale_webhooks_are_refused(api, db, base_settings, pending_order, attack) -> None:
    oid, _ = pending_order
    secret = base_settings.payment_webhook_secret
    now = int(time.time())
    body = _event(oid)
    sig: str | None = webhook.sign(secret, body, now)
    if attack == "no-header":
        sig = None
    elif attack == "garbage":
        sig = "t=abc,v1=zzz"
    elif attack == "wrong-secret":
        sig = webhook.sign("attacker-secret-0123456789abcdef", body, now)
    elif attack == "body-tampered":
        body = body.replace(b'"100"', b'"1"')
    elif attack == "stale":
        old = now - base_settings.webhook_tolerance_seconds - 60
        body = _event(oid, created=old)
        sig = webhook.sign(secret, body, old)
    elif attack == "future":
        later = now + base_settings.webhook_tolerance_seconds + 60
        sig = webhook.sign(secret, body, later)
    elif attack == "empty-v1":
        sig = f"t={now},v1="
    before = await _state(db, oid)
    r = await _send(api, body, sig)
    assert r.status in (400, 401), (attack, r.status, r.body)
    assert r.status != 400 or attack == "garbage"
    assert await _state(db, oid) == before


async def test_replayed_event_is_applied_once(api, db, base_settings, pending_order) -> None:
    oid, _ = pending_order
    secret = base_settings.payment_webhook_secret
    body = _event(oid)
    first = await _send(api, body, webhook.sign(secret, body, int(time.time())))
    assert first.status == 200, first.body
    after_first = await _state(db, oid)
    assert after_first[0] == "PAID"
    replay = await _send(api, body, webhook.sign(secret, body, int(time.time())))
    assert replay.status == 401 and replay.error["code"] == "INVALID_SIGNATURE"
    assert await _state(db, oid) == after_first
