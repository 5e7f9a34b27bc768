"""Puts a worker together: broker, middleware stack, resources and actors.

    asm = assemble(settings)            # what `commerce worker` and `commerce dev` run
    dramatiq.Worker(asm.broker, worker_threads=4).start()

Middleware order matters (see `assemble`): the resources open before the relay and scheduler
start and close after they stop, all while the AsyncIO middleware's loop runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

import dramatiq
from dramatiq.middleware import Retries
from dramatiq.middleware.asyncio import AsyncIO

from engine.payments import provider_for
from engine.settings import Settings
from workers import jobs, jobs_fulfilment, jobs_webhooks
from workers.broker import BrokerTuning, build_broker
from workers.metrics import JobMetrics
from workers.middleware.background import BackgroundLoops
from workers.middleware.database import DatabasePool
from workers.middleware.tracebacks import DeadLetterTracebacks
from workers.middleware.outbox_done import OutboxDone
from workers.relay import OutboxRelay
from workers.resources import ProviderFactory, WorkerResources
from workers.scheduler import Scheduler


@dataclass
class Assembly:
    settings: Settings
    broker: dramatiq.Broker
    resources: WorkerResources
    actors: dict[str, dramatiq.Actor] = field(default_factory=dict)

    def relay(self, **kw) -> OutboxRelay:
        kw.setdefault("resend_after", dt.timedelta(seconds=self.settings.outbox_resend_seconds))
        return OutboxRelay(self.resources.db, jobs.sender(self.actors), self.actors.keys(),
                           poll_seconds=self.settings.outbox_poll_seconds, **kw)

    def scheduler(self) -> Scheduler:
        tasks = jobs.periodic_tasks(self.actors, self.settings.scheduler_tick_seconds)
        tasks += jobs_fulfilment.periodic_tasks(self.actors, self.settings.scheduler_tick_seconds)
        tasks += jobs_webhooks.periodic_tasks(self.actors, self.settings.scheduler_tick_seconds)
        return Scheduler(self.resources.redis, self.settings.redis_prefix, tasks)


def assemble(settings: Settings, *, tuning: BrokerTuning | None = None, background: bool = True,
             provider_factory: ProviderFactory = provider_for, serve_metrics: bool = False) -> Assembly:
    """A broker with every job declared; `background=False` leaves out relay and scheduler;
    `serve_metrics` adds the metrics endpoint fork (only the Dramatiq CLI runs forks)."""
    resources = WorkerResources(settings, provider_factory)
    holder: list[Assembly] = []
    # Dramatiq runs before_* hooks in list order and after_* hooks in reverse (an onion):
    # AsyncIO starts its loop first and stops it last; DatabasePool opens before and closes
    # after BackgroundLoops runs the relay and scheduler.
    stack: list = [AsyncIO()]
    if background:
        stack.append(BackgroundLoops(lambda stop: _once_open(resources, stop, lambda: holder[0].relay()),
                                     lambda stop: _once_open(resources, stop, lambda: holder[0].scheduler())))
    stack.append(DatabasePool(resources))
    stack.append(JobMetrics(serve=serve_metrics))
    stack.append(DeadLetterTracebacks())
    broker = build_broker(settings, middleware=stack, tuning=tuning)
    # Before Retries in the list, so its after_process_message runs after Retries' (after_*
    # hooks run in reverse) and sees whether the message failed for good.
    broker.add_middleware(OutboxDone(resources), before=Retries)
    asm = Assembly(settings, broker, resources)
    asm.actors = jobs.declare_actors(broker, resources)
    asm.actors.update(jobs_fulfilment.declare_actors(broker, resources))
    asm.actors.update(jobs_webhooks.declare_actors(broker, resources))
    holder.append(asm)
    return asm


async def _once_open(resources: WorkerResources, stop: asyncio.Event, make) -> None:
    """Run `make().run(stop)` once the resources are open: they open late when the database was
    down at boot (workers/middleware/database.py), and the relay and scheduler need them."""
    while not resources.is_open:
        if stop.is_set():
            return
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass
    await make().run(stop)
