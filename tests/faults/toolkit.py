"""The fault toolkit: real processes and real servers the tests can freeze, kill and crash.

- `PgCluster`: a test-owned PostgreSQL cluster (ops.embedded.EmbeddedPostgres) that can crash
  (SIGQUIT to the postmaster: PostgreSQL's immediate shutdown, no checkpoint, crash recovery on
  the next start) and restart on the same port.
- `RedisServer`: a test-owned Redis (ops.embedded.EmbeddedRedis).
- `ApiProcess` / `WorkerProcess`: `python -m ops.cli serve|worker` as separate OS processes in
  their own process group, dying with the test process (PR_SET_PDEATHSIG). `freeze()` (SIGSTOP),
  `thaw()` (SIGCONT), `kill()` (SIGKILL), `restart()`.
- `TcpProxy` (tests/faults/proxy.py) in front of PostgreSQL and Redis for latency, hangs, resets.

Every wait has a deadline; every process started here is stopped by `stop()`, whatever happened.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from ops.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from tests.faults.proxy import TcpProxy

# The code the processes run: this tree, or FAULTS_CODE_DIR (e.g. an exported commit).
REPO = Path(os.environ.get("FAULTS_CODE_DIR") or Path(__file__).resolve().parents[2])
JWT_KEYS = "k1:fault-suite-signing-key-0123456789abcdef"
WEBHOOK_SECRET = "fault-suite-webhook-secret-0123456789"
_PR_SET_PDEATHSIG = 1

__all__ = ["ApiProcess", "WorkerProcess", "PgCluster", "RedisServer", "TcpProxy", "wait_until",
           "http_get", "free_port", "JWT_KEYS", "WEBHOOK_SECRET", "service_env"]


class ProcessExited(RuntimeError):
    """A process we wait for has died: waiting longer cannot help."""


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "condition") -> float:
    """Poll `check` until true; return the seconds it took. TimeoutError after `timeout`."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except ProcessExited:
            raise
        except Exception:  # noqa: BLE001 - a probe that raises is simply "not yet"
            pass
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} not reached within {timeout:.1f}s")
        time.sleep(interval)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, dict[str, str], bytes]:
    """A blocking GET that returns (status, headers, body) for every status, raising only on I/O."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - 127.0.0.1 only
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _die_with_parent() -> None:  # preexec_fn
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# ----------------------------------------------------------------------------- servers

class PgCluster(EmbeddedPostgres):
    """EmbeddedPostgres that can also crash. The port survives restarts."""

    def crash(self, timeout: float = 15.0) -> None:
        """Immediate shutdown (SIGQUIT): backends exit without cleanup, as after a power cut."""
        process = self._process
        if process is None:
            return
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
        self._process = None

    def restart(self, timeout: float = 60.0) -> None:
        self.start(timeout)


class RedisServer(EmbeddedRedis):
    def crash(self) -> None:
        process = self._process
        if process is not None:
            process.kill()
            process.wait(10)
            self._process = None


# ----------------------------------------------------------------------------- our processes

def service_env(*, database_url: str, redis_url: str, port: int, redis_prefix: str,
                extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of an API or worker process: real secrets, limits high enough for load."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "TEST_"))}
    env.update({
        "DATABASE_URL": database_url, "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix,
        "JWT_KEYS": JWT_KEYS, "PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET, "PORT": str(port),
        "HOST": "127.0.0.1", "LOG_FORMAT": "json", "LOG_LEVEL": "warning", "DEV_MODE": "false",
        # Outside dev mode no provider is on unless named: the faults refund through the sandbox.
        "PAYMENT_PROVIDER": "sandbox", "SANDBOX_PROVIDER_SECRET": WEBHOOK_SECRET,
        "RATE_CATALOGUE": "1000000", "RATE_CART": "1000000", "RATE_FINANCIAL": "1000000",
        "RATE_ORDERS": "1000000", "LOGIN_MAX_FAILURES": "1000000",
        "MAX_UNPAID_ORDERS": "0",  # load buyers never pay; their checkouts must not turn into 409s
        # The policies added with signing-in limits; LOGIN_MAX_ADDRESS_FAILURES likewise.
        "RATE_CATEGORIES": "1000000", "RATE_SHIPPING": "1000000", "RATE_REVIEWS": "1000000",
        "RATE_AUTH": "1000000", "RATE_ACCOUNT": "1000000", "RATE_ADMIN": "1000000", "RATE_WEBHOOKS": "1000000", "RATE_PAGES": "1000000",
        "LOGIN_MAX_ADDRESS_FAILURES": "1000000",
        "DB_POOL_MIN": "1", "DB_POOL_MAX": "8", "DB_COMMAND_TIMEOUT": "3", "ACTOR_ASK_TIMEOUT": "4", "REQUEST_TIMEOUT": "6.5",
        "SHUTDOWN_GRACE": "2", "DEPENDENCY_RETRY_AFTER": "1",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


@dataclass
class _Process:
    """A `python -m ops.cli <command>` child with its log in `log_path`."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def pid(self) -> int:
        assert self.popen is not None, "not started"
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "ops.cli", *self.argv], cwd=REPO, env=self.env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                process_group=0, preexec_fn=_die_with_parent)

    def signal(self, sig: signal.Signals) -> None:
        if self.alive:
            os.kill(self.pid, sig)

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the whole process group (a worker's children too) and reap."""
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.thaw()
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ApiProcess(_Process):
    """One `commerce serve` process on its own port."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "api") -> None:
        super().__init__(["serve"], env, log_dir / f"{name}.log")
        self.port = int(env["PORT"])
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "ApiProcess":
        self.spawn()
        try:
            wait_until(self.healthy, timeout, 0.1, what=f"API on :{self.port}")
        except (TimeoutError, ProcessExited):
            tail = self.log_tail()
            self.kill()
            raise RuntimeError(f"API on :{self.port} did not start:\n{tail}") from None
        return self

    def restart(self, timeout: float = 30.0) -> "ApiProcess":
        self.kill()
        return self.start(timeout)

    def healthy(self) -> bool:
        if not self.alive:
            raise ProcessExited(f"API process exited:\n{self.log_tail()}")
        return http_get(self.base_url + "/healthz", 1.0)[0] == 200

    def ready(self) -> bool:
        return http_get(self.base_url + "/readyz", 2.0)[0] == 200

    def readiness(self) -> dict[str, object]:
        status, headers, body = http_get(self.base_url + "/readyz", 3.0)
        return {"status": status, "retry_after": headers.get("Retry-After"), "body": json.loads(body or b"null")}


class WorkerProcess(_Process):
    """`commerce worker` (Dramatiq workers with the outbox relay and scheduler)."""

    def __init__(self, env: dict[str, str], log_dir: Path, processes: int = 1, threads: int = 2) -> None:
        super().__init__(["worker", "--processes", str(processes), "--threads", str(threads)], env,
                         log_dir / "worker.log")

    def start(self, settle: float = 1.0) -> "WorkerProcess":
        self.spawn()
        time.sleep(settle)  # no readiness endpoint: give it a moment, then make sure it lives
        if not self.alive:
            raise RuntimeError(f"worker exited at start:\n{self.log_tail()}")
        return self

    def restart(self) -> "WorkerProcess":
        self.kill()
        return self.start()
