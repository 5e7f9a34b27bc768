"""Stock holds: a checkout that dies between reserving and writing its order gives its units
back (the reconciler), a live checkout's units are never touched, and units go back once.

Throughout, every reserved unit is accounted for: stock.reserved = the units of its holds +
the units of its orders still RESERVED (and on_hand = available + reserved + sold)."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.stock import StockLine, StockService, hold_grace, reclaim_orphaned_holds
from engine.stock_summary import refresh as refresh_summary
from tests.integration.conftest_orders import make_buyer, make_product, make_shipping_method, stock_of

CHECKOUT = "/api/v1/cart/checkout"


@pytest.fixture
async def service(database, base_settings):
    s = StockService(database, base_settings)
    yield s
    await s.shutdown(1)


async def _stock_id(db, pid):
    return await db.fetchval("SELECT id FROM stock WHERE product_id = $1", pid)


async def _accounted(db, pid) -> dict[str, int]:
    """The stock row, after checking that each of its reserved units has an owner."""
    s = await stock_of(db, pid)
    assert s["on_hand"] == s["available"] + s["reserved"] + s["sold"]
    sid = await _stock_id(db, pid)
    held = await db.fetchval("SELECT coalesce(sum(quantity), 0) FROM stock_holds WHERE stock_id = $1", sid)
    ordered = await db.fetchval(
        "SELECT coalesce(sum(i.quantity), 0) FROM order_items i JOIN orders o ON o.id = i.order_id"
        " WHERE i.stock_id = $1 AND o.stock_state = 'RESERVED'", sid)
    assert s["reserved"] == held + ordered, (s, held, ordered)
    return s


async def _age(db, sid, seconds: float) -> None:
    """Pretend the stock row's holds were made `seconds` ago (a crash that long past)."""
    await db.execute("UPDATE stock_holds SET created_at = created_at - make_interval(secs => $2)"
                     " WHERE stock_id = $1", sid, seconds)


@pytest.mark.parametrize("mode", ["batched", "single"])
async def test_a_crash_between_reserving_and_ordering_gives_the_units_back_after_the_grace_period(
        database, base_settings, db, tenant, mode):
    service = StockService(database, base_settings.with_(actor_mode=mode))
    a, b = await make_product(db, tenant.id, stock=10), await make_product(db, tenant.id, stock=5)
    sa, sb = await _stock_id(db, a), await _stock_id(db, b)
    # The "crashed" checkout: reserved, then never wrote its order nor released anything.
    reservation = await service.reserve_all([StockLine(sa, 3, a), StockLine(sb, 2, b), StockLine(sa, 1, a)])
    assert len(reservation.holds) == 2
    assert await _accounted(db, a) == {"on_hand": 10, "available": 6, "reserved": 4, "sold": 0}
    assert await _accounted(db, b) == {"on_hand": 5, "available": 3, "reserved": 2, "sold": 0}
    assert await refresh_summary(database) >= 2
    assert await db.fetchval("SELECT stock_available FROM products WHERE id = $1", a) == 6

    grace = hold_grace(base_settings)
    assert grace >= dt.timedelta(seconds=base_settings.actor_ask_timeout + base_settings.db_command_timeout)
    await reclaim_orphaned_holds(database, older_than=grace)      # too young: a live checkout's
    assert (await _accounted(db, a))["reserved"] == 4

    await _age(db, sa, grace.total_seconds() + 1)
    await _age(db, sb, grace.total_seconds() + 1)
    assert await reclaim_orphaned_holds(database, older_than=grace) >= 2
    assert await _accounted(db, a) == {"on_hand": 10, "available": 10, "reserved": 0, "sold": 0}
    assert await _accounted(db, b) == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}
    assert await refresh_summary(database) >= 2
    assert await db.fetchval("SELECT stock_available FROM products WHERE id = $1", a) == 10

    # The checkout's process was only slow, not dead: its order statement finds the holds gone and
    # writes nothing (tests/integration/test_checkout_write.py), then checkout releases the
    # reservation, which gives back nothing twice.
    await service.release_all(reservation)
    assert (await _accounted(db, a))["reserved"] == 0
    await service.shutdown(1)


