"""End-to-end helpers: `python -m ops.cli ...` as real OS processes, spoken to over real HTTP.

Every process started here is stopped by whoever started it (fixture finalizers), also when a
test fails: `Service.stop()` sends SIGTERM to the process group, then SIGKILL, and is idempotent.
Children also get PR_SET_PDEATHSIG=SIGKILL, so a killed pytest leaves nothing behind either.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
API = "/api/v1"
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # preexec_fn: the child dies when pytest does
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def clean_env(extra: Mapping[str, str] | None = None, *, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """The test's environment without server URLs or tuning knobs of its own, plus `extra`."""
    prefixes = ("TEST_", "PG", "RATE_", "ACTOR_", "PAYMENT_", "SCHEDULER_", "JWT_", "REDIS_", "DATABASE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k not in drop}
    env.update({"PYTHONUNBUFFERED": "1", "LOG_FORMAT": "json", "LOG_LEVEL": "warning", "PYTHONPATH": str(REPO)})
    env.update(extra or {})
    return env


def wait_until(check: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy (returned); a raising probe is "not yet"."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except ProcessGone:
            raise
        except Exception as exc:  # noqa: BLE001 - connection refused etc. mean "not yet"
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f}s (last error: {last!r})")
        time.sleep(interval)


class ProcessGone(RuntimeError):
    """The process we wait for exited: waiting longer cannot help."""


class Service:
    """One `python -m ops.cli <argv>` child in its own process group, its output in a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv, self.env, self.log_path = argv, env, log_path
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, "not started"
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> Service:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "ops.cli", *self.argv], cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, process_group=0, preexec_fn=_die_with_parent)  # noqa: PLW1509 - prctl must run in the child
        return self

    def check_alive(self) -> None:
        if not self.alive:
            raise ProcessGone(f"`{' '.join(self.argv)}` exited with {self.popen and self.popen.returncode}:\n"
                              f"{self.log_tail()}")

    def signal(self, sig: signal.Signals, *, group: bool = False) -> None:
        if not self.alive:
            return
        try:
            os.killpg(self.pid, sig) if group else os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the group, SIGKILL after `timeout`; idempotent."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM, group=True)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever is left of the group (a worker's children), also after a clean exit
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Http:
    """A small JSON client for one base URL: `http.post("/cart/items", json=..., token=...)`.

    Paths starting with /api/v1 or / outside it are taken as given; others get /api/v1 in front.
    Returns the `requests.Response`; `.json()` is the envelope.
    """

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.timeout = timeout

    def url(self, path: str) -> str:
        if path.startswith("http"):
            return path
        if not path.startswith(("/api/", "/pay/", "/docs", "/readyz", "/healthz", "/metrics")):
            path = API + path
        return self.base_url + path

    def call(self, method: str, path: str, *, token: str | None = None, headers: dict[str, str] | None = None,
             **kw: Any) -> requests.Response:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        kw.setdefault("timeout", self.timeout)
        return self.session.request(method, self.url(path), headers=h, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.call("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> requests.Response:
        return self.call("PATCH", path, **kw)

    def ready(self) -> bool:
        return self.get("/readyz", timeout=3).status_code == 200

    def login(self, email: str, password: str) -> str:
        r = self.post("/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, describe(r)
        return r.json()["data"]["accessToken"]


def describe(r: requests.Response) -> str:
    """The exact request and answer, for assertion messages (and bug reports)."""
    body = r.request.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    return (f"{r.request.method} {r.request.url} {body or ''}\n-> {r.status_code} "
            f"{r.text[:2000]}")


def data(r: requests.Response, status: int = 200) -> Any:
    """The envelope's data of a response that must have `status`."""
    assert r.status_code == status, describe(r)
    body = r.json()
    assert body["success"] is True, describe(r)
    return body["data"]
