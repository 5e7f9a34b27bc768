"""Running the API: one process, or several sharing a port (SO_REUSEPORT) under a supervisor
that replaces any that dies, with graceful shutdown on SIGTERM/SIGINT: stop accepting, finish
in-flight requests, drain actors, close pools."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
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
    Supervisor(settings, processes).run()


class Supervisor:
    """N API processes sharing the port (SO_REUSEPORT). A child that dies (OOM-killed, crashed)
    is replaced at once, or after `backoff` seconds if it died within `backoff` of its start,
    so a child that cannot start does not spin. SIGTERM/SIGINT are forwarded to every child,
    each drains as in one-process mode, and the supervisor exits when all have."""

    def __init__(self, settings: Settings, processes: int, backoff: float = 1.0) -> None:
        self.settings, self.processes, self.backoff = settings, processes, backoff
        self._ctx = multiprocessing.get_context("spawn")
        self._stopping = False
        self.children: list[tuple[multiprocessing.process.BaseProcess, float]] = []

    def _start(self) -> tuple[multiprocessing.process.BaseProcess, float]:
        child = self._ctx.Process(target=_serve_one, args=(self.settings, True), daemon=False)
        child.start()
        return child, time.monotonic()

    def _forward(self, signum: int, _frame: object) -> None:
        self._stopping = True
        for child, _ in self.children:
            if child.is_alive() and child.pid:
                os.kill(child.pid, signal.SIGTERM)

    def run(self) -> None:
        configure_logging(self.settings.log_format, self.settings.log_level)
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        self.children = [self._start() for _ in range(self.processes)]
        while not self._stopping:
            for i, (child, started) in enumerate(self.children):
                child.join(timeout=0.2)
                if child.exitcode is None or self._stopping:
                    continue
                log.warning("api_process_died", pid=child.pid, exitcode=child.exitcode)
                if time.monotonic() - started < self.backoff:
                    time.sleep(self.backoff)
                if not self._stopping:
                    self.children[i] = self._start()
                    log.info("api_process_replaced", old_pid=child.pid, pid=self.children[i][0].pid)
        for child, _ in self.children:
            child.join()
