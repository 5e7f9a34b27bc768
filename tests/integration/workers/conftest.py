"""A real Dramatiq worker (threads, Redis broker, own namespace) for worker tests."""

from __future__ import annotations

import asyncio
import secrets
from typing import AsyncIterator

import dramatiq
import pytest
import redis

from engine.db import Database
from workers.assembly import Assembly, assemble
from workers.broker import BrokerTuning

# Short timings so a killed worker's job comes back within seconds in tests.
FAST = BrokerTuning(heartbeat_timeout=2.0, requeue_interval=0.5, dead_message_ttl=3600.0)


@pytest.fixture
def worker_settings(base_settings):
    return base_settings.with_(redis_prefix=f"wt{secrets.token_hex(4)}", outbox_poll_seconds=0.05)


@pytest.fixture
def background_loops() -> bool:
    """Whether the assembled worker runs the outbox relay and scheduler itself."""
    return False


@pytest.fixture
def assembly(worker_settings, background_loops) -> Assembly:
    asm = assemble(worker_settings, tuning=FAST, background=background_loops)
    yield asm
    r = redis.Redis.from_url(worker_settings.redis_url)
    keys = list(r.scan_iter(f"{worker_settings.redis_prefix}:*"))
    if keys:
        r.delete(*keys)
    r.close()


@pytest.fixture
async def worker(assembly) -> AsyncIterator[dramatiq.Worker]:
    w = dramatiq.Worker(assembly.broker, worker_threads=2, worker_timeout=100)
    w.start()
    yield w
    await asyncio.to_thread(w.stop, 10_000)


@pytest.fixture
async def database(worker_settings) -> AsyncIterator[Database]:
    db = Database(worker_settings)
    await db.open()
    yield db
    await db.close()


async def eventually(check, timeout: float = 15.0, interval: float = 0.05):
    """Poll the async `check` until it returns a truthy value; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await check()
        if got:
            return got
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
