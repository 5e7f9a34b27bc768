"""The fault stack: a test-owned PostgreSQL and Redis, a proxy in front of each, two API
processes and (once workers/ exists) a worker process, shared by the scenarios of a session.
`heal()` undoes whatever the previous scenario broke.
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from engine.migrate import migrate
from tests.faults.options import BUYERS, EXPIRY_SECONDS, RECOVERY_LIMIT, RESEND_SECONDS, workers_landed
from tests.faults.shop import Shop, open_shop
from tests.faults.toolkit import (ApiProcess, PgCluster, RedisServer, TcpProxy, WorkerProcess, free_port,
                                  service_env, wait_until)


@dataclass
class Stack:
    pg: PgCluster
    redis: RedisServer
    pg_proxy: TcpProxy
    redis_proxy: TcpProxy
    apis: list[ApiProcess]
    worker: WorkerProcess | None
    log_dir: Path
    worker_env: dict[str, str] = field(default_factory=dict)

    @property
    def dsn(self) -> str:
        """Direct to PostgreSQL: the tests' own view of the truth, never through the proxy."""
        return self.pg.url

    @property
    def api_urls(self) -> list[str]:
        return [a.base_url for a in self.apis]

    def heal(self) -> None:
        """Undo any fault: servers up, proxies passing, every process alive and ready."""
        self.pg_proxy.heal()
        self.redis_proxy.heal()
        if not self.pg.running:
            self.pg.restart()
        if not self.redis.running:
            self.redis.start()
        for api in self.apis:
            api.thaw()
            if not api.alive:
                api.start()
        if self.worker is not None:
            self.worker.thaw()
            if not self.worker.alive:
                self.worker.start()
        for api in self.apis:
            wait_until(api.ready, RECOVERY_LIMIT * 2, 0.1, what=f"{api.base_url} ready")

    def open_shop(self, *, buyers: int = BUYERS, stock: int = 100_000) -> Shop:
        return asyncio.run(open_shop(self.dsn, self.api_urls[0], buyers=buyers, stock=stock))

    def wait_ready(self, timeout: float = RECOVERY_LIMIT) -> float:
        """Seconds until every API answers /readyz 200 (TimeoutError past `timeout`)."""
        return max(wait_until(api.ready, timeout, 0.05, what=f"{api.base_url} ready") for api in self.apis)


@contextmanager
def running_stack(root: Path) -> Iterator[Stack]:
    """Start everything under `root`; stop everything on exit, whatever happened."""
    pg = PgCluster(root / "postgres")
    redis = RedisServer(root / "redis")
    proxies: list[TcpProxy] = []
    processes: list[ApiProcess | WorkerProcess] = []
    try:
        pg.start()
        redis.start()
        asyncio.run(migrate(pg.url))
        pg_proxy = TcpProxy(pg.port).start()
        redis_proxy = TcpProxy(redis.port).start()
        proxies += [pg_proxy, redis_proxy]
        prefix = f"faults{secrets.token_hex(3)}"
        urls = dict(database_url=f"postgresql://postgres@127.0.0.1:{pg_proxy.port}/commerce",
                    redis_url=f"redis://127.0.0.1:{redis_proxy.port}/0", redis_prefix=prefix)
        # A dead worker's unacked jobs come back within 5 + 1 s, a job the broker lost is sent
        # again RESEND_SECONDS after it was due: both well inside a scenario.
        extra = {"PAYMENT_EXPIRY_SECONDS": str(EXPIRY_SECONDS), "SCHEDULER_TICK_SECONDS": "1",
                 "OUTBOX_POLL_SECONDS": "0.2", "OUTBOX_RESEND_SECONDS": str(RESEND_SECONDS),
                 "WORKER_HEARTBEAT_TIMEOUT": "5", "WORKER_REQUEUE_INTERVAL": "1"}
        apis = []
        for name in ("api-a", "api-b"):
            port = free_port()
            env = service_env(port=port, extra={**extra, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}, **urls)
            apis.append(ApiProcess(env, root, name))
        processes += apis
        for api in apis:
            api.start()
        worker = None
        worker_env = service_env(port=free_port(), extra=extra, **urls)
        if workers_landed():
            worker = WorkerProcess(worker_env, root)
            processes.append(worker)
            worker.start()
        yield Stack(pg, redis, pg_proxy, redis_proxy, apis, worker, root, worker_env)
    finally:
        for p in processes:
            p.stop()
        for proxy in proxies:
            proxy.stop()
        redis.stop()
        pg.stop()
