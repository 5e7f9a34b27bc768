"""Partner commissions: accrued once on delivery, reversed with refunds, balance = ledger sum."""

from __future__ import annotations

from decimal import Decimal

from engine import partners
from engine.partners import EarningLine, earnings
from tests.integration.fulfilment.conftest import advance, arrange_order


def test_earnings_follow_the_net_of_each_line():
    lines = [EarningLine(Decimal("2500"), 3, Decimal("10"), Decimal("5")),
             EarningLine(Decimal("100"), 1, Decimal("0"), Decimal("50"))]
    assert earnings(lines, Decimal("7600"), Decimal("0")) == (Decimal("750.00"), Decimal("425.00"))
    # A 10 % discount shrinks every line's net alike.
    assert earnings(lines, Decimal("7600"), Decimal("760")) == (Decimal("675.00"), Decimal("382.50"))
    assert earnings([], Decimal("0"), Decimal("0")) == (Decimal("0.00"), Decimal("0.00"))


async def _balance(db, user_id):
    return await db.fetchrow("SELECT balance, career_points FROM partner_balances WHERE user_id = $1", user_id)


async def test_accrual_is_once_and_reversal_follows_refunded_units(tenant, db, database):
    partner = await tenant.user("partner")
    order = await arrange_order(db, tenant.id, partner.id, lines=(("100", 2), ("50", 2)), commission="10", points="20")
    assert await partners.accrue_commission(database, order.id) == "NOT_DELIVERED"
    await advance(database, order, to="DELIVERED")
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE job = 'accrue_commission'"
                             " AND payload->>'order_id' = $1", str(order.id)) == 1
    assert [await partners.accrue_commission(database, order.id) for _ in range(2)] == ["ACCRUED", "ALREADY_ACCRUED"]
    b = await _balance(db, partner.id)
    assert (b["balance"], b["career_points"]) == (Decimal("30.00"), Decimal("60.00"))

    # One of the 100 items is refunded: 10 % of it comes back off the balance, however often asked.
    await db.execute("UPDATE order_items SET refunded_quantity = 1 WHERE id = $1", order.items[0])
    assert [await partners.reverse_commission(database, order.id) for _ in range(2)] == ["REVERSED", "UNCHANGED"]
    b = await _balance(db, partner.id)
    assert (b["balance"], b["career_points"]) == (Decimal("20.00"), Decimal("40.00"))
    assert await db.fetchval("SELECT sum(amount) FROM partner_ledger WHERE user_id = $1", partner.id) == b["balance"]


async def test_a_reversal_never_takes_the_balance_below_zero(tenant, db, database):
    partner = await tenant.user("partner")
    order = await arrange_order(db, tenant.id, partner.id, commission="10")
    await advance(database, order, to="DELIVERED")
    await partners.accrue_commission(database, order.id)          # +20
    await db.execute("UPDATE partner_balances SET balance = 5 WHERE user_id = $1", partner.id)  # spent 15
    await db.execute("INSERT INTO partner_ledger (tenant_id, user_id, kind, amount) VALUES ($1, $2, 'PAYMENT', -15)",
                     tenant.id, partner.id)
    await db.execute("UPDATE order_items SET refunded_quantity = quantity WHERE order_id = $1", order.id)
    assert await partners.reverse_commission(database, order.id) == "REVERSED"
    assert (await _balance(db, partner.id))["balance"] == Decimal("0.00")
    assert await db.fetchval("SELECT sum(amount) FROM partner_ledger WHERE user_id = $1", partner.id) == 0


async def test_customers_earn_nothing(tenant, db, database):
    customer = await tenant.user()
    order = await arrange_order(db, tenant.id, customer.id, commission="10")
    await advance(database, order, to="DELIVERED")
    assert await partners.accrue_commission(database, order.id) == "NOT_A_PARTNER"
    assert await db.fetchval("SELECT count(*) FROM partner_ledger WHERE order_id = $1", order.id) == 0
