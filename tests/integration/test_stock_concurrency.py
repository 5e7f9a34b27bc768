"""The invariants of the issue's "Proof": no oversell under a flash sale (one process, two
processes' worth of actors, and the one-transaction-per-reservation mode), no deadlock for
multi-product carts in opposite orders, one order per cart under hammering, one order per
idempotency key."""

from __future__ import annotations

import asyncio
import uuid


from tests.conftest import Api
from tests.integration.conftest_orders import (make_buyer, make_product,
                                               make_shipping_method, stock_of, summary_shows)

CHECKOUT = "/api/v1/cart/checkout"


async def _flash_sale(apis: list[Api], tenant, db, *, buyers: int, units: int) -> None:
    pid = await make_product(db, tenant.id, price="100", stock=units)
    method = await make_shipping_method(db, tenant.id)
    people = [await make_buyer(tenant, db, [(pid, 1)]) for _ in range(buyers)]
    done = asyncio.Event()
    samples: list[dict[str, int]] = []

    async def sample() -> None:
        while not done.is_set():
            samples.append(await stock_of(db, pid))
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    results = await asyncio.gather(*(
        apis[i % len(apis)].post(CHECKOUT, as_=b.user, json=b.body(method)) for i, b in enumerate(people)))
    done.set()
    await sampler

    statuses = [r.status for r in results]
    assert statuses.count(201) == units, sorted(set(statuses))
    assert all(r.status == 201 or r.error["code"] == "INSUFFICIENT_STOCK" for r in results), \
        {r.status: r.body for r in results if r.status != 201}
    assert await db.fetchval("SELECT count(*) FROM orders WHERE tenant_id = $1", tenant.id) == units
    final = await stock_of(db, pid)
    assert final == {"on_hand": units, "available": 0, "reserved": units, "sold": 0}
    assert samples and all(s["on_hand"] == s["available"] + s["reserved"] + s["sold"] and s["available"] >= 0
                           for s in samples)
    # Reservations reach the product summary through the refresher (engine.stock_summary),
    # within its documented bound: STOCK_SUMMARY_INTERVAL_MS plus one refresh.
    await summary_shows(db, pid, 0)


async def test_200_buyers_for_10_units_buy_exactly_10(api, tenant, db):
    await _flash_sale([api], tenant, db, buyers=200, units=10)


async def test_two_app_instances_share_one_database_and_never_oversell(make_client, tenant, db):
    apis = [Api(await make_client(), tenant.slug), Api(await make_client(), tenant.slug)]
    await _flash_sale(apis, tenant, db, buyers=200, units=10)


async def test_single_mode_never_oversells_either(make_client, tenant, db):
    api = Api(await make_client(actor_mode="single"), tenant.slug)
    await _flash_sale([api], tenant, db, buyers=60, units=10)


async def test_multi_product_carts_in_opposite_orders_do_not_deadlock(make_client, tenant, db):
    apis = [Api(await make_client(), tenant.slug), Api(await make_client(actor_mode="single"), tenant.slug)]
    a = await make_product(db, tenant.id, stock=1000)
    b = await make_product(db, tenant.id, stock=1000)
    method = await make_shipping_method(db, tenant.id)
    people = [await make_buyer(tenant, db, [(a, 1), (b, 2)] if i % 2 else [(b, 2), (a, 1)]) for i in range(40)]
    results = await asyncio.gather(*(apis[i % 2].post(CHECKOUT, as_=p.user, json=p.body(method))
                                     for i, p in enumerate(people)))
    assert [r.status for r in results] == [201] * 40, [r.body for r in results if r.status != 201][:3]
    # Selling them all (several stock rows per transaction, both orders) does not deadlock either.
    staff = await tenant.user("staff")
    paid = await asyncio.gather(*(apis[i % 2].patch(f"/api/v1/orders/{r.data['orderId']}/status", as_=staff,
                                                    json={"status": "PAID"}) for i, r in enumerate(results)))
    assert all(r.status == 200 for r in paid), [r.body for r in paid if r.status != 200][:3]
    assert await stock_of(db, a) == {"on_hand": 1000, "available": 960, "reserved": 0, "sold": 40}
    assert await stock_of(db, b) == {"on_hand": 1000, "available": 920, "reserved": 0, "sold": 80}


async def test_one_user_hammering_checkout_from_two_processes_gets_one_order(make_client, tenant, db):
    apis = [Api(await make_client(), tenant.slug), Api(await make_client(), tenant.slug)]
    pid = await make_product(db, tenant.id, stock=100)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 2)])
    results = await asyncio.gather(*(apis[i % 2].post(CHECKOUT, as_=buyer.user, json=buyer.body(method))
                                     for i in range(20)))
    assert [r.status for r in results].count(201) == 1
    assert all(r.status == 201 or r.error["code"] in ("CART_EMPTY", "CONFLICT") for r in results)
    assert await db.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", buyer.user.id) == 1
    assert await stock_of(db, pid) == {"on_hand": 100, "available": 98, "reserved": 2, "sold": 0}


async def test_twenty_concurrent_retries_with_one_key_make_one_order(make_client, tenant, db):
    apis = [Api(await make_client(), tenant.slug), Api(await make_client(), tenant.slug)]
    pid = await make_product(db, tenant.id, stock=100)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    key = {"Idempotency-Key": str(uuid.uuid4())}
    results = await asyncio.gather(*(apis[i % 2].post(CHECKOUT, as_=buyer.user, json=buyer.body(method), headers=key)
                                     for i in range(20)))
    assert {r.status for r in results} == {201}, [r.body for r in results if r.status != 201][:3]
    assert len({r.raw for r in results}) == 1
    assert await db.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", buyer.user.id) == 1


async def test_actor_metrics_are_exported(api, tenant, db):
    pid = await make_product(db, tenant.id, stock=5)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    assert (await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method))).status == 201
    async with api.client.get("/metrics") as r:
        text = await r.text()
    for name in ("actors_live", "actor_mailbox_depth", "actor_batch_size_bucket", "actor_evictions", "actor_crashes"):
        assert name in text, name
    assert 'actors_live{kind="product"} 1.0' in text and 'actors_live{kind="user"}' in text
