"""Start the engine for one load-test or benchmark run, and stop every part of it afterwards.

`EngineRun` owns, in order: the servers (DATABASE_URL / REDIS_URL when set, else embedded
PostgreSQL and Redis under a temporary folder), a freshly created, uniquely named database
(migrated), a unique Redis key prefix, and N API processes (`python -m ops.cli serve
--processes N`, SO_REUSEPORT on one port). Invariants:
- everything binds to 127.0.0.1; every wait is bounded in time;
- `close()` (also reached on Ctrl-C / SIGTERM via `with`) stops the API processes, drops the
  database and the Redis keys it created, and stops embedded servers; nothing else is touched;
- `restart_api(**env)` replaces the API processes with new settings on the same database
  (the benchmark compares modes on the same data).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

REPO = Path(__file__).resolve().parent.parent
JWT_SECRET = "bench-" + "k" * 40
WEBHOOK_SECRET = "bench-webhook-secret-0123456789abcdef"

# Settings for load runs: limits raised so that only the scenario under test meets a limiter.
GENEROUS_LIMITS = {"RATE_CATALOGUE": "10000000", "RATE_CART": "10000000", "RATE_FINANCIAL": "10000000",
                   "RATE_ORDERS": "10000000", "RATE_API_KEY_STANDARD": "10000000",
                   "RATE_API_KEY_ENTERPRISE": "10000000", "RATE_CATEGORIES": "10000000", "RATE_SHIPPING": "10000000", "RATE_REVIEWS": "10000000",
                   "RATE_AUTH": "10000000", "RATE_ACCOUNT": "10000000", "RATE_ADMIN": "10000000", "RATE_WEBHOOKS": "10000000", "RATE_PAGES": "10000000",
                   # Load buyers check out again and again without paying; the hoarding limit
                   # would turn their checkouts into 409s after the first few.
                   "MAX_UNPAID_ORDERS": "0"}


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EngineRun:
    """One engine for one run. Use as a context manager; see the module docstring."""

    def __init__(self, *, processes: int = 1, env: Mapping[str, str] | None = None,
                 database_url: str | None = None, redis_url: str | None = None,
                 label: str = "loadtest", log_dir: Path | None = None) -> None:
        self.processes = processes
        self.extra_env = dict(env or {})
        self._base_db = database_url or os.environ.get("DATABASE_URL")
        self._redis = redis_url or os.environ.get("REDIS_URL")
        self.db_name = f"{label}_{secrets.token_hex(4)}"
        self.redis_prefix = f"{label}{secrets.token_hex(3)}"
        self.port = free_port()
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix=f"{label}-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._servers: Any = None
        self._api: subprocess.Popen[bytes] | None = None
        self.database_url = ""
        self.redis_url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "EngineRun":
        previous = signal.getsignal(signal.SIGTERM)
        if previous in (signal.SIG_DFL, None):
            # SIGTERM must unwind through __exit__ so nothing we started is left behind.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            self.start_servers()
            asyncio.run(self.create_database())
            self.start_api()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_servers(self) -> None:
        if self._base_db and self._redis:
            return
        from ops.embedded import EmbeddedServers

        self._tmp = tempfile.TemporaryDirectory(prefix="loadtest-servers-")
        self._servers = EmbeddedServers(Path(self._tmp.name))
        self._servers.start()
        self._base_db = self._base_db or self._servers.postgres.url
        self._redis = self._redis or self._servers.redis.url

    async def create_database(self) -> None:
        from engine.migrate import migrate

        admin = await asyncpg.connect(with_database(self._base_db, "postgres"))  # type: ignore[arg-type]
        try:
            await admin.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            await admin.close()
        self.database_url = with_database(self._base_db, self.db_name)  # type: ignore[arg-type]
        self.redis_url = self._redis  # type: ignore[assignment]
        await migrate(self.database_url)

    def api_env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RATE_", "ACTOR_"))}
        env.update({
            "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url, "REDIS_PREFIX": self.redis_prefix,
            "JWT_KEYS": f"bench:{JWT_SECRET}", "PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            # The shopper opens the sandbox's payment page: `serve` has it only when named.
            "PAYMENT_PROVIDER": "sandbox", "SANDBOX_PROVIDER_SECRET": WEBHOOK_SECRET,
            "HOST": "127.0.0.1", "PORT": str(self.port), "PUBLIC_BASE_URL": self.base_url,
            "LOG_FORMAT": "json", "LOG_LEVEL": "warning", "DEV_MODE": "false", "PYTHONPATH": str(REPO),
        })
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def start_api(self, timeout: float = 60.0, **env: str) -> None:
        """Start N API processes and wait until /readyz answers 200 on every one we can reach."""
        self.stop_api()
        self.extra_env.update(env)
        log = open(self.log_dir / "api.log", "ab")
        self._api = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "serve", "--processes", str(self.processes)],
            cwd=REPO, env=self.api_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._api.poll() is not None:
                raise RuntimeError(f"API exited with {self._api.returncode}; see {self.log_dir / 'api.log'}:\n"
                                   + self.api_log_tail())
            if self._ready() and len(self.api_pids()) >= self.processes:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"API not ready within {timeout:.0f}s; {self.api_log_tail()}")
            time.sleep(0.1)
        # Every process must be listening, not just the first one: give the rest a moment to bind.
        time.sleep(0.3 * (self.processes - 1))

    def restart_api(self, **env: str) -> None:
        self.start_api(**env)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/readyz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def api_log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.log_dir / "api.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def api_pids(self) -> list[int]:
        """Pids of the processes serving requests (the children when there are several)."""
        if self._api is None or self._api.poll() is not None:
            return []
        try:
            parent = psutil.Process(self._api.pid)
            children = parent.children(recursive=True)
        except psutil.Error:
            return []
        if self.processes <= 1:
            return [parent.pid]
        # multiprocessing "spawn" adds a resource tracker child; it does not serve requests.
        return [c.pid for c in children if "resource_tracker" not in " ".join(c.cmdline())]

    def api_rss(self) -> int:
        total = 0
        for pid in self.api_pids():
            try:
                total += psutil.Process(pid).memory_info().rss
            except psutil.Error:
                pass
        return total

    def api_cpu_seconds(self) -> float:
        total = 0.0
        for pid in self.api_pids():
            try:
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def stop_api(self, timeout: float = 20.0) -> None:
        process, self._api = self._api, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)

    def close(self) -> None:
        self.stop_api()
        try:
            if self.database_url:
                asyncio.run(self._drop())
        except Exception as exc:  # best effort: report, never mask the run's own outcome
            print(f"loadtest: could not drop {self.db_name}: {exc}", file=sys.stderr)
        if self._servers is not None:
            self._servers.stop_all()
            self._servers = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def _drop(self) -> None:
        import redis.asyncio as aioredis

        admin = await asyncpg.connect(with_database(self.database_url, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        finally:
            await admin.close()
        self.database_url = ""
        r = aioredis.from_url(self.redis_url, socket_timeout=5)
        try:
            batch: list[Any] = []
            async for key in r.scan_iter(match=f"{self.redis_prefix}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    await r.delete(*batch)
                    batch = []
            if batch:
                await r.delete(*batch)
        finally:
            await r.aclose()
