"""engine.stock directly: batching, shortfalls, a caller that gives up never leaks units,
and the in-transaction moves (sell, release, return)."""

from __future__ import annotations

import asyncio

import pytest

from engine.domain.errors import ActorUnavailable, InsufficientStock
from engine.stock import StockLine, StockService, commit_sale, release_order, return_sold
from tests.integration.conftest_orders import make_product, stock_of


async def _stock_id(db, pid):
    return await db.fetchval("SELECT id FROM stock WHERE product_id = $1", pid)


@pytest.mark.parametrize("mode", ["batched", "single"])
async def test_reservations_fit_first_come_first_served_and_shortfalls_say_what_is_left(database, base_settings,
                                                                                        db, tenant, mode):
    service = StockService(database, base_settings.with_(actor_mode=mode))
    pid = await make_product(db, tenant.id, stock=10)
    sid = await _stock_id(db, pid)
    results = await asyncio.gather(*(service.reserve(sid, 3) for _ in range(5)), return_exceptions=True)
    assert sum(r is None for r in results) == 3
    errors = [r for r in results if isinstance(r, InsufficientStock)]
    assert len(errors) == 2 and all(e.extra["available"] == 1 for e in errors)
    assert await stock_of(db, pid) == {"on_hand": 10, "available": 1, "reserved": 9, "sold": 0}
    if mode == "batched":
        assert service.stats().messages == 5 and service.stats().batches < 5  # coalesced
    await service.shutdown(1)


async def test_reserve_all_sums_lines_on_one_row_and_is_all_or_nothing(database, base_settings, db, tenant):
    service = StockService(database, base_settings)
    a = await make_product(db, tenant.id, stock=5)
    b = await make_product(db, tenant.id, stock=5)
    sa, sb = await _stock_id(db, a), await _stock_id(db, b)
    with pytest.raises(InsufficientStock) as info:
        await service.reserve_all([StockLine(sa, 2, a), StockLine(sb, 3, b), StockLine(sb, 3, b)])
    assert info.value.extra["productId"] == str(b) and info.value.extra["available"] == 5
    assert (await stock_of(db, a))["reserved"] == 0 and (await stock_of(db, b))["reserved"] == 0
    got = await service.reserve_all([StockLine(sa, 2, a), StockLine(sb, 3, b), StockLine(None, 7, b)])
    assert dict(got.units) == {sa: 2, sb: 3}
    await service.release_all(got)
    assert (await stock_of(db, a))["available"] == 5
    await service.shutdown(1)


async def test_a_caller_that_times_out_never_leaks_reserved_units(database, base_settings, db, tenant):
    service = StockService(database, base_settings.with_(actor_ask_timeout=0.2))
    pid = await make_product(db, tenant.id, stock=5)
    sid = await _stock_id(db, pid)
    async with db.acquire() as blocker:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM stock WHERE id = $1 FOR UPDATE", sid)  # the actor waits on this
        with pytest.raises(ActorUnavailable):
            await service.reserve(sid, 2)
        await tx.rollback()
    # The actor commits once the lock is gone, finds its caller gone, and gives the units back.
    for _ in range(100):
        s = await stock_of(db, pid)
        if s["reserved"] == 0 and service.stats().mailbox_depth == 0:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    assert await stock_of(db, pid) == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}
    await service.shutdown(1)


async def test_sell_release_and_return_move_units_between_the_counters(database, base_settings, db, tenant):
    service = StockService(database, base_settings)
    pid = await make_product(db, tenant.id, stock=10)
    sid = await _stock_id(db, pid)
    user = await tenant.user()

    async def order(qty: int):
        await service.reserve(sid, qty)
        oid = await db.fetchval(
            "INSERT INTO orders (tenant_id, user_id, order_number, status, payment_method, currency, subtotal, total,"
            " shipping_address, shipping_method) VALUES ($1, $2, $3, 'PENDING_PAYMENT', 'CARD', 'RUB', 0, 0, '{}', '{}')"
            " RETURNING id", tenant.id, user.id, f"T-{qty}-{sid}")
        await db.execute("INSERT INTO order_items (tenant_id, order_id, product_id, stock_id, product_name, sku,"
                         " quantity, unit_price, total_price) VALUES ($1, $2, $3, $4, 'p', 's', $5, 0, 0)",
                         tenant.id, oid, pid, sid, qty)
        return oid

    sold, dropped = await order(4), await order(3)
    async with database.transaction() as conn:
        await commit_sale(conn, sold)
        await release_order(conn, dropped)
    assert await stock_of(db, pid) == {"on_hand": 10, "available": 6, "reserved": 0, "sold": 4}
    assert await db.fetchval("SELECT units_sold FROM products WHERE id = $1", pid) == 4
    item = await db.fetchval("SELECT id FROM order_items WHERE order_id = $1", sold)
    async with database.transaction() as conn:
        await return_sold(conn, sold, {item: 1})
    assert await stock_of(db, pid) == {"on_hand": 10, "available": 7, "reserved": 0, "sold": 3}
    async with database.transaction() as conn:  # a second move of one order changes nothing
        assert await release_order(conn, dropped) is False
        assert await commit_sale(conn, sold) is False
        assert await release_order(conn, sold) is False
    assert await stock_of(db, pid) == {"on_hand": 10, "available": 7, "reserved": 0, "sold": 3}
    await service.shutdown(1)