async def test_a_normal_checkout_consumes_its_holds_and_the_reconciler_leaves_its_units_alone(
        api, tenant, db, database):
    pid = await make_product(db, tenant.id, stock=10)
    sid = await _stock_id(db, pid)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 3)])
    r = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method))
    assert r.status == 201, r.body
    assert await db.fetchval("SELECT count(*) FROM stock_holds WHERE stock_id = $1", sid) == 0
    await reclaim_orphaned_holds(database, older_than=dt.timedelta(0))   # even with no grace at all
    assert await _accounted(db, pid) == {"on_hand": 10, "available": 7, "reserved": 3, "sold": 0}

    # A checkout that fails after reserving (the partner balance cannot pay) releases its holds.
    partner = await make_buyer(tenant, db, [(pid, 2)], role="partner")
    r = await api.post(CHECKOUT, as_=partner.user, json=partner.body(method, paymentMethod="BALANCE"))
    assert r.status == 400 and r.error["code"] == "INSUFFICIENT_BALANCE", r.body
    assert await db.fetchval("SELECT count(*) FROM stock_holds WHERE stock_id = $1", sid) == 0
    assert await _accounted(db, pid) == {"on_hand": 10, "available": 7, "reserved": 3, "sold": 0}


async def test_a_release_and_the_reconciler_racing_give_the_units_back_once(database, service, db, tenant):
    pid = await make_product(db, tenant.id, stock=8)
    sid = await _stock_id(db, pid)
    reservations = [await service.reserve_all([StockLine(sid, 2, pid)]) for _ in range(3)]
    await _age(db, sid, 3600)
    await service.release_all(reservations[0])
    assert await reclaim_orphaned_holds(database, older_than=dt.timedelta(minutes=1)) >= 2
    for r in reservations:
        await service.release_all(r)   # all gone already: nothing moves twice
    assert await _accounted(db, pid) == {"on_hand": 8, "available": 8, "reserved": 0, "sold": 0}


async def test_an_order_that_consumed_its_holds_keeps_its_units_through_payment(database, service, db, tenant):
    pid = await make_product(db, tenant.id, stock=4)
    sid = await _stock_id(db, pid)
    user = await tenant.user()
    reservation = await service.reserve_all([StockLine(sid, 3, pid)])
    async with database.transaction() as conn:   # what the order statement does: holds out, order in
        await conn.execute("DELETE FROM stock_holds WHERE id = ANY($1::uuid[])", list(reservation.holds))
        oid = await conn.fetchval(
            "INSERT INTO orders (tenant_id, user_id, order_number, status, payment_method, currency, subtotal, total,"
            " shipping_address, shipping_method) VALUES ($1, $2, $3, 'PENDING_PAYMENT', 'CARD', 'RUB', 0, 0, '{}',"
            " '{}') RETURNING id", tenant.id, user.id, f"H-{sid}")
        await conn.execute("INSERT INTO order_items (tenant_id, order_id, product_id, stock_id, product_name, sku,"
                           " quantity, unit_price, total_price) VALUES ($1, $2, $3, $4, 'p', 's', 3, 0, 0)",
                           tenant.id, oid, pid, sid)
    await reclaim_orphaned_holds(database, older_than=dt.timedelta(0))
    assert await _accounted(db, pid) == {"on_hand": 4, "available": 1, "reserved": 3, "sold": 0}
    await service.release_all(reservation)   # a late "release" after the commit moves nothing
    assert await _accounted(db, pid) == {"on_hand": 4, "available": 1, "reserved": 3, "sold": 0}


async def test_a_hold_whose_units_were_moved_elsewhere_is_left_alone_and_the_rest_reclaimed(
        database, service, db, tenant):
    broken, fine = await make_product(db, tenant.id, stock=5), await make_product(db, tenant.id, stock=5)
    sb, sf = await _stock_id(db, broken), await _stock_id(db, fine)
    await service.reserve_all([StockLine(sb, 2, broken)])
    await service.reserve_all([StockLine(sf, 3, fine)])
    # A bug elsewhere sold the held units without consuming the hold: reserved no longer covers it.
    await db.execute("UPDATE stock SET reserved = 0, sold = 2 WHERE id = $1", sb)
    await _age(db, sb, 3600)
    await _age(db, sf, 3600)
    assert await reclaim_orphaned_holds(database, older_than=dt.timedelta(minutes=1), limit=1) >= 1
    assert await stock_of(db, fine) == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}
    assert await stock_of(db, broken) == {"on_hand": 5, "available": 3, "reserved": 0, "sold": 2}
    assert await db.fetchval("SELECT sum(quantity) FROM stock_holds WHERE stock_id = $1", sb) == 2
    await db.execute("DELETE FROM stock_holds WHERE stock_id = $1", sb)
