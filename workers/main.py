"""`commerce worker`: Dramatiq worker processes (each with the outbox relay and the scheduler).

A wrapper around Dramatiq's own command: `commerce worker -p N -t T` runs
`python -m workers.main workers.app --processes N --threads T`, which is
`dramatiq workers.app ...` with our logging set up first (Dramatiq's plain-text `basicConfig`
skipped, so the supervisor's own lines are JSON like the workers') and a fresh Prometheus
multiprocess directory for this run. Dramatiq's supervisor shuts every process down gracefully
on SIGTERM/SIGINT; if one worker process dies it stops the rest and exits non-zero, so run it
under something that restarts it (Docker's `restart:`, systemd). Settings reach the children
through the environment: every setting is written to its variable.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import fields
from decimal import Decimal
from typing import Sequence

from engine.settings import Settings

MODULE = "workers.app"


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


def command(processes: int, threads: int, target: str = MODULE, shutdown_timeout: float | None = None) -> list[str]:
    argv = [sys.executable, "-m", "workers.main", target, "--processes", str(processes), "--threads", str(threads)]
    if shutdown_timeout is not None:
        argv += ["--worker-shutdown-timeout", str(int(shutdown_timeout * 1000))]
    return argv


def spawn(settings: Settings, processes: int, threads: int, *, target: str = MODULE,
          extra_env: dict[str, str] | None = None, shutdown_timeout: float | None = None,
          **popen_kw) -> subprocess.Popen:
    """Start the supervisor; the caller owns the process."""
    env = {**os.environ, **settings_env(settings), **(extra_env or {})}
    return subprocess.Popen(command(processes, threads, target, shutdown_timeout), env=env, **popen_kw)


def run(settings: Settings, processes: int, threads: int, shutdown_timeout: float | None = None) -> None:
    """Run worker processes in the foreground until they exit; SIGTERM/SIGINT stop them gracefully."""
    proc = spawn(settings, processes, threads, shutdown_timeout=shutdown_timeout)

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    sys.exit(proc.wait())


def supervise(argv: Sequence[str]) -> int:
    """Dramatiq's CLI with our logging and a per-run metrics directory."""
    from dramatiq.cli import main as dramatiq_main, make_argument_parser

    from engine.observability import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    own_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="commerce-worker-metrics-")
    try:
        return dramatiq_main(make_argument_parser().parse_args([*argv, "--skip-logging"])) or 0
    finally:
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(supervise(sys.argv[1:]))
