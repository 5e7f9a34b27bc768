"""The live actors of one kind (all product actors, all user actors) in one process, by key.

Memory follows activity, not the catalogue: an actor exists only while its key has recent
messages; idle actors evict themselves (no global scan), crashed ones are dropped, and either
way the next message to the key spawns a fresh actor.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Hashable

import structlog

from engine.actors.actor import Actor, unavailable
from engine.actors.stats import BATCH_SIZE_BOUNDS, ActorCounters, ActorStats

CrashReporter = Callable[[Hashable, BaseException], None]

log = structlog.get_logger("engine.actors")


def log_crash(key: Hashable, exc: BaseException) -> None:
    """The default crash reporter: an actor that dies must be heard, with its traceback. (Its
    callers already got ActorUnavailable; the crash counter is in the registry's stats.)"""
    log.error("actor_crashed", key=str(key), error=type(exc).__name__, exc_info=exc)


class ActorRegistry:
    """Gets or spawns the actor of a key and routes messages to it.

    `factory(key)` builds an unstarted Actor. Limits: `mailbox_size` messages queued per actor,
    `idle_seconds` of quiet before an actor evicts itself, `ask_timeout` seconds a caller waits
    by default, `max_batch` messages per handle_batch call. `on_crash(key, exc)` hears of every
    crash; by default `log_crash` logs it with its traceback. Every ActorUnavailable carries
    `extra["retry_after"] = retry_after` seconds.

    Use from one event loop only (the one that serves the requests).
    """

    def __init__(self, factory: Callable[[Hashable], Actor], *, mailbox_size: int, idle_seconds: float,
                 ask_timeout: float, max_batch: int, on_crash: CrashReporter | None = None,
                 retry_after: float = 1) -> None:
        if mailbox_size < 1 or max_batch < 1:
            raise ValueError("mailbox_size and max_batch must be at least 1")
        self._factory = factory
        self.mailbox_size = mailbox_size
        self.idle_seconds = idle_seconds
        self.ask_timeout = ask_timeout
        self.max_batch = max_batch
        self.on_crash = on_crash if on_crash is not None else log_crash
        self.retry_after = retry_after
        self.counters = ActorCounters()
        self._actors: dict[Hashable, Actor] = {}
        self._closing = False

    def get(self, key: Hashable) -> Actor:
        """The running actor of `key`, spawned if there is none. Raises ActorUnavailable once
        shutdown has begun. The actor returned is running: it can only stop at an await."""
        if self._closing:
            raise unavailable("The engine is shutting down; retry shortly.", self.retry_after)
        actor = self._actors.get(key)
        if actor is None:
            actor = self._factory(key)
            actor._start(key, self)
            self._actors[key] = actor
            self.counters.spawned += 1
        return actor

    async def ask(self, key: Hashable, message: Any, timeout: float | None = None) -> Any:
        """`get(key).ask(message, timeout)`: the answer, a DomainError, or ActorUnavailable."""
        return await self.get(key).ask(message, timeout)

    def tell(self, key: Hashable, message: Any) -> None:
        """`get(key).tell(message)`: queue without waiting; ActorUnavailable when full."""
        self.get(key).tell(message)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._actors

    def __len__(self) -> int:
        return len(self._actors)

    async def shutdown(self, drain_timeout: float) -> None:
        """Refuse new messages, let the actors answer what is queued for up to `drain_timeout`
        seconds, then fail whatever is left with ActorUnavailable and cancel the stragglers.
        Returns within about twice `drain_timeout` even if a handler ignores cancellation."""
        self._closing = True
        actors = list(self._actors.values())
        for actor in actors:
            actor._drain()
        tasks = {actor._task for actor in actors}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=drain_timeout)
        if not pending:
            return
        for actor in actors:
            if not actor._task.done():
                actor._abort("The engine is shutting down; retry shortly.")
        # Callers are answered already; this only gives handlers a moment to unwind (roll back).
        await asyncio.wait(pending, timeout=drain_timeout)

    def stats(self) -> ActorStats:
        depths = [actor._mailbox.qsize() for actor in self._actors.values()]
        c = self.counters
        return ActorStats(
            live_actors=len(self._actors),
            mailbox_depth=sum(depths),
            max_mailbox_depth=max(depths, default=0),
            spawned=c.spawned,
            evicted=c.evicted,
            crashed=c.crashed,
            batches=c.batches,
            messages=c.messages,
            batch_sizes=tuple(zip(BATCH_SIZE_BOUNDS, c.batch_sizes)),
        )

    def _forget(self, actor: Actor, *, evicted: bool) -> None:
        """Called by an actor as it stops; drops it only if it is still the key's actor."""
        if self._actors.get(actor.key) is actor:
            del self._actors[actor.key]
            if evicted:
                self.counters.evicted += 1
