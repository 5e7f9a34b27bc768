"""One actor: a task that owns the state of one key (a product, a user) and takes messages
from a bounded mailbox one at a time, or one batch at a time.

Lifecycle, after pykka:
- a handler that raises a DomainError answers that caller with it; the actor lives on;
- anything else is a crash: the callers of the message (or batch) and every ask still queued
  fail with ActorUnavailable chained from the crash, the actor leaves its registry, and the
  next message to its key spawns a fresh actor;
- an actor whose mailbox stays empty for `idle_seconds` stops itself (eviction);
- every ask has a timeout; an answer for a caller who has given up is dropped.

Invariant: an actor leaves its registry in the same synchronous step in which it finds its
mailbox empty and decides to stop, and a stopped actor refuses new messages. So every accepted
message is in the mailbox of an actor that will still answer it; none is stranded.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Hashable, Protocol

from engine.actors.stats import ActorCounters
from engine.domain.errors import ActorUnavailable, DomainError

_RUNNING, _DRAINING, _STOPPED = "running", "draining", "stopped"

# Put into an idle actor's mailbox at shutdown so it wakes up, finds the mailbox empty and
# stops, instead of sleeping out its idle timeout. Never handed to a handler.
_WAKE_UP = (None, None)

Letter = tuple[Any, "asyncio.Future[Any] | None"]  # (message, reply future; None for a tell)


def unavailable(message: str, retry_after: float, cause: BaseException | None = None) -> ActorUnavailable:
    """A fresh ActorUnavailable (one per caller: an exception instance must not be raised in
    two tasks at once) chained from `cause`, as `raise ... from cause` would."""
    error = ActorUnavailable(message, extra={"retry_after": retry_after})
    error.__cause__ = cause
    return error


class Supervisor(Protocol):
    """What an actor needs from whoever spawned it: its limits, a place to count, someone to hear
    a crash, and a way to leave. ActorRegistry is the one implementation; the actor knows only
    this much of it, so the two modules do not import each other."""

    mailbox_size: int
    idle_seconds: float
    ask_timeout: float
    max_batch: int
    retry_after: float
    counters: ActorCounters
    on_crash: Callable[[Hashable, BaseException], None]

    def _forget(self, actor: Actor, *, evicted: bool) -> None: ...


class Actor:
    """Base of every actor. Subclass and implement exactly one of:

    - `async def handle(self, message)`: one message at a time;
    - `async def handle_batch(self, messages) -> list[result | Exception]`: everything already
      waiting (up to the registry's max_batch) at once, one answer per message, in order. A
      DomainError in the list is that caller's answer; any other exception in the list fails
      that caller with ActorUnavailable and then crashes the actor (its state is suspect); an
      exception raised by handle_batch itself crashes the whole batch.

    Actors are spawned by an ActorRegistry (`registry.get(key)`), never started by hand. The
    base keeps its per-actor state in `__slots__`; subclasses that declare `__slots__` too stay
    small, since memory follows the number of live actors.
    """

    __slots__ = ("key", "_registry", "_mailbox", "_task", "_state", "_inflight")

    async def handle(self, message: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} implements neither handle nor handle_batch")

    async def handle_batch(self, messages: list[Any]) -> list[Any]:
        raise NotImplementedError  # never called unless a subclass overrides it

    # -- callers -------------------------------------------------------------------------

    def tell(self, message: Any) -> None:
        """Queue `message` without waiting for it. Raises ActorUnavailable at once when the
        mailbox is full or the actor has stopped."""
        self._post((message, None))

    async def ask(self, message: Any, timeout: float | None = None) -> Any:
        """The handler's answer to `message`, or its DomainError raised here. ActorUnavailable
        when the mailbox is full, the actor has stopped or crashed, or no answer came within
        `timeout` seconds (default: the registry's ask_timeout)."""
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._post((message, reply))
        try:
            # Leaving this block early (timeout or the caller's own cancellation) cancels
            # `reply`, which tells the actor that nobody waits for the answer any more.
            async with asyncio.timeout(self._registry.ask_timeout if timeout is None else timeout):
                return await reply
        except TimeoutError as exc:
            raise unavailable("The engine did not answer in time; retry shortly.",
                              self._registry.retry_after, exc) from exc

    def _post(self, letter: Letter) -> None:
        if self._state is not _RUNNING:
            raise unavailable("The engine is restarting this resource; retry shortly.", self._registry.retry_after)
        try:
            self._mailbox.put_nowait(letter)
        except asyncio.QueueFull:
            # A bounded mailbox answers at once: queueing without bound only moves the
            # overload into memory and latency.
            raise unavailable("The engine is busy; retry shortly.", self._registry.retry_after) from None

    # -- lifecycle (driven by the registry) ----------------------------------------------

    def _start(self, key: Hashable, registry: Supervisor) -> None:
        self.key = key
        self._registry = registry
        self._mailbox: asyncio.Queue[Letter] = asyncio.Queue(registry.mailbox_size)
        self._state = _RUNNING
        self._inflight: list[Letter] = []
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"actor {key!r}")

    def _drain(self) -> None:
        """Refuse new messages, answer the queued ones, then stop."""
        if self._state is _RUNNING:
            self._state = _DRAINING
            if self._mailbox.empty():
                self._mailbox.put_nowait(_WAKE_UP)

    def _abort(self, reason: str) -> None:
        """Stop now: fail the batch in hand and everything queued with ActorUnavailable."""
        self._stop(reason, None)
        self._task.cancel()

    def _stop(self, reason: str, cause: BaseException | None, *, evicted: bool = False) -> None:
        self._state = _STOPPED
        self._registry._forget(self, evicted=evicted)
        letters, self._inflight = self._inflight, []
        while not self._mailbox.empty():
            letters.append(self._mailbox.get_nowait())
        for _, reply in letters:
            if reply is not None and not reply.done():
                reply.set_exception(unavailable(reason, self._registry.retry_after, cause))

    # -- the actor's task ----------------------------------------------------------------

    async def _run(self) -> None:
        batching = type(self).handle_batch is not Actor.handle_batch
        limit = self._registry.max_batch if batching else 1
        try:
            while True:
                letters = await self._receive(limit)
                if letters is None:
                    return
                # An ask whose caller gave up (timeout, cancellation) is not worth doing.
                self._inflight = [(m, r) for m, r in letters if r is None or not r.done()]
                if self._inflight:
                    await self._deliver(batching)
                self._inflight = []
        except asyncio.CancelledError:
            self._stop("The engine is shutting down; retry shortly.", None)
            raise
        except Exception as exc:
            self._registry.counters.crashed += 1
            self._stop("The engine failed on this resource; retry shortly (actor crashed).", exc)
            self._registry.on_crash(self.key, exc)

    async def _receive(self, limit: int) -> list[Letter] | None:
        """The next batch: one letter (waiting for it up to idle_seconds) plus whatever else
        is already queued, up to `limit`. None when the actor has stopped itself."""
        mailbox = self._mailbox
        if mailbox.empty():
            if self._state is not _RUNNING:
                self._stop("The engine is shutting down; retry shortly.", None)
                return None
            try:
                async with asyncio.timeout(self._registry.idle_seconds):
                    first = await mailbox.get()
            except TimeoutError:
                # A cancelled get() leaves its item in the queue, so a message that arrived
                # in the same instant as the timeout is still here. Checking and leaving the
                # registry happen with no await in between: no message can slip into the gap.
                if mailbox.empty():
                    self._stop("The engine is restarting this resource; retry shortly.", None, evicted=True)
                    return None
                first = mailbox.get_nowait()
        else:
            first = mailbox.get_nowait()
        letters = [first]
        while len(letters) < limit and not mailbox.empty():
            letters.append(mailbox.get_nowait())
        return [letter for letter in letters if letter is not _WAKE_UP]

    async def _deliver(self, batching: bool) -> None:
        letters = self._inflight
        messages = [message for message, _ in letters]
        if batching:
            answers = list(await self.handle_batch(messages))
            if len(answers) != len(messages):
                raise RuntimeError(f"handle_batch answered {len(answers)} of {len(messages)} messages")
        else:
            try:
                answers = [await self.handle(messages[0])]
            except DomainError as exc:
                answers = [exc]
        self._registry.counters.record_batch(len(messages))
        crash: BaseException | None = None
        for (_, reply), answer in zip(letters, answers):
            if isinstance(answer, BaseException) and not isinstance(answer, DomainError):
                crash = crash or answer
                answer = unavailable("The engine failed on this request; retry shortly.",
                                     self._registry.retry_after, answer)
            if reply is None or reply.done():
                continue  # a tell, or a caller who gave up: the answer is dropped
            if isinstance(answer, BaseException):
                reply.set_exception(answer)
            else:
                reply.set_result(answer)
        if crash is not None:
            raise crash
