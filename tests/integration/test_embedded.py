"""Embedded PostgreSQL and Redis: real server processes, started, stopped, killed.

What a developer would notice: data survives a restart, a crashed earlier run never blocks the
next one, and no server process outlives us (after stop, or after we are SIGKILLed).
On this machine the tests run as root, so the `commerce-pg` system-user path is the one exercised.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from ops.embedded import PG_SYSTEM_USER, EmbeddedPostgres, EmbeddedRedis, EmbeddedServers

ROOT = Path(__file__).resolve().parents[2]


def _gone(pid: int, within: float = 5.0) -> bool:
    """True once `pid` has exited (a zombie waiting for init counts as exited)."""
    deadline = time.monotonic() + within
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _workers_in(data_dir: Path) -> list[psutil.Process]:
    """Server processes (postmaster, backends, valkey) whose working directory is `data_dir`."""
    here = data_dir.resolve()
    return [p for p in psutil.process_iter(["name", "cwd", "status"])
            if p.info["cwd"] and Path(p.info["cwd"]) == here and p.info["status"] != psutil.STATUS_ZOMBIE
            and p.info["name"] in ("postgres", "valkey-server")]


def _sql(url: str, query: str) -> object:
    async def run() -> object:
        conn = await asyncpg.connect(url)
        try:
            if query.startswith("SELECT"):
                return await conn.fetchval(query)
            return await conn.execute(query)
        finally:
            await conn.close()

    return asyncio.run(run())


@dataclass(frozen=True)
class Stopped:
    """Data dir of servers that were started, given one row and one key, and stopped."""

    path: Path
    pids: tuple[int, int]


@pytest.fixture(scope="module")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Stopped:
    path = tmp_path_factory.mktemp("embedded")
    with EmbeddedServers(path) as servers:
        assert servers.postgres.url.endswith("/commerce")
        _sql(servers.postgres.url, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('order-1')")
        redis.Redis.from_url(servers.redis.url).set("embedded-test:kept", "cart-1")
        pids = (servers.postgres.pid, servers.redis.pid)
    servers.stop_all()  # idempotent
    return Stopped(path, pids)  # type: ignore[arg-type]


def test_stop_leaves_no_server_process_and_logs_in_the_data_dir(servers_dir: Stopped) -> None:
    assert all(_gone(pid, within=0) for pid in servers_dir.pids)
    assert _workers_in(servers_dir.path / "postgres" / "data") == []
    assert _workers_in(servers_dir.path / "redis") == []
    assert "database system is shut down" in (servers_dir.path / "postgres" / "postgres.log").read_text()
    assert (servers_dir.path / "redis" / "valkey.log").exists()


def test_data_survives_a_restart(servers_dir: Stopped) -> None:
    with EmbeddedServers(servers_dir.path) as again:
        assert _sql(again.postgres.url, "SELECT v FROM kept") == "order-1"
        assert redis.Redis.from_url(again.redis.url).get("embedded-test:kept") == b"cart-1"


def test_a_crashed_postgres_leaves_a_stale_pid_file_that_does_not_block_a_restart(servers_dir: Stopped) -> None:
    pg = EmbeddedPostgres(servers_dir.path / "postgres")
    pg.start()
    assert pg.pid is not None
    os.kill(pg.pid, signal.SIGKILL)  # a crash: no clean shutdown, postmaster.pid stays
    assert _gone(pg.pid)
    assert (pg.pgdata / "postmaster.pid").exists()
    pg.stop()

    # The stale pid may by now belong to a live unrelated process of the same user (pids are
    # reused, often in containers); postgres alone would then refuse to start.
    unrelated = subprocess.Popen(["sleep", "30"], user=PG_SYSTEM_USER if os.geteuid() == 0 else None)
    stale = (pg.pgdata / "postmaster.pid").read_text().split("\n", 1)
    (pg.pgdata / "postmaster.pid").write_text(f"{unrelated.pid}\n{stale[1]}")
    try:
        pg.start()
        assert _sql(pg.url, "SELECT count(*) FROM kept") == 1
        assert unrelated.poll() is None  # not ours to stop
    finally:
        pg.stop()
        unrelated.kill()
        unrelated.wait()


def test_a_server_left_running_by_an_earlier_run_is_replaced(servers_dir: Stopped) -> None:
    earlier_pg, earlier_redis = EmbeddedPostgres(servers_dir.path / "postgres"), EmbeddedRedis(servers_dir.path / "redis")
    earlier_pg.start()
    earlier_redis.start()
    pg, rd = EmbeddedPostgres(servers_dir.path / "postgres"), EmbeddedRedis(servers_dir.path / "redis")
    try:
        pg.start()
        rd.start()
        assert _gone(earlier_pg.pid) and _gone(earlier_redis.pid)  # type: ignore[arg-type]
        assert _sql(pg.url, "SELECT v FROM kept") == "order-1"
        assert redis.Redis.from_url(rd.url).get("embedded-test:kept") == b"cart-1"
    finally:
        pg.stop()
        rd.stop()
        earlier_pg.stop()
        earlier_redis.stop()
    assert _workers_in(servers_dir.path / "postgres" / "data") == []


# A program that starts the servers, says their pids, and runs until it is signalled.
_PROGRAM = """
import sys, time
from pathlib import Path
from ops.embedded import EmbeddedServers, raise_on_sigterm
raise_on_sigterm()
with EmbeddedServers(Path(sys.argv[1])) as servers:
    print(servers.postgres.pid, servers.redis.pid, flush=True)
    time.sleep(60)
"""


def _run_program_until(tmp_path: Path, sig: signal.Signals) -> tuple[int, int, int]:
    """Start `_PROGRAM`, send it `sig` once the servers are up: (exit code, postgres pid, redis pid)."""
    program = subprocess.Popen([sys.executable, "-c", _PROGRAM, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        pg_pid, redis_pid = (int(x) for x in program.stdout.readline().split())  # type: ignore[union-attr]
        assert not _gone(pg_pid, within=0) and not _gone(redis_pid, within=0)
        program.send_signal(sig)
        return program.wait(20), pg_pid, redis_pid
    finally:
        program.kill()
        program.wait()
        program.stdout.close()  # type: ignore[union-attr]


def test_sigterm_stops_the_servers_cleanly(tmp_path: Path) -> None:
    code, pg_pid, redis_pid = _run_program_until(tmp_path, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    assert _gone(pg_pid) and _gone(redis_pid)
    assert "database system is shut down" in (tmp_path / "postgres" / "postgres.log").read_text()


def test_servers_die_when_their_parent_is_sigkilled(tmp_path: Path) -> None:
    code, pg_pid, redis_pid = _run_program_until(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert _gone(redis_pid) and _gone(pg_pid)
    deadline = time.monotonic() + 5
    while _workers_in(tmp_path / "postgres" / "data") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _workers_in(tmp_path / "postgres" / "data") == []


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "first") as first:
        clash = EmbeddedRedis(tmp_path / "second", port=first.port)
        with pytest.raises(RuntimeError, match="valkey exited .*\n.*"):
            clash.start()
        clash.stop()
