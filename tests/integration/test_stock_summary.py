"""Off the reservation's hot path (migration 0013, engine.stock_summary, engine.stock_signals):
the product summary follows reservations within its bound, restocks and sales at once; a
product actor that saw its stock run out answers from memory until units come back, in this
process or another, and at the latest after SOLD_OUT_RECHECK_MS."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine.db import Database
from engine.domain.errors import InsufficientStock
from engine.stock import StockService, release_holds
from engine.stock_levels import set_available
from engine.stock_summary import refresh
from tests.integration.conftest_orders import (make_buyer, make_product, make_shipping_method, stock_of,
                                               summary_shows)

CHECKOUT = "/api/v1/cart/checkout"


async def _stock_id(db, pid):
    return await db.fetchval("SELECT id FROM stock WHERE product_id = $1", pid)


async def _shown(db, pid) -> int:
    return await db.fetchval("SELECT stock_available FROM products WHERE id = $1", pid)


async def _names(api, **params):
    r = await api.get("/api/v1/products", params={k: str(v) for k, v in params.items()})
    assert r.status == 200, r.body
    return [p["id"] for p in r.data["products"]]


# ----------------------------------------------------------------------------- the summary

async def test_a_reservation_does_not_touch_the_product_row_until_the_refresh(database, base_settings, db, tenant):
    service = StockService(database, base_settings)   # not started: no background refresher
    pid = await make_product(db, tenant.id, stock=5)
    sid = await _stock_id(db, pid)
    before = await db.fetchval("SELECT xmin::text FROM products WHERE id = $1", pid)
    hold = await service.hold(sid, 2)
    assert await db.fetchval("SELECT xmin::text FROM products WHERE id = $1", pid) == before  # not rewritten
    assert await db.fetchval("SELECT count(*) FROM stock_summary_dirty WHERE product_id = $1", pid) == 1
    assert await refresh(database) >= 1
    assert await _shown(db, pid) == 3
    assert await db.fetchval("SELECT count(*) FROM stock_summary_dirty WHERE product_id = $1", pid) == 0
    await release_holds(database, [hold])
    assert await refresh(database) >= 1
    assert await _shown(db, pid) == 5
    await service.shutdown(1)


async def test_restocks_and_sales_move_the_summary_in_their_own_transaction(database, base_settings, db, tenant):
    pid = await make_product(db, tenant.id, stock=5)
    sid = await _stock_id(db, pid)
    async with database.transaction() as conn:
        await set_available(conn, sid, 9)
    assert await _shown(db, pid) == 9              # at once, no refresh
    # A sale (reserved -> sold) moves units_sold at once; available does not change.
    await db.execute("UPDATE stock SET reserved = 2 WHERE id = $1", sid)
    await refresh(database)
    sold_before = await db.fetchval("SELECT units_sold FROM products WHERE id = $1", pid)
    await db.execute("UPDATE stock SET reserved = reserved - 2, sold = sold + 2 WHERE id = $1", sid)
    assert await db.fetchval("SELECT units_sold FROM products WHERE id = $1", pid) == sold_before + 2
    assert await _shown(db, pid) == 7


async def test_a_refresh_racing_a_restock_loses_neither(database, base_settings, db, tenant):
    """The refresher recomputes absolute sums while restocks add deltas: whichever order they
    commit in, the summary ends equal to the stock rows' sum."""
    service = StockService(database, base_settings)
    pid = await make_product(db, tenant.id, stock=1000)
    sid = await _stock_id(db, pid)

    async def restock(n: int) -> None:
        for i in range(n):
            async with database.transaction() as conn:
                await conn.execute("UPDATE stock SET on_hand = on_hand + 1 WHERE id = $1", sid)

    async def reserve(n: int) -> None:
        for _ in range(n):
            await service.hold(sid, 1)

    async def refreshing(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await refresh(database)
            await asyncio.sleep(0)

    stop = asyncio.Event()
    refresher = asyncio.create_task(refreshing(stop))
    await asyncio.gather(restock(40), reserve(40), restock(40))
    stop.set()
    await refresher
    await refresh(database)
    assert await _shown(db, pid) == (await stock_of(db, pid))["available"] == 1000 + 80 - 40
    await service.shutdown(1)


async def test_listing_by_stock_and_out_of_stock_filter_follow_a_sell_out_within_the_bound(api, tenant, db):
    pid = await make_product(db, tenant.id, price="10", stock=2)
    method = await make_shipping_method(db, tenant.id)
    buyers = [await make_buyer(tenant, db, [(pid, 1)]) for _ in range(2)]
    assert str(pid) not in await _names(api, status="OUT_OF_STOCK")
    for b in buyers:
        r = await api.post(CHECKOUT, as_=b.user, json=b.body(method))
        assert r.status == 201, r.body
    took = await summary_shows(db, pid, 0)
    assert str(pid) in await _names(api, status="OUT_OF_STOCK")
    assert str(pid) not in await _names(api, status="ACTIVE")
    print(f"summary followed the sell-out in {took:.2f} s")


# ----------------------------------------------------------------------------- sold out, in memory

async def _sold_out_row(database, base_settings, db, tenant, **settings):
    service = StockService(database, base_settings.with_(**settings))
    pid = await make_product(db, tenant.id, stock=1)
    sid = await _stock_id(db, pid)
    hold = await service.hold(sid, 1)             # the last unit: the actor sees 0 left
    return service, pid, sid, hold


async def test_sold_out_is_answered_from_memory_without_the_database(database, base_settings, db, tenant):
    service, pid, sid, _ = await _sold_out_row(database, base_settings, db, tenant, sold_out_recheck_ms=60_000)
    batches = service.stats().batches
    started = time.process_time()
    for _ in range(200):
        with pytest.raises(InsufficientStock) as info:
            await service.hold(sid, 1)
        assert info.value.extra["available"] == 0
    cpu_ms = (time.process_time() - started) * 1000 / 200
    assert service.stats().batches == batches     # no actor, no statement
    print(f"sold-out answer: {cpu_ms:.3f} ms CPU each")
    assert cpu_ms < 1.0
    await service.shutdown(1)


async def test_units_back_in_this_process_sell_again_at_once(database, base_settings, db, tenant):
    service, pid, sid, hold = await _sold_out_row(database, base_settings, db, tenant, sold_out_recheck_ms=60_000)
    await service.start()
    await asyncio.wait_for(service._signals.listening.wait(), 5)
    with pytest.raises(InsufficientStock):
        await service.hold(sid, 1)
    await service.release([hold])
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:                                    # the notice travels through PostgreSQL
        try:
            await service.hold(sid, 1)
            break
        except InsufficientStock:
            assert loop.time() - start < 2.0, "a released unit was not sold within 2 s"
            await asyncio.sleep(0.01)
    await service.shutdown(1)


async def test_units_back_through_another_process_sell_within_the_bound(database, base_settings, db, tenant):
    """A restock by another connection (a second process's pool) notifies this process; and
    with the notice lost (no listener at all), the memory still expires after its bound."""
    listening, pid, sid, _ = await _sold_out_row(database, base_settings, db, tenant, sold_out_recheck_ms=60_000)
    await listening.start()
    await asyncio.wait_for(listening._signals.listening.wait(), 5)
    deaf, *_ = await _sold_out_row(database, base_settings, db, tenant, sold_out_recheck_ms=300)
    # The deaf service never started listening; make it remember the first row as sold out too.
    with pytest.raises(InsufficientStock):
        await deaf.hold(sid, 1)
    assert deaf.known_sold_out(sid)

    other = Database(base_settings)
    await other.open()
    try:
        async with other.transaction() as conn:
            await set_available(conn, sid, 2)     # two more units, from "another process"
    finally:
        await other.close()

    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        try:
            await listening.hold(sid, 1)
            break
        except InsufficientStock:
            assert loop.time() - start < 2.0, "a restocked unit was not sold within 2 s"
            await asyncio.sleep(0.01)
    start = loop.time()
    while True:                                    # no notice: at most SOLD_OUT_RECHECK_MS (300 ms)
        try:
            await deaf.hold(sid, 1)
            break
        except InsufficientStock:
            assert loop.time() - start < 0.3 + 0.5, "the sold-out memory outlived its bound"
            await asyncio.sleep(0.01)
    assert (await stock_of(db, pid))["available"] == 0
    await listening.shutdown(1)
    await deaf.shutdown(1)


async def test_the_memory_never_says_yes(database, base_settings, db, tenant):
    """Whatever the memory holds, a sale is decided by the database: with a short memory,
    20 units sell exactly 20 times to 60 callers in bursts."""
    service = StockService(database, base_settings.with_(sold_out_recheck_ms=50))
    await service.start()
    pid = await make_product(db, tenant.id, stock=20)
    sid = await _stock_id(db, pid)
    got = 0
    for _ in range(3):
        results = await asyncio.gather(*(service.hold(sid, 1) for _ in range(20)), return_exceptions=True)
        got += sum(not isinstance(r, BaseException) for r in results)
        assert all(isinstance(r, InsufficientStock) for r in results if isinstance(r, BaseException))
        await asyncio.sleep(0.06)
    assert got == 20
    assert await stock_of(db, pid) == {"on_hand": 20, "available": 0, "reserved": 20, "sold": 0}
    await service.shutdown(1)
