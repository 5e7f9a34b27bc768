"""Group commit of orders (engine.order_writer, place_orders of migration 0013): checkouts whose
reservations come back together are written by one call; one order's failed check writes
nothing for it and gives its units back, and the others are written."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from engine import cart_store
from engine import order_writer
from engine import stock as engine_stock
from engine.checkout import OrderRequest, checkout
from engine.domain.errors import Conflict, InvalidCoupon
from engine.idempotency import KeyTaken, ResponseKey, request_hash
from engine.stock import StockService
from tests.integration.conftest_cart import make_coupon
from tests.integration.conftest_orders import make_buyer, make_product, make_shipping_method, stock_of


class _Gathered(StockService):
    """Holds every checkout after its reservation until `size` of them have reserved, then
    lets them all write at once (what a product actor's batch does in a flash sale); `hook`
    runs once, before they go on."""

    size = 0
    hook = None

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._waiting = 0
        self._go = asyncio.Event()

    async def reserve_all(self, lines):  # type: ignore[no-untyped-def]
        reservation = await super().reserve_all(lines)
        self._waiting += 1
        if self._waiting == self.size:
            if self.hook is not None:
                await self.hook()
            self._go.set()
        await self._go.wait()
        return reservation


@pytest.fixture
async def stock(database, base_settings):
    s = _Gathered(database, base_settings.with_(order_writers=1))   # one lane: the whole group in one call
    yield s
    await s.shutdown(1)


@pytest.fixture
def groups(monkeypatch):
    """The size of every call of the order statement (a spy, the statement still runs)."""
    sizes: list[int] = []
    real = order_writer.write_orders

    async def spy(conn, records):  # type: ignore[no-untyped-def]
        sizes.append(len(records))
        return await real(conn, records)

    monkeypatch.setattr(order_writer, "write_orders", spy)
    monkeypatch.setattr(engine_stock, "write_orders", spy)
    return sizes


async def _buyers(tenant, db, pid, n):
    method = await make_shipping_method(db, tenant.id)
    buyers = [await make_buyer(tenant, db, [(pid, 2)]) for _ in range(n)]
    return buyers, [OrderRequest(shipping_address_id=b.address_id, shipping_method_id=method, payment_method="CARD")
                    for b in buyers]


async def _all_check_out(database, stock, settings, tenant, buyers, requests):
    now = dt.datetime.now(dt.timezone.utc)
    return await asyncio.gather(*(
        checkout(database, stock, settings, tenant_id=tenant.id, user_id=b.user.id, request=r,
                 actor=f"user:{b.user.id}", now=now) for b, r in zip(buyers, requests)), return_exceptions=True)


async def test_checkouts_reserved_together_are_written_in_one_call(tenant, db, database, stock, base_settings, groups):
    pid = await make_product(db, tenant.id, price="100", stock=20)
    buyers, requests = await _buyers(tenant, db, pid, 5)
    stock.size = 5
    results = await _all_check_out(database, stock, base_settings, tenant, buyers, requests)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert len({r.order_number for r in results}) == 5
    assert groups == [5]
    assert await db.fetchval("SELECT count(*) FROM orders WHERE tenant_id = $1", tenant.id) == 5
    assert await db.fetchval("SELECT count(*) FROM order_status_history h JOIN orders o ON o.id = h.order_id"
                             " WHERE o.tenant_id = $1", tenant.id) == 5
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE tenant_id = $1", tenant.id) == 5
    assert await db.fetchval("SELECT count(*) FROM stock_holds WHERE tenant_id = $1", tenant.id) == 0
    assert await stock_of(db, pid) == {"on_hand": 20, "available": 10, "reserved": 10, "sold": 0}


async def test_a_changed_cart_in_the_group_fails_alone_and_gives_its_units_back(tenant, db, database, stock,
                                                                               base_settings, groups):
    pid = await make_product(db, tenant.id, price="100", stock=20)
    buyers, requests = await _buyers(tenant, db, pid, 3)
    victim = buyers[1]
    line = await db.fetchval("SELECT ci.id FROM cart_items ci JOIN carts c ON c.id = ci.cart_id WHERE c.user_id = $1",
                             victim.user.id)
    stock.size = 3
    stock.hook = lambda: cart_store.update_item(database, tenant.id, victim.user.id, line, quantity=3,
                                                max_item_quantity=base_settings.max_item_quantity)
    results = await _all_check_out(database, stock, base_settings, tenant, buyers, requests)
    assert isinstance(results[1], Conflict)
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException)
    assert groups == [3]
    assert await db.fetchval("SELECT count(*) FROM orders WHERE tenant_id = $1", tenant.id) == 2
    assert await db.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", victim.user.id) == 0
    assert await stock_of(db, pid) == {"on_hand": 20, "available": 16, "reserved": 4, "sold": 0}
    assert await db.fetchval("SELECT count(*) FROM stock_holds WHERE tenant_id = $1", tenant.id) == 0


async def test_a_coupon_used_up_inside_the_group_fails_only_the_order_past_its_limit(tenant, db, database, stock,
                                                                                    base_settings, groups):
    pid = await make_product(db, tenant.id, price="100", stock=20)
    buyers, requests = await _buyers(tenant, db, pid, 3)
    coupon = await make_coupon(db, tenant.id, "TWICE", usage_limit=2)
    for b in buyers:
        await cart_store.apply_coupon(database, tenant.id, b.user.id, "TWICE", now=dt.datetime.now(dt.timezone.utc))
    stock.size = 3
    results = await _all_check_out(database, stock, base_settings, tenant, buyers, requests)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], InvalidCoupon), results
    assert groups == [3]                      # counted within the one call: the third sees the first two
    assert await db.fetchval("SELECT used_count FROM coupons WHERE id = $1", coupon) == 2
    assert await db.fetchval("SELECT count(*) FROM coupon_redemptions WHERE coupon_id = $1", coupon) == 2
    assert await db.fetchval("SELECT count(*) FROM orders WHERE tenant_id = $1", tenant.id) == 2
    assert await stock_of(db, pid) == {"on_hand": 20, "available": 16, "reserved": 4, "sold": 0}


async def test_lanes_split_a_group_but_every_order_is_written(tenant, db, database, base_settings, groups):
    service = _Gathered(database, base_settings.with_(order_writers=2))
    pid = await make_product(db, tenant.id, price="100", stock=20)
    buyers, requests = await _buyers(tenant, db, pid, 6)
    service.size = 6
    results = await _all_check_out(database, service, base_settings, tenant, buyers, requests)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sorted(groups) == [3, 3]
    assert await db.fetchval("SELECT count(*) FROM orders WHERE tenant_id = $1", tenant.id) == 6
    await service.shutdown(1)


async def test_single_mode_writes_each_order_alone(tenant, db, database, base_settings, groups):
    service = StockService(database, base_settings.with_(actor_mode="single"))
    pid = await make_product(db, tenant.id, price="100", stock=20)
    buyers, requests = await _buyers(tenant, db, pid, 3)
    results = await _all_check_out(database, service, base_settings, tenant, buyers, requests)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert groups == [1, 1, 1]  # no writer actor: the order statement is called directly, one order each
    assert await db.fetchval("SELECT count(*) FROM orders WHERE tenant_id = $1", tenant.id) == 3
    await service.shutdown(1)


def _key(tenant, buyer, name: str) -> ResponseKey:
    return ResponseKey(tenant.id, f"user:{buyer.user.id}", name, 201, request_hash(name), ttl=3600.0, lease=60.0)


async def _keyed_check_out(database, stock, settings, tenant, buyers, requests, keys):
    now = dt.datetime.now(dt.timezone.utc)
    return await asyncio.gather(*(
        checkout(database, stock, settings, tenant_id=tenant.id, user_id=b.user.id, request=r,
                 actor=f"user:{b.user.id}", now=now, respond=k) for b, r, k in zip(buyers, requests, keys)),
        return_exceptions=True)


async def test_a_key_held_by_another_process_fails_its_order_alone(tenant, db, database, stock, base_settings, groups):
    """The order statement claims each order's Idempotency-Key itself (issue 14): a key another
    process holds (its row already there) fails that order alone, writes nothing of it and gives
    its units back; the others are written, each with its answer stored as a record."""
    pid = await make_product(db, tenant.id, price="100", stock=20)
    buyers, requests = await _buyers(tenant, db, pid, 3)
    keys = [_key(tenant, b, f"group-key-{i}") for i, b in enumerate(buyers)]
    held = keys[1]

    async def other_process_claims():  # between the reservation and the order statement
        await db.execute("INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, expires_at)"
                         " VALUES ($1, $2, $3, $4, now() + interval '1 hour')",
                         held.tenant_id, held.scope, held.key, held.digest)

    stock.size = 3
    stock.hook = other_process_claims
    results = await _keyed_check_out(database, stock, base_settings, tenant, buyers, requests, keys)
    assert isinstance(results[1], KeyTaken), results
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException), results
    assert groups == [3]
    assert await db.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", buyers[1].user.id) == 0
    assert await stock_of(db, pid) == {"on_hand": 20, "available": 16, "reserved": 4, "sold": 0}
    assert await db.fetchval("SELECT count(*) FROM stock_holds WHERE tenant_id = $1", tenant.id) == 0
    rows = {r["key"]: r for r in await db.fetch(
        "SELECT key, response_status, response_record->>'order_number' AS number FROM idempotency_keys"
        " WHERE tenant_id = $1", tenant.id)}
    assert rows[held.key]["response_status"] is None          # the other process's row, untouched
    for i in (0, 2):
        assert (rows[keys[i].key]["response_status"], rows[keys[i].key]["number"]) == (201, results[i].order_number)


async def test_an_order_that_fails_a_check_gives_its_claimed_key_up(tenant, db, database, stock, base_settings,
                                                                    groups):
    """The key claimed by the statement goes back when that order's own check fails (here its cart
    changed), in the same call: a corrected retry with the key runs again."""
    pid = await make_product(db, tenant.id, price="100", stock=20)
    buyers, requests = await _buyers(tenant, db, pid, 2)
    keys = [_key(tenant, b, f"fails-{i}") for i, b in enumerate(buyers)]
    victim = buyers[0]
    line = await db.fetchval("SELECT ci.id FROM cart_items ci JOIN carts c ON c.id = ci.cart_id WHERE c.user_id = $1",
                             victim.user.id)
    stock.size = 2
    stock.hook = lambda: cart_store.update_item(database, tenant.id, victim.user.id, line, quantity=3,
                                                max_item_quantity=base_settings.max_item_quantity)
    results = await _keyed_check_out(database, stock, base_settings, tenant, buyers, requests, keys)
    assert isinstance(results[0], Conflict) and not isinstance(results[0], KeyTaken), results
    assert not isinstance(results[1], BaseException), results
    assert groups == [2]
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", keys[0].key) == 0
    assert await db.fetchval("SELECT response_status FROM idempotency_keys WHERE key = $1", keys[1].key) == 201
