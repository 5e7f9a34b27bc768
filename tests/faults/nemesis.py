"""A seeded, reproducible nemesis (in the spirit of Jepsen) for the fault stack.

`schedule(seed, seconds, stack)` draws, from `random.Random(seed)` alone, a list of faults:
when each starts (seconds into its phase), what it does (kill / pause / restart an API process,
the worker, PostgreSQL or Redis) and for how long. The same seed and length give the same
schedule, printed before the run, so a failure replays with `NEMESIS_SEED=<seed>`.

The run is cut into phases. During a phase mixed load runs (buyers checking out with
Idempotency-Keys, bystanders reading the catalogue and writing carts) and the phase's faults
fire on schedule; then the load stops, every fault is undone, and at that quiet point the
promises are checked (stock, idempotency, jobs, every buyer's orders = what they were told).
At the end, the outbox must also have drained.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from typing import Callable

from tests.faults.stack import Stack

# What the nemesis can do; each entry: (name, weight). Targets: "api-0", "api-1", "worker",
# "postgres", "redis".
ACTIONS = (
    ("kill_api", 3),        # SIGKILL an API process, start it again after `seconds`
    ("pause_api", 2),       # SIGSTOP an API process for `seconds`, then SIGCONT
    ("kill_worker", 2),     # SIGKILL the worker (and its children), start again after `seconds`
    ("pause_worker", 1),    # SIGSTOP the worker for `seconds`
    ("crash_postgres", 2),  # immediate shutdown (SIGQUIT), restart after `seconds`
    ("hang_postgres", 1),   # black-hole PostgreSQL traffic for `seconds`
    ("kill_redis", 2),      # SIGKILL Redis, restart from its AOF after `seconds`
    ("pause_redis", 1),     # SIGSTOP Redis for `seconds`
)


@dataclass(frozen=True)
class Fault:
    phase: int
    at: float          # seconds into the phase
    action: str
    target: str
    seconds: float     # how long the fault lasts

    def describe(self) -> str:
        return f"phase {self.phase} +{self.at:5.2f}s {self.action:<15} {self.target:<8} for {self.seconds:.2f}s"


def schedule(seed: int, phases: int, phase_seconds: float, apis: int = 2,
             max_per_phase: int | None = None) -> list[Fault]:
    """Faults that never overlap within a phase: one at a time, a gap of calm between them.
    Times are the earliest a fault starts: undoing one (a restart) can delay the next."""
    rng = random.Random(seed)
    names = [a for a, _ in ACTIONS]
    weights = [w for _, w in ACTIONS]
    faults: list[Fault] = []
    for phase in range(phases):
        t = rng.uniform(0.5, 1.5)
        count = 0
        while max_per_phase is None or count < max_per_phase:
            count += 1
            action = rng.choices(names, weights)[0]
            seconds = round(rng.uniform(0.5, 3.0), 2)
            if t + seconds > phase_seconds - 1.0:
                break
            target = {"kill_api": f"api-{rng.randrange(apis)}", "pause_api": f"api-{rng.randrange(apis)}"}.get(
                action, action.split("_", 1)[1])
            faults.append(Fault(phase, round(t, 2), action, target, seconds))
            t += seconds + rng.uniform(0.5, 2.0)
    return faults


def _pair(stack: Stack, f: Fault) -> tuple[Callable[[], None], Callable[[], None]]:
    """(inject, undo) of one fault on `stack`."""
    if f.target.startswith("api-"):
        api = stack.apis[int(f.target[4:])]
        return (api.kill, api.start) if f.action == "kill_api" else (api.freeze, api.thaw)
    if f.target == "worker":
        w = stack.worker
        assert w is not None
        return (w.kill, lambda: w.start(settle=0.2)) if f.action == "kill_worker" else (w.freeze, w.thaw)
    if f.action == "crash_postgres":
        return stack.pg.crash, stack.pg.restart
    if f.action == "hang_postgres":
        return stack.pg_proxy.blackhole, stack.pg_proxy.heal
    if f.action == "kill_redis":
        return stack.redis.crash, stack.redis.start
    if f.action == "pause_redis":
        import signal

        def freeze() -> None:
            if stack.redis._process is not None:
                stack.redis._process.send_signal(signal.SIGSTOP)

        def thaw() -> None:
            if stack.redis._process is not None:
                stack.redis._process.send_signal(signal.SIGCONT)

        return freeze, thaw
    raise ValueError(f"unknown fault {f}")


def play(stack: Stack, faults: list[Fault], phase_started: float, log: Callable[[str], None],
         ready: Callable[[], float]) -> list[dict]:
    """Run one phase's faults on time; after each is undone, `ready()` measures the seconds until
    every API is ready again (its recovery). Returns what happened (for the report)."""
    happened = []
    for f in faults:
        delay = phase_started + f.at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if f.target == "worker" and stack.worker is None:
            continue
        inject, undo = _pair(stack, f)
        begun = time.monotonic()
        inject()
        log(f"  nemesis: {f.describe()} (started +{begun - phase_started:.2f}s)")
        time.sleep(f.seconds)
        undo()
        undone = time.monotonic()
        happened.append({**asdict(f), "undone_after": round(undone - begun, 2),
                         "recovery_s": round(ready(), 2)})
    return happened
