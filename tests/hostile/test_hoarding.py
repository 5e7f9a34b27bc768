"""Stock hoarding: a customer holds at most MAX_UNPAID_ORDERS unpaid orders, checked atomically across processes.

Before issue 13 one customer could place unpaid BANK_TRANSFER orders for every unit of a
product and hold them for the whole payment window.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from engine.checkout import ItemRequest, OrderRequest, place_order
from engine.domain.errors import TooManyUnpaidOrders
from engine.stock import StockService
from tests.conftest import Api
from tests.integration.conftest_orders import fill_cart, make_buyer, make_product, make_shipping_method, stock_of


def _order_body(buyer, method, product, quantity=1, **extra):
    return {"items": [{"productId": str(product), "quantity": quantity}], "shippingAddressId": str(buyer.address_id),
            "shippingMethodId": str(method), "paymentMethod": "BANK_TRANSFER", **extra}


async def _unpaid(db, user_id) -> int:
    return await db.fetchval("SELECT count(*) FROM orders WHERE user_id = $1 AND status = 'PENDING_PAYMENT'", user_id)


async def test_checkout_and_post_orders_share_the_unpaid_limit(make_client, tenant, db) -> None:
    api = Api(await make_client(max_unpaid_orders=2), tenant.slug)
    product = await make_product(db, tenant.id, price="100", stock=50)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(product, 1)])
    first = await api.post("/api/v1/cart/checkout", as_=buyer.user, json=buyer.body(method, paymentMethod="BANK_TRANSFER"))
    assert first.status == 201, first.body
    second = await api.post("/api/v1/orders", as_=buyer.user, json=_order_body(buyer, method, product, 3))
    assert second.status == 201, second.body
    reserved = (await stock_of(db, product))["reserved"]

    third = await api.post("/api/v1/orders", as_=buyer.user, json=_order_body(buyer, method, product, 5))
    assert third.status == 409 and third.error["code"] == "TOO_MANY_UNPAID_ORDERS", third.body
    assert third.error["limit"] == 2
    await fill_cart(db, tenant.id, buyer.user.id, [(product, 1)])
    fourth = await api.post("/api/v1/cart/checkout", as_=buyer.user, json=buyer.body(method))
    assert fourth.status == 409 and fourth.error["code"] == "TOO_MANY_UNPAID_ORDERS", fourth.body
    # A refused order reserves nothing and leaves the cart as it was.
    assert (await stock_of(db, product))["reserved"] == reserved
    assert await db.fetchval("SELECT count(*) FROM cart_items ci JOIN carts c ON c.id = ci.cart_id"
                             " WHERE c.user_id = $1", buyer.user.id) == 1
    assert await _unpaid(db, buyer.user.id) == 2

    # Paying (or cancelling) one frees its slot for the next order.
    staff = await tenant.user("staff")
    paid = await api.post(f"/api/v1/admin/orders/{first.data['orderId']}/confirm-payment", as_=staff)
    assert paid.status == 200, paid.body
    again = await api.post("/api/v1/cart/checkout", as_=buyer.user, json=buyer.body(method))
    assert again.status == 201, again.body
    assert await _unpaid(db, buyer.user.id) == 2


async def test_staff_and_api_keys_ordering_for_a_customer_are_not_limited(make_client, tenant, db) -> None:
    api = Api(await make_client(max_unpaid_orders=1), tenant.slug)
    product = await make_product(db, tenant.id, price="100", stock=50)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db)
    staff = await tenant.user("staff", permissions=("orders:write",))
    assert (await api.post("/api/v1/orders", as_=buyer.user, json=_order_body(buyer, method, product))).status == 201
    for _ in range(2):
        r = await api.post("/api/v1/orders", as_=staff,
                           json=_order_body(buyer, method, product, customerId=str(buyer.user.id)))
        assert r.status == 201, r.body
    assert (await api.post("/api/v1/orders", as_=buyer.user, json=_order_body(buyer, method, product))).status == 409


@pytest.mark.parametrize("limit", [1, 3])
async def test_concurrent_orders_in_separate_processes_never_exceed_the_limit(database, base_settings, tenant, db,
                                                                              limit) -> None:
    """The web layer's per-user actor serialises one process's orders; here the engine is called
    directly and concurrently (as N API processes would), so only the statement's slot decides."""
    settings = base_settings.with_(max_unpaid_orders=limit)
    product = await make_product(db, tenant.id, price="100", stock=100)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db)
    request = OrderRequest(shipping_address_id=buyer.address_id, shipping_method_id=method,
                           payment_method="BANK_TRANSFER")
    services = [StockService(database, settings) for _ in range(4)]   # one per "process"
    try:
        async def one(i: int):
            return await place_order(database, services[i % 4], settings, tenant_id=tenant.id,
                                     user_id=buyer.user.id, items=[ItemRequest(product, 1)], request=request,
                                     actor=f"user:{buyer.user.id}", now=dt.datetime.now(dt.timezone.utc),
                                     limit_unpaid=True)
        results = await asyncio.gather(*(one(i) for i in range(12)), return_exceptions=True)
    finally:
        for s in services:
            await s.shutdown(1)
    placed = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, TooManyUnpaidOrders)]
    assert len(placed) + len(refused) == 12, [r for r in results if isinstance(r, BaseException)]
    assert 1 <= len(placed) <= limit
    assert await _unpaid(db, buyer.user.id) == len(placed)
    assert (await stock_of(db, product))["reserved"] == len(placed)   # refused orders gave their units back
