"""The staff operations page over real HTTP (aiohttp test server): a staff member signs in
through the form, sees queues, outbox, expiry, scheduler and a dead letter with its whole
traceback, and re-drives it with the page's form; customers and forged forms cannot."""

from __future__ import annotations

import asyncio
import re

from aiohttp.test_utils import TestClient, TestServer

from engine import outbox
from engine.identity import cli_support
from tests.integration.workers.conftest import eventually
from web.app import create_app
from workers.deadletters import list_dead_letters
from workers.jobs import PURGE_IDEMPOTENCY_KEYS
from workers.operations import queue_stats


async def test_staff_see_the_jobs_and_retry_a_dead_letter(assembly, worker, worker_settings, tenant):
    await cli_support.create_user(worker_settings, email="ops@example.com", password="ops-password-1",
                                  role="staff", tenant_slug=tenant.slug)
    await cli_support.create_user(worker_settings, email="cust@example.com", password="cust-password-1",
                                  role="customer", tenant_slug=tenant.slug)
    assembly.actors[PURGE_IDEMPOTENCY_KEYS].send("unexpected")

    async def dead():
        return (await queue_stats(worker_settings))["dead_letters.total"] == 1

    await eventually(dead)
    [letter] = await asyncio.to_thread(list_dead_letters, worker_settings)
    async with TestClient(TestServer(create_app(worker_settings))) as c:
        h = {"X-Tenant": tenant.slug}
        r = await c.get("/ops", headers=h)
        assert r.status == 401 and "Sign in" in await r.text()
        r = await c.post("/ops/login", data={"email": "cust@example.com", "password": "cust-password-1"}, headers=h,
                         allow_redirects=False)
        assert r.status == 403 and "commerce_ops" not in r.cookies
        r = await c.post("/ops/login", data={"email": "ops@example.com", "password": "ops-password-1"}, headers=h,
                         allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/ops"
        cookie = r.cookies["commerce_ops"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/ops"

        page = await (await c.get("/ops", headers=h)).text()
        for section in ('id=queues', 'id=outbox', 'id=expiry', 'id=scheduler', 'id=dead-letters'):
            assert section in page
        assert letter["message_id"] in page and "TypeError" in page and "Traceback" in page
        csrf = re.search(r"name=csrf value=(\w+)", page).group(1)

        r = await c.post("/ops/dead-letters/retry", data={"message_id": letter["message_id"], "csrf": "forged"},
                         headers=h, allow_redirects=False)
        assert r.status == 403 and (await queue_stats(worker_settings))["dead_letters.total"] == 1
        r = await c.post("/ops/dead-letters/retry", data={"message_id": letter["message_id"], "csrf": csrf},
                         headers=h, allow_redirects=False)
        assert r.status == 303 and "re-enqueued" in r.headers["Location"]

    async def ran_again():   # it ran again, failed again and is back among the dead
        letters = await asyncio.to_thread(list_dead_letters, worker_settings, message_id=letter["message_id"])
        return bool(letters)

    await eventually(ran_again)
