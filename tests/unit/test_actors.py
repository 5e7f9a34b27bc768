"""The actor runtime's lifecycle: answers, errors, crashes, limits, eviction, batching, shutdown."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
import structlog.testing

from engine.actors import Actor, ActorRegistry
from engine.domain.errors import ActorUnavailable, InsufficientStock


class Ledger(Actor):
    """Appends messages and answers with what it has seen. 'short' raises a DomainError,
    'boom' crashes, ('wait', event) blocks until the event is set."""

    __slots__ = ("seen", "started")

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.started = asyncio.Event()

    async def handle(self, message: Any) -> Any:
        self.started.set()
        if isinstance(message, tuple) and message[0] == "wait":
            await message[1].wait()
            message = message[2] if len(message) > 2 else "waited"
        if message == "boom":
            raise RuntimeError("boom")
        if message == "short":
            raise InsufficientStock(extra={"available": 0})
        self.seen.append(message)
        return list(self.seen)


class Reservations(Actor):
    """Batches: records each batch, refuses odd quantities per message, crashes on 'boom'."""

    __slots__ = ("batches", "gate")

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.gate: asyncio.Event | None = None

    async def handle_batch(self, messages: list[Any]) -> list[Any]:
        self.batches.append(list(messages))
        if self.gate is not None:
            await self.gate.wait()
        if "boom" in messages:
            raise RuntimeError("batch boom")
        return [InsufficientStock() if m % 2 else m * 10 for m in messages]


def registry(factory: Any = lambda key: Ledger(), **overrides: Any) -> ActorRegistry:
    config = dict(mailbox_size=100, idle_seconds=5.0, ask_timeout=1.0, max_batch=256)
    config.update(overrides)
    return ActorRegistry(factory, **config)


async def until(condition: Any, limit: float = 1.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


@pytest.fixture
async def loop_errors() -> Any:
    """Whatever the event loop would have reported (e.g. InvalidStateError in a callback)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield errors
    loop.set_exception_handler(previous)


async def test_asks_and_tells_are_handled_in_order():
    reg = registry()
    reg.tell("p1", "a")
    reg.tell("p1", "b")
    assert await reg.ask("p1", "c") == ["a", "b", "c"]
    assert await reg.ask("p2", "x") == ["x"]  # another key, another actor
    await reg.shutdown(1)


async def test_domain_error_reaches_the_caller_and_the_actor_lives_on():
    reg = registry()
    actor = reg.get("p1")
    with pytest.raises(InsufficientStock) as raised:
        await reg.ask("p1", "short")
    assert raised.value.extra == {"available": 0}
    assert await reg.ask("p1", "next") == ["next"]
    assert reg.get("p1") is actor and reg.stats().crashed == 0
    await reg.shutdown(1)


async def test_crash_fails_every_pending_ask_and_the_next_message_respawns():
    crashes: list[tuple[Any, BaseException]] = []
    reg = registry(on_crash=lambda key, exc: crashes.append((key, exc)))
    first = reg.get("p1")
    gate = asyncio.Event()
    crashing = asyncio.ensure_future(reg.ask("p1", ("wait", gate, "boom")))
    await first.started.wait()
    queued = [asyncio.ensure_future(reg.ask("p1", n)) for n in range(3)]
    reg.tell("p1", "told")
    gate.set()
    results = await asyncio.gather(crashing, *queued, return_exceptions=True)
    assert all(isinstance(r, ActorUnavailable) for r in results)
    assert all(isinstance(r.__cause__, RuntimeError) for r in results)
    assert all(r.extra["retry_after"] == 1 and r.code == "SERVICE_UNAVAILABLE" for r in results)
    assert "crashed" in results[0].message
    assert [(key, str(exc)) for key, exc in crashes] == [("p1", "boom")]
    assert "p1" not in reg and reg.stats().crashed == 1
    assert await reg.ask("p1", "fresh") == ["fresh"]  # a new actor, with fresh state
    assert reg.get("p1") is not first and reg.stats().spawned == 2
    with pytest.raises(ActorUnavailable):  # the old actor refuses messages
        first.tell("late")
    await reg.shutdown(1)


async def test_a_crash_is_logged_with_its_traceback_by_default():
    reg = registry()  # no on_crash given: the registry's own reporter logs
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(ActorUnavailable):
            await reg.ask("p7", "boom")
        await until(lambda: "p7" not in reg)
    crashed = [e for e in logs if e["event"] == "actor_crashed"]
    assert len(crashed) == 1 and crashed[0]["key"] == "p7" and crashed[0]["log_level"] == "error"
    exc = crashed[0]["exc_info"]
    assert isinstance(exc, RuntimeError) and exc.__traceback__ is not None
    await reg.shutdown(1)


