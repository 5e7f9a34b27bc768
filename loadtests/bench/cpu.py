"""CPU seconds of the three servers a request touches, read from /proc (through psutil):
the API processes, the PostgreSQL backends of the benchmark's database, and the Redis server.

A section takes a `snapshot()` before and after a run; `spent(before, after)` is the CPU each
component used in between. PostgreSQL backends are found in `pg_stat_activity` (this database
only, so other databases on a shared server do not count); a backend that ends during the run
loses its last part, one that starts during the run counts whole. Redis is the server process
named by `INFO server` (shared with whatever else uses that Redis: the figure is an upper
bound); when it is not on this machine, Redis's own `used_cpu_*` counters stand in.
PostgreSQL's background processes (WAL writer, checkpointer) are not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
import psutil

COMPONENTS = ("api", "postgres", "redis")


def _cpu(pid: int) -> float | None:
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except (psutil.Error, OSError):
        return None


@dataclass
class Snapshot:
    api: float
    backends: dict[int, float] = field(default_factory=dict)
    redis: float = 0.0


class CpuMeter:
    """`api_cpu` returns the API side's CPU seconds (the engine's processes, or the bare server's)."""

    def __init__(self, database_url: str, redis_url: str, api_cpu: Callable[[], float]) -> None:
        self._dsn = database_url
        self._redis_url = redis_url
        self._api_cpu = api_cpu
        self._redis_pid: int | None = None
        self._redis = None

    def with_api(self, api_cpu: Callable[[], float]) -> CpuMeter:
        other = CpuMeter(self._dsn, self._redis_url, api_cpu)
        other._redis_pid, other._redis = self._redis_pid, self._redis
        return other

    async def snapshot(self) -> Snapshot:
        conn = await asyncpg.connect(self._dsn)
        try:
            pids = [r["pid"] for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
        finally:
            await conn.close()
        backends = {pid: cpu for pid in pids if (cpu := _cpu(pid)) is not None}
        return Snapshot(api=self._api_cpu(), backends=backends, redis=self._redis_seconds())

    def _redis_seconds(self) -> float:
        import redis

        try:
            if self._redis is None:
                self._redis = redis.Redis.from_url(self._redis_url, socket_timeout=2)
                self._redis_pid = int(self._redis.info("server")["process_id"])
            local = _cpu(self._redis_pid) if self._redis_pid else None
            if local is not None:
                return local
            info = self._redis.info("cpu")
            return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        except (redis.RedisError, OSError, KeyError, ValueError):
            return 0.0


def spent(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per component between two snapshots."""
    pg = sum(cpu - before.backends.get(pid, 0.0) for pid, cpu in after.backends.items())
    return {"api": max(0.0, after.api - before.api), "postgres": max(0.0, pg),
            "redis": max(0.0, after.redis - before.redis)}
