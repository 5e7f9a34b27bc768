"""Payment expiry: unpaid orders are cancelled and their stock returns; a payment racing the
expiry ends in exactly one terminal state, and a late payment is refunded."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time

from engine import expiry
from engine.payments import refund_execution, webhook
from engine.payments.sandbox import SandboxProvider, payment_ref_of
from engine.payments.webhook import PaymentEvent, encode_event, sign
from tests.integration.payments.shop import order_state, place_order

OVERDUE = dt.timedelta(seconds=-1)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def test_an_overdue_order_is_cancelled_and_its_stock_released_once(tenant, db, database):
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id, quantity=3, on_hand=5, expires_in=OVERDUE)
    assert (await order_state(db, order.id))["available"] == 2
    assert await expiry.expire_by_id(database, order.id, now=now()) is True
    assert await expiry.expire_by_id(database, order.id, now=now()) is False
    s = await order_state(db, order.id)
    assert (s["status"], s["reserved"], s["sold"], s["available"]) == ("CANCELLED", 0, 0, 5)
    row = await db.fetchrow("SELECT cancel_reason, cancelled_at FROM orders WHERE id = $1", order.id)
    assert row["cancelled_at"] is not None and row["cancel_reason"]
    assert await db.fetchval("SELECT changed_by FROM order_status_history WHERE order_id = $1 AND status = 'CANCELLED'",
                             order.id) == "system:expiry"


async def test_orders_not_yet_due_or_paid_are_left_alone(tenant, db, database, base_settings):
    buyer = await tenant.user()
    fresh = await place_order(db, tenant.id, buyer.id)
    assert await expiry.expire_by_id(database, fresh.id, now=now()) is False
    paid = await place_order(db, tenant.id, buyer.id, expires_in=OVERDUE)
    await _pay(database, base_settings, paid)
    assert await expiry.expire_by_id(database, paid.id, now=now()) is False
    assert (await order_state(db, fresh.id))["status"] == "PENDING_PAYMENT"
    assert (await order_state(db, paid.id))["status"] == "PAID"


async def test_the_sweep_expires_every_overdue_order_in_batches(tenant, db, database):
    buyer = await tenant.user()
    overdue = [await place_order(db, tenant.id, buyer.id, expires_in=OVERDUE) for _ in range(7)]
    fresh = await place_order(db, tenant.id, buyer.id)
    assert await expiry.sweep_overdue(database, now=now(), batch_size=3) >= 7
    for o in overdue:
        assert (await order_state(db, o.id))["status"] == "CANCELLED"
    assert (await order_state(db, fresh.id))["status"] == "PENDING_PAYMENT"
    assert await expiry.sweep_overdue(database, now=now()) == 0


async def _pay(database, settings, order) -> str:
    ev = PaymentEvent("evt_" + secrets.token_hex(8), webhook.PAYMENT_SUCCEEDED, order.id, payment_ref_of(order.id),
                      order.total, "RUB")
    ts = int(time.time())
    body = encode_event(ev, created=ts)
    return await webhook.receive(database, settings, sign(settings.payment_webhook_secret, body, ts), body, now=now())


async def test_payment_racing_expiry_100_times_ends_consistently(tenant, db, database, base_settings):
    buyer = await tenant.user()
    first = await place_order(db, tenant.id, buyer.id, quantity=1, on_hand=1000, expires_in=OVERDUE)
    orders = [first] + [await place_order(db, tenant.id, buyer.id, quantity=1, expires_in=OVERDUE,
                                          stock_id=first.stock_id) for _ in range(99)]
    provider = SandboxProvider(base_settings, database)
    outcomes = {}
    for o in orders:
        paid_outcome, _ = await asyncio.gather(_pay(database, base_settings, o),
                                               expiry.expire_by_id(database, o.id, now=now()))
        outcomes[o.id] = paid_outcome
    paid = late = 0
    for o in orders:
        s = await order_state(db, o.id)
        if s["status"] == "PAID":
            assert outcomes[o.id] == "PAID"
            paid += 1
        else:
            assert s["status"] == "CANCELLED" and outcomes[o.id] == "LATE_PAYMENT_REFUNDED"
            late += 1
            assert await db.fetchval("SELECT count(*) FROM outbox WHERE job = 'refund_cancelled_order'"
                                     " AND payload->>'order_id' = $1", str(o.id)) == 1
            # The refund job, run twice: one refund.
            for _ in range(2):
                await refund_execution.refund_cancelled_order(database, provider, o.id, now=now())
            s = await order_state(db, o.id)
            assert (s["payment_status"], s["refunded_amount"]) == ("REFUNDED", o.total)
            assert await db.fetchval("SELECT count(*) FROM sandbox_refunds WHERE payment_ref = $1",
                                     payment_ref_of(o.id)) == 1
    stock = await db.fetchrow("SELECT reserved, sold, on_hand FROM stock WHERE id = $1", first.stock_id)
    assert (stock["reserved"], stock["sold"]) == (0, paid)
    assert paid + late == 100
