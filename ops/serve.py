"""Running the API: one process, or several sharing a port (SO_REUSEPORT), with graceful
shutdown on SIGTERM/SIGINT: stop accepting, finish in-flight requests, drain actors, close pools."""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from typing import Awaitable, Callable

import structlog
from aiohttp import web

from engine.observability import configure_logging
from engine.settings import Settings, SettingsError
from web.app import create_app
from web.routes.system import metrics_listener

log = structlog.get_logger("serve")


async def run_api(settings: Settings, stop: asyncio.Event, *, reuse_port: bool = False,
                  on_ready: Callable[[], Awaitable[None] | None] | None = None) -> None:
    """Serve until `stop` is set, then shut down gracefully."""
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=settings.shutdown_grace,
                           access_log=None)
    await runner.setup()
    cleanups: list[web.AppRunner] = []
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None)
        await site.start()
        log.info("api_listening", url=f"http://{settings.host}:{settings.port}")
        if settings.metrics_port:
            metrics_runner = web.AppRunner(metrics_listener(app), handle_signals=False, access_log=None)
            await metrics_runner.setup()
            cleanups.append(metrics_runner)
            await web.TCPSite(metrics_runner, settings.host, settings.metrics_port,
                              reuse_port=reuse_port or None).start()
            log.info("metrics_listening", url=f"http://{settings.host}:{settings.metrics_port}/metrics")
        if on_ready is not None:
            result = on_ready()
            if asyncio.iscoroutine(result):
                await result
        await stop.wait()
        log.info("api_stopping")
    finally:
        for extra in cleanups:
            await extra.cleanup()
        await runner.cleanup()


def stop_event_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _run(main: Callable[[], Awaitable[None]]) -> None:
    """Run the server's event loop. The standard loop, not uvloop: with uvloop, a Redis
    connection dropped mid-write surfaces in redis-py as a RuntimeError ("the handler is
    closed") instead of a ConnectionError, which escaped the fail-open/fail-closed handling and
    answered 500 when Redis became unreachable (found by tests/faults)."""
    asyncio.run(main())


def _serve_one(settings: Settings, reuse_port: bool) -> None:
    configure_logging(settings.log_format, settings.log_level)

    async def main() -> None:
        await run_api(settings, stop_event_on_signals(), reuse_port=reuse_port)

    _run(main)


def refuse_dev_mode(settings: Settings) -> None:
    """`commerce serve` is production: dev mode would sign tokens with the public development
    key and turn the sandbox payment provider on, so DEV_MODE=true is refused, not obeyed."""
    if settings.dev_mode:
        raise SettingsError("DEV_MODE=true is refused by `commerce serve` (dev mode is `commerce dev` only)")


def serve(settings: Settings, processes: int = 1) -> None:
    refuse_dev_mode(settings)
    if processes <= 1:
        _serve_one(settings, reuse_port=False)
        return
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=_serve_one, args=(settings, True), daemon=False) for _ in range(processes)]
    for c in children:
        c.start()

    def forward(signum: int, _frame: object) -> None:
        for c in children:
            if c.is_alive() and c.pid:
                import os
                os.kill(c.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for c in children:
        c.join()
