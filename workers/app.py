"""The worker module for Dramatiq's own command:

    dramatiq workers.app --processes 2 --threads 4

Importing it (Dramatiq's CLI does, in every worker process) reads the settings from the
environment, sets up JSON/console logging, declares every job on a broker built from those
settings and makes it the global broker; the outbox relay, the scheduler and the metrics
endpoint (WORKER_METRICS_PORT) come with it. `commerce worker` is a thin wrapper that runs
exactly this, with the settings of its own environment and Dramatiq's plain-text logging
turned off (`--skip-logging`), so the supervisor's lines are JSON too.
"""

from __future__ import annotations

from workers.metrics import enable_multiprocess

# Before any metric exists: job counters of all processes of this supervisor are summed.
enable_multiprocess()

import dramatiq  # noqa: E402

from engine.observability import configure_logging  # noqa: E402
from engine.settings import Settings  # noqa: E402
from workers.assembly import assemble  # noqa: E402

settings = Settings.from_env()
configure_logging(settings.log_format, settings.log_level)
assembly = assemble(settings, serve_metrics=settings.worker_metrics_port > 0)
broker = assembly.broker
dramatiq.set_broker(broker)
