"""Per-user actors: one user's commands run one at a time, in order; users run in parallel;
a failing command fails only its caller; shutdown drains."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from engine.domain.errors import ActorUnavailable, CartItemNotFound, InsufficientStock, MaxQuantityExceeded
from engine.cart_store import check_quantity
from engine.actors.user import UserActors


def actors(**kw) -> UserActors:
    return UserActors(mailbox_size=kw.get("mailbox_size", 100), idle_seconds=kw.get("idle_seconds", 5),
                      ask_timeout=kw.get("ask_timeout", 5))


async def test_one_users_commands_never_overlap_and_keep_their_order():
    ua, user = actors(), uuid.uuid4()
    running, log = 0, []

    def command(i):
        async def run():
            nonlocal running
            running += 1
            assert running == 1, "two commands of one user overlapped"
            log.append(("start", i))
            await asyncio.sleep(0.001)
            log.append(("end", i))
            running -= 1
            return i
        return run

    results = await asyncio.gather(*(ua.run(user, command(i)) for i in range(20)))
    assert results == list(range(20))
    assert log == [(kind, i) for i in range(20) for kind in ("start", "end")]
    await ua.shutdown(1)


async def test_different_users_run_in_parallel():
    ua = actors()
    gate = asyncio.Event()
    started = 0

    async def wait_for_both():
        nonlocal started
        started += 1
        if started == 2:
            gate.set()
        await asyncio.wait_for(gate.wait(), 1)  # deadlocks if users were serialised together
        return True

    assert await asyncio.gather(ua.run(uuid.uuid4(), wait_for_both), ua.run(uuid.uuid4(), wait_for_both)) == [True, True]
    await ua.shutdown(1)


async def test_errors_go_to_their_caller_and_the_actor_lives_on():
    ua, user = actors(), uuid.uuid4()

    async def domain():
        raise CartItemNotFound()

    async def bug():
        raise KeyError("boom")

    async def fine():
        return "ok"

    with pytest.raises(CartItemNotFound):
        await ua.run(user, domain)
    with pytest.raises(KeyError):  # a bug stays a bug (500), not a 503
        await ua.run(user, bug)
    assert await ua.run(user, fine) == "ok"
    assert ua.stats().crashed == 0 and len(ua) == 1
    await ua.shutdown(1)


async def test_full_mailbox_answers_at_once():
    ua, user = actors(mailbox_size=1), uuid.uuid4()
    release = asyncio.Event()

    async def slow():
        await release.wait()

    first = asyncio.create_task(ua.run(user, slow))
    await asyncio.sleep(0)  # the actor takes `slow`; the mailbox is empty again
    await asyncio.sleep(0)
    second = asyncio.create_task(ua.run(user, slow))  # fills the one slot
    await asyncio.sleep(0)
    with pytest.raises(ActorUnavailable):
        await ua.run(user, slow)
    release.set()
    await asyncio.gather(first, second)
    await ua.shutdown(1)


async def test_shutdown_finishes_queued_commands_then_refuses():
    ua, user = actors(), uuid.uuid4()
    done = []

    async def work():
        await asyncio.sleep(0.001)
        done.append(1)

    tasks = [asyncio.create_task(ua.run(user, work)) for _ in range(5)]
    await asyncio.sleep(0)
    await ua.shutdown(2)
    await asyncio.gather(*tasks)
    assert len(done) == 5
    with pytest.raises(ActorUnavailable):
        await ua.run(user, work)


def test_quantity_rules_in_order():
    with pytest.raises(MaxQuantityExceeded) as e:
        check_quantity(100, max_item_quantity=99, max_per_order=None, track_inventory=True, available=1000)
    assert e.value.extra == {"maxQuantity": 99}
    with pytest.raises(MaxQuantityExceeded) as e:  # the tighter limit wins, and is checked before stock
        check_quantity(6, max_item_quantity=99, max_per_order=5, track_inventory=True, available=0)
    assert e.value.extra == {"maxQuantity": 5}
    with pytest.raises(InsufficientStock) as e:
        check_quantity(4, max_item_quantity=99, max_per_order=None, track_inventory=True, available=3)
    assert e.value.extra == {"available": 3}
    with pytest.raises(InsufficientStock) as e:
        check_quantity(1, max_item_quantity=99, max_per_order=None, track_inventory=True, available=None)
    assert e.value.extra == {"available": 0}
    check_quantity(3, max_item_quantity=99, max_per_order=None, track_inventory=True, available=3)
    check_quantity(99, max_item_quantity=99, max_per_order=None, track_inventory=False, available=0)
