"""Webhooks through the real pipeline: trigger -> outbox -> relay -> Dramatiq worker -> receiver."""

from __future__ import annotations

import json
import secrets

import pytest

from engine.webhooks import subscriptions
from tests.integration.conftest_cart import make_product
from tests.integration.conftest_webhooks import Receiver
from tests.integration.workers.conftest import eventually
from workers import jobs
from workers.relay import OutboxRelay


@pytest.fixture
def worker_settings(base_settings):
    return base_settings.with_(redis_prefix=f"wt{secrets.token_hex(4)}", outbox_poll_seconds=0.05,
                               webhook_backoff_base_seconds=0.05, webhook_backoff_max_seconds=0.2,
                               webhook_timeout_seconds=2.0)


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.stop()


async def test_a_product_edit_reaches_the_receiver_through_the_worker_after_three_500s(
        tenant, db, database, assembly, worker, receiver):
    receiver.statuses = [500, 500, 500]
    sub, _ = await subscriptions.create(database, tenant.id, url=receiver.url, types=["product.updated"],
                                        description=None, low_stock_threshold=5, created_by="test")
    pid = await make_product(db, tenant.id, price="10", stock=5)
    await db.execute("UPDATE products SET name = 'Renamed' WHERE id = $1", pid)
    relay = OutboxRelay(database, jobs.sender(assembly.actors), assembly.actors.keys())

    async def delivered():
        await relay.relay_once()   # the retries come back through the outbox, delayed
        return await db.fetchval("SELECT status = 'DELIVERED' FROM webhook_deliveries WHERE subscription_id = $1",
                                 sub.id)

    await eventually(delivered, timeout=30)
    assert len(receiver.got) == 4 and len({g.headers["Webhook-Id"] for g in receiver.got}) == 1
    assert json.loads(receiver.got[-1].body)["data"]["object"]["name"] == "Renamed"
    assert await db.fetchval("SELECT attempts FROM webhook_deliveries WHERE subscription_id = $1", sub.id) == 4
