"""Per-user actors: one user's cart commands and checkout run one at a time, in arrival order.

Two tabs of one user cannot race a quantity change against a checkout, or check one cart out
twice, inside this process. Across processes the cart row lock (engine.cart_store, checkout)
and the database constraints still decide; the actor only makes the common case orderly and
cheap (no lock waits inside PostgreSQL).

A command is any `async () -> T` closure. Its outcome, value or exception of any kind, goes
back to its caller unchanged: a failing command is the caller's failure, never the actor's,
because a user actor holds no state that a failure could leave suspect. So the actor lives on
after any command, and only a full mailbox, shutdown or a timeout answers ActorUnavailable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Hashable, TypeVar
from uuid import UUID

from engine.actors import Actor, ActorRegistry, ActorStats
from engine.settings import Settings

T = TypeVar("T")
Command = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class _Outcome:
    value: Any = None
    error: BaseException | None = None


class UserActor(Actor):
    """Runs one user's commands one after another."""

    __slots__ = ()

    async def handle(self, command: Command) -> _Outcome:
        try:
            return _Outcome(value=await command())
        except Exception as exc:  # the caller's failure, handed back, not the actor's
            return _Outcome(error=exc)


class UserActors:
    """The user actors of this process. `run(user_id, fn)` awaits `fn()` inside that user's
    actor and returns its value or raises its exception."""

    def __init__(self, *, mailbox_size: int, idle_seconds: float, ask_timeout: float) -> None:
        self._registry = ActorRegistry(self._spawn, mailbox_size=mailbox_size, idle_seconds=idle_seconds,
                                       ask_timeout=ask_timeout, max_batch=1)

    @classmethod
    def from_settings(cls, settings: Settings) -> "UserActors":
        # A user issues a handful of commands at a time; a deep mailbox would only hide abuse.
        return cls(mailbox_size=min(settings.actor_mailbox_size, 64), idle_seconds=settings.actor_idle_seconds,
                   ask_timeout=settings.actor_ask_timeout)

    @staticmethod
    def _spawn(key: Hashable) -> Actor:
        return UserActor()

    async def run(self, user_id: UUID, fn: Callable[[], Awaitable[T]], *, timeout: float | None = None) -> T:
        """`await fn()` serialised with every other command of `user_id` in this process.

        Raises what `fn` raises, or ActorUnavailable (503) when the user's mailbox is full,
        the engine is shutting down, or no answer came within the ask timeout."""
        outcome: _Outcome = await self._registry.ask(user_id, fn, timeout)
        if outcome.error is not None:
            raise outcome.error
        return outcome.value

    async def shutdown(self, drain_timeout: float) -> None:
        """Finish queued commands (up to `drain_timeout`), then fail the rest."""
        await self._registry.shutdown(drain_timeout)

    def stats(self) -> ActorStats:
        return self._registry.stats()

    def __len__(self) -> int:
        return len(self._registry)