async def test_full_mailbox_answers_at_once():
    reg = registry(mailbox_size=2)
    gate = asyncio.Event()
    busy = asyncio.ensure_future(reg.ask("p1", ("wait", gate)))
    await reg.get("p1").started.wait()  # the actor holds one message, its mailbox is empty
    queued = [asyncio.ensure_future(reg.ask("p1", n)) for n in range(2)]
    await asyncio.sleep(0)
    started = time.monotonic()
    with pytest.raises(ActorUnavailable) as raised:
        await reg.ask("p1", "one too many")
    assert time.monotonic() - started < 0.05
    assert raised.value.extra == {"retry_after": 1}
    with pytest.raises(ActorUnavailable):
        reg.tell("p1", "one too many")
    gate.set()
    assert await busy == ["waited"]
    assert [await q for q in queued] == [["waited", 0], ["waited", 0, 1]]
    await reg.shutdown(1)


async def test_ask_times_out_and_the_late_reply_is_dropped(loop_errors):
    reg = registry(ask_timeout=0.05)
    gate = asyncio.Event()
    with pytest.raises(ActorUnavailable) as raised:
        await reg.ask("p1", ("wait", gate))  # the registry's default timeout
    assert isinstance(raised.value.__cause__, TimeoutError)
    with pytest.raises(ActorUnavailable):
        await reg.ask("p1", "queued behind the slow one", timeout=0.01)
    gate.set()  # the handler now answers a caller who has left
    assert await reg.ask("p1", "after") == ["waited", "after"]
    # The caller of "queued behind..." gave up before its turn: the actor skipped it.
    assert reg.stats().crashed == 0 and loop_errors == []
    await reg.shutdown(1)


async def test_cancelled_caller_does_not_break_the_actor(loop_errors):
    reg = registry()
    gate = asyncio.Event()
    caller = asyncio.ensure_future(reg.ask("p1", ("wait", gate)))
    await reg.get("p1").started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    gate.set()
    assert await reg.ask("p1", "next") == ["waited", "next"]
    assert loop_errors == []
    await reg.shutdown(1)


async def test_idle_actor_evicts_itself_and_leaves_nothing_behind():
    reg = registry(idle_seconds=0.05)
    assert await reg.ask("p1", "a") == ["a"]
    task = reg.get("p1")._task
    await asyncio.wait_for(task, 1)
    assert "p1" not in reg and len(reg) == 0
    stats = reg.stats()
    assert (stats.live_actors, stats.spawned, stats.evicted) == (0, 1, 1)
    assert await reg.ask("p1", "b") == ["b"]  # state was dropped with the actor
    await reg.shutdown(1)


@pytest.mark.parametrize("first", ["message", "idle timer"])
async def test_message_arriving_as_the_idle_timer_fires_is_answered_by_that_actor(first):
    idle = 0.05
    reg = registry(idle_seconds=idle)
    await reg.ask("p1", "a")
    loop = asyncio.get_running_loop()
    told = loop.create_future()
    if first == "idle timer":
        # Due just after the actor's idle timer: both fire in the same turn of the loop, the
        # timer first, so the message lands while the actor's cancelled wait unwinds.
        loop.call_later(idle + 0.001, lambda: (reg.tell("p1", "b"), told.set_result(None)))
    # Block the loop past the idle deadline so the timer and the message are due in one turn.
    time.sleep(idle + 0.02)
    if first == "message":
        reg.tell("p1", "b")
        told.set_result(None)
    await told
    assert await reg.ask("p1", "c") == ["a", "b", "c"]
    assert (reg.stats().spawned, reg.stats().evicted) == (1, 0)
    await reg.shutdown(1)


async def test_hammering_around_the_idle_boundary_loses_no_message():
    idle = 0.02
    reg = registry(idle_seconds=idle)
    rng = random.Random(7)

    async def client(key: int) -> list[Any]:
        answers = []
        for n in range(25):
            await asyncio.sleep(idle + rng.uniform(-0.003, 0.003))
            reg.tell(key, ("told", n))
            answers.append(await reg.ask(key, n))
        return answers

    results = await asyncio.gather(*(client(k) for k in range(20)))
    for answers in results:
        for n, answer in enumerate(answers):
            # Each answer ends with this round's tell and ask, whichever actor handled them.
            assert answer[-2:] == [("told", n), n]
    stats = reg.stats()
    assert stats.messages == 20 * 25 * 2
    assert stats.evicted > 0 and stats.spawned == stats.evicted + stats.live_actors
    await reg.shutdown(1)


