"""Checkout's order statement (engine.checkout._PLACE): every check it makes between the
reservation and the write, each failing on purpose after the cart was priced and the stock
reserved. Whichever fails, nothing is written: no order, the cart as it was, the units back.

The hook runs inside `reserve_all`, right after the units are reserved: the moment another
tab, process or the hold reconciler could act before the order statement runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from typing import Any, Awaitable, Callable

import pytest

from engine import cart_store
from engine.checkout import OrderRequest, checkout
from engine.domain.errors import CartEmpty, Conflict, InvalidCoupon
from engine.stock import StockService, reclaim_orphaned_holds
from tests.integration.conftest_cart import make_coupon
from tests.integration.conftest_orders import make_buyer, make_product, make_shipping_method, stock_of

CHECKOUT = "/api/v1/cart/checkout"


class _Interrupted(StockService):
    """A StockService that runs `hook` after reserving, before checkout writes the order."""

    hook: Callable[[], Awaitable[Any]] | None = None

    async def reserve_all(self, lines):  # type: ignore[no-untyped-def]
        reservation = await super().reserve_all(lines)
        if self.hook is not None:
            await self.hook()
        return reservation


@pytest.fixture
async def stock(database, base_settings):
    s = _Interrupted(database, base_settings)
    yield s
    await s.shutdown(1)


async def _arrange(tenant, db, *, quantity: int = 2):
    pid = await make_product(db, tenant.id, price="1000", stock=10)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, quantity)])
    request = OrderRequest(shipping_address_id=buyer.address_id, shipping_method_id=method, payment_method="CARD")
    return pid, buyer, request


async def _check_out(database, stock, settings, tenant, buyer, request):
    return await checkout(database, stock, settings, tenant_id=tenant.id, user_id=buyer.user.id, request=request,
                          actor=f"user:{buyer.user.id}", now=dt.datetime.now(dt.timezone.utc))


async def _nothing_written(db, tenant, buyer, pid, *, cart_quantity: int) -> None:
    assert await db.fetchval("SELECT count(*) FROM orders WHERE tenant_id = $1", tenant.id) == 0
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE tenant_id = $1", tenant.id) == 0
    assert await db.fetchval("SELECT count(*) FROM stock_holds WHERE tenant_id = $1", tenant.id) == 0
    assert await stock_of(db, pid) == {"on_hand": 10, "available": 10, "reserved": 0, "sold": 0}
    assert await db.fetchval("SELECT coalesce(sum(ci.quantity), 0) FROM cart_items ci JOIN carts c ON c.id = ci.cart_id"
                             " WHERE c.user_id = $1", buyer.user.id) == cart_quantity


async def test_cart_changed_after_pricing_is_conflict_and_nothing_is_written(tenant, db, database, stock,
                                                                            base_settings):
    pid, buyer, request = await _arrange(tenant, db)
    line = await db.fetchval("SELECT ci.id FROM cart_items ci JOIN carts c ON c.id = ci.cart_id WHERE c.user_id = $1",
                             buyer.user.id)
    stock.hook = lambda: cart_store.update_item(database, tenant.id, buyer.user.id, line, quantity=3,
                                                max_item_quantity=base_settings.max_item_quantity)
    with pytest.raises(Conflict):
        await _check_out(database, stock, base_settings, tenant, buyer, request)
    await _nothing_written(db, tenant, buyer, pid, cart_quantity=3)

    stock.hook = None  # the buyer reviews the cart and checks out again: the new quantity
    placed = await _check_out(database, stock, base_settings, tenant, buyer, request)
    assert await db.fetchval("SELECT quantity FROM order_items WHERE order_id = $1", placed.order_id) == 3
    assert (await stock_of(db, pid))["reserved"] == 3


async def test_cart_checked_out_elsewhere_meanwhile_is_cart_empty(tenant, db, database, stock, base_settings):
    pid, buyer, request = await _arrange(tenant, db)
    stock.hook = lambda: cart_store.empty_cart(database, tenant.id, buyer.user.id)
    with pytest.raises(CartEmpty):
        await _check_out(database, stock, base_settings, tenant, buyer, request)
    await _nothing_written(db, tenant, buyer, pid, cart_quantity=0)


async def test_holds_reclaimed_meanwhile_is_conflict_and_units_go_back_once(tenant, db, database, stock,
                                                                           base_settings):
    pid, buyer, request = await _arrange(tenant, db)
    stock.hook = lambda: reclaim_orphaned_holds(database, older_than=dt.timedelta(0))
    with pytest.raises(Conflict):
        await _check_out(database, stock, base_settings, tenant, buyer, request)
    await _nothing_written(db, tenant, buyer, pid, cart_quantity=2)


async def test_coupon_used_up_meanwhile_is_invalid_coupon_and_nothing_is_written(tenant, db, database, stock,
                                                                                base_settings):
    pid, buyer, request = await _arrange(tenant, db)
    coupon = await make_coupon(db, tenant.id, "LAST", usage_limit=5)
    await cart_store.apply_coupon(database, tenant.id, buyer.user.id, "LAST", now=dt.datetime.now(dt.timezone.utc))
    stock.hook = lambda: db.execute("UPDATE coupons SET used_count = usage_limit WHERE id = $1", coupon)
    with pytest.raises(InvalidCoupon):
        await _check_out(database, stock, base_settings, tenant, buyer, request)
    await _nothing_written(db, tenant, buyer, pid, cart_quantity=2)
    assert await db.fetchval("SELECT used_count FROM coupons WHERE id = $1", coupon) == 5
    assert await db.fetchval("SELECT count(*) FROM coupon_redemptions WHERE coupon_id = $1", coupon) == 0
    assert await db.fetchval("SELECT count(*) FROM cart_coupons WHERE coupon_id = $1", coupon) == 1


async def test_a_tenants_concurrent_first_orders_all_get_numbers(api, tenant, db):
    """The tenant's order sequence exists from the tenant's creation (migration 0009), so its
    first orders, arriving together, never race to create it."""
    pid = await make_product(db, tenant.id, stock=50)
    method = await make_shipping_method(db, tenant.id)
    buyers = [await make_buyer(tenant, db, [(pid, 1)]) for _ in range(12)]
    answers = await asyncio.gather(*(api.post(CHECKOUT, as_=b.user, json=b.body(method),
                                              headers={"Idempotency-Key": uuid.uuid4().hex}) for b in buyers))
    assert [a.status for a in answers] == [201] * 12, [a.body for a in answers if a.status != 201]
    numbers = {a.data["orderNumber"] for a in answers}
    assert len(numbers) == 12 and all(re.fullmatch(r"ORD-\d{4}-\d{8}", n) for n in numbers)
