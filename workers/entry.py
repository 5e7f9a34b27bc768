"""What each `commerce worker` process imports: `dramatiq workers.entry:boot -p N -t N`.

Dramatiq's CLI calls `boot()` in every worker process it forks; settings come from the
environment, which `workers.main.run` fills from the parent's settings.
"""

from __future__ import annotations

import dramatiq

from engine.observability import configure_logging
from engine.settings import Settings
from workers.assembly import assemble


def boot() -> None:
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    dramatiq.set_broker(assemble(settings).broker)