async def test_batch_drains_what_is_waiting_and_answers_each_caller():
    reg = registry(factory=lambda key: Reservations(), max_batch=5)
    actor = reg.get("p1")
    actor.gate = asyncio.Event()
    first = asyncio.ensure_future(reg.ask("p1", 0))
    await until(lambda: actor.batches)
    rest = [asyncio.ensure_future(reg.ask("p1", n)) for n in range(1, 8)]
    await asyncio.sleep(0)
    actor.gate.set()
    answers = await asyncio.gather(first, *rest, return_exceptions=True)
    assert actor.batches == [[0], [1, 2, 3, 4, 5], [6, 7]]  # drained up to max_batch
    assert answers[0::2] == [0, 20, 40, 60]
    assert all(isinstance(a, InsufficientStock) for a in answers[1::2])
    assert reg.get("p1") is actor  # per-message DomainErrors are normal answers
    stats = reg.stats()
    assert (stats.batches, stats.messages) == (3, 8)
    assert dict(stats.batch_sizes)[1] == 1 and dict(stats.batch_sizes)[2] == 1 and dict(stats.batch_sizes)[8] == 1
    await reg.shutdown(1)


async def test_batch_of_n_minus_one_while_the_actor_is_busy():
    reg = registry(factory=lambda key: Reservations())
    actor = reg.get("p1")
    actor.gate = asyncio.Event()
    first = asyncio.ensure_future(reg.ask("p1", 0))
    await until(lambda: actor.batches)
    rest = [asyncio.ensure_future(reg.ask("p1", 2 * n)) for n in range(1, 50)]
    await asyncio.sleep(0)
    actor.gate.set()
    assert await asyncio.gather(first, *rest) == [20 * n for n in range(50)]
    assert [len(b) for b in actor.batches] == [1, 49]
    await reg.shutdown(1)


async def test_exception_from_handle_batch_crashes_the_whole_batch():
    reg = registry(factory=lambda key: Reservations())
    actor = reg.get("p1")
    actor.gate = asyncio.Event()
    first = asyncio.ensure_future(reg.ask("p1", 0))
    await until(lambda: actor.batches)
    batch = [asyncio.ensure_future(reg.ask("p1", m)) for m in (2, "boom", 4)]
    await asyncio.sleep(0)
    actor.gate.set()
    assert await first == 0
    results = await asyncio.gather(*batch, return_exceptions=True)
    assert all(isinstance(r, ActorUnavailable) and str(r.__cause__) == "batch boom" for r in results)
    assert "p1" not in reg and reg.stats().crashed == 1
    assert await reg.ask("p1", 6) == 60
    await reg.shutdown(1)


async def test_shutdown_drains_mailboxes_then_refuses():
    reg = registry()
    gate = asyncio.Event()
    asks = [asyncio.ensure_future(reg.ask("p1", ("wait", gate, "slow")))]
    asks += [asyncio.ensure_future(reg.ask(key, n)) for key in ("p1", "p2") for n in range(3)]
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    loop.call_later(0.02, gate.set)
    await reg.shutdown(1)
    assert [len(await a) for a in asks] == [1, 2, 3, 4, 1, 2, 3]
    assert len(reg) == 0
    with pytest.raises(ActorUnavailable):
        await reg.ask("p1", "after shutdown")


async def test_shutdown_fails_what_is_left_after_the_drain_timeout():
    class Stubborn(Ledger):
        __slots__ = ()

        async def handle(self, message: Any) -> Any:
            self.started.set()
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                await asyncio.sleep(0.3)  # ignores the cancellation for a while
            return message

    reg = registry(factory=lambda key: Stubborn())
    asks = [asyncio.ensure_future(reg.ask("p1", n, timeout=10)) for n in range(3)]
    await reg.get("p1").started.wait()
    started = time.monotonic()
    await reg.shutdown(0.05)
    assert time.monotonic() - started < 0.3
    for ask in asks:
        with pytest.raises(ActorUnavailable, match="shutting down"):
            await ask
    assert len(reg) == 0


async def test_stats_report_depth_and_totals():
    reg = registry(idle_seconds=0.05)
    gate = asyncio.Event()
    busy = asyncio.ensure_future(reg.ask("p1", ("wait", gate)))
    await reg.get("p1").started.wait()
    for n in range(3):
        reg.tell("p1", n)
    reg.tell("p2", "x")
    await asyncio.sleep(0)
    stats = reg.stats()
    assert (stats.live_actors, stats.mailbox_depth, stats.max_mailbox_depth) == (2, 3, 3)
    gate.set()
    await busy
    await until(lambda: len(reg) == 0)
    stats = reg.stats()
    assert (stats.spawned, stats.evicted, stats.crashed) == (2, 2, 0)
    assert (stats.batches, stats.messages) == (5, 5)
    assert stats.batch_sizes[0] == (1, 5) and sum(n for _, n in stats.batch_sizes) == 5
    assert stats.mailbox_depth == 0 and stats.max_mailbox_depth == 0
