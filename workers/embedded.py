"""Workers as threads inside another process (`commerce dev`): a Dramatiq Worker with a few
threads, plus the outbox relay and scheduler on its event loop.

Dramatiq's AsyncIO middleware keeps one event-loop thread per process, so run one embedded
worker per process.
"""

from __future__ import annotations

import dramatiq

from engine.settings import Settings
from workers.assembly import assemble


class EmbeddedWorkers:
    """Handle of running embedded workers; `stop()` finishes in-flight jobs and returns."""

    def __init__(self, worker: dramatiq.Worker) -> None:
        self.worker = worker

    def stop(self, timeout_ms: int = 30_000) -> None:
        self.worker.stop(timeout=timeout_ms)


def start_embedded_workers(settings: Settings, *, threads: int | None = None) -> EmbeddedWorkers:
    asm = assemble(settings)
    worker = dramatiq.Worker(asm.broker, worker_threads=threads or min(4, max(1, settings.worker_threads)),
                             worker_timeout=1000)
    worker.start()
    return EmbeddedWorkers(worker)


run_in_thread = start_embedded_workers
