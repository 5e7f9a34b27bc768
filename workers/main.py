"""`commerce worker`: Dramatiq worker processes (each with the outbox relay and the scheduler).

Reuses Dramatiq's own process supervisor (`python -m dramatiq workers.entry:boot -p N -t N`),
which restarts crashed children and shuts them down gracefully on SIGTERM/SIGINT. Settings
reach the children through the environment: every setting is written to its variable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import fields
from decimal import Decimal

from engine.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """Every non-empty setting as the environment variable `Settings.from_env` reads back."""
    env: dict[str, str] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if value is None:
            continue
        env[f.metadata["env"]] = ("true" if value else "false") if isinstance(value, bool) else \
            (format(value, "f") if isinstance(value, Decimal) else str(value))
    return env


def command(processes: int, threads: int, target: str = "workers.entry:boot") -> list[str]:
    return [sys.executable, "-m", "dramatiq", target, "--processes", str(processes), "--threads", str(threads)]


def spawn(settings: Settings, processes: int, threads: int, *, target: str = "workers.entry:boot",
          extra_env: dict[str, str] | None = None, **popen_kw) -> subprocess.Popen:
    """Start the supervisor; the caller owns the process."""
    env = {**os.environ, **settings_env(settings), **(extra_env or {})}
    return subprocess.Popen(command(processes, threads, target), env=env, **popen_kw)


def run(settings: Settings, processes: int, threads: int) -> None:
    """Run worker processes in the foreground until they exit; SIGTERM/SIGINT stop them gracefully."""
    proc = spawn(settings, processes, threads)

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    sys.exit(proc.wait())
