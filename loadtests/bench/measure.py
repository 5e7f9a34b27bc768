"""Series of repeated runs (median and spread), /metrics scraping, and the raw database loops."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg

from loadtests.bench.loadgen import LoadResult


@dataclass
class Series:
    """One configuration measured `len(rates)` times: rates are successes per second."""

    name: str
    concurrency: int
    rates: list[float] = field(default_factory=list)
    p50s: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)
    gen_cpu: list[float] = field(default_factory=list)      # share of one core
    server_cpu: list[float] = field(default_factory=list)   # cores used by the API processes
    extra: dict = field(default_factory=dict)

    def add(self, result: LoadResult, successes: float, server_cpu_seconds: float = 0.0) -> None:
        self.rates.append(successes / result.wall if result.wall else 0.0)
        self.p50s.append(result.p50)
        self.p99s.append(result.p99)
        self.gen_cpu.append(result.cpu_share)
        self.server_cpu.append(server_cpu_seconds / result.wall if result.wall else 0.0)

    def add_cpu(self, seconds: dict[str, float], successes: float) -> None:
        """CPU of each component (loadtests.bench.cpu.spent) per success, in ms, for this run."""
        cpu = self.extra.setdefault("cpu", {})
        for name, value in seconds.items():
            cpu.setdefault(name, []).append(1000 * value / successes if successes else 0.0)

    def cpu_ms(self) -> dict[str, float] | None:
        """Median ms of CPU per success per component (api, postgres, redis), when measured."""
        cpu = self.extra.get("cpu")
        return {k: statistics.median(v) for k, v in cpu.items() if v} if cpu else None

    @property
    def rate(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    @property
    def p50(self) -> float:
        return statistics.median(self.p50s) if self.p50s else 0.0

    @property
    def p99(self) -> float:
        return statistics.median(self.p99s) if self.p99s else 0.0

    @property
    def spread(self) -> str:
        return f"{min(self.rates):.0f}–{max(self.rates):.0f}" if self.rates else "-"

    def row(self) -> dict:
        return {"name": self.name, "concurrency": self.concurrency, "rate": self.rate, "spread": self.spread,
                "p50": self.p50, "p99": self.p99, "runs": len(self.rates),
                "gen_cpu": statistics.median(self.gen_cpu) if self.gen_cpu else 0.0,
                "server_cpu": statistics.median(self.server_cpu) if self.server_cpu else 0.0, **self.extra,
                "samples": {"rates": self.rates, "p50s": self.p50s, "p99s": self.p99s, "gen_cpu": self.gen_cpu,
                            "server_cpu": self.server_cpu}}

    @classmethod
    def from_row(cls, row: dict) -> Series:
        """Back from `row()` (results.json), to render a report again. Rows written before the
        samples were kept come back as min / median / max rates and the median of the rest."""
        known = {"name", "concurrency", "rate", "spread", "p50", "p99", "runs", "gen_cpu", "server_cpu", "samples"}
        extra = {k: v for k, v in row.items() if k not in known}
        if "samples" in row:
            return cls(row["name"], row["concurrency"], **row["samples"], extra=extra)
        lo, _, hi = row["spread"].partition("–")
        rates = [float(lo), row["rate"], float(hi)] if hi else [row["rate"]]
        return cls(row["name"], row["concurrency"], rates, [row["p50"]], [row["p99"]], [row["gen_cpu"]],
                   [row["server_cpu"]], extra)


def ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


_SAMPLE = re.compile(r'^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+([-+\deE.naNIinf]+)$')


def scrape(base_url: str) -> dict[str, float]:
    """One /metrics page as {"name{labels}": value} (one API process: whichever answered)."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line.strip())
        if m and not line.startswith("#"):
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def scrape_all(base_url: str, processes: int, attempts: int = 24) -> list[dict[str, float]]:
    """Pages of (hopefully) every process: each fresh connection lands on a random process
    (SO_REUSEPORT); distinct pages are kept. Bounded by `attempts`."""
    pages: dict[str, dict[str, float]] = {}
    for _ in range(attempts):
        try:
            page = scrape(base_url)
        except OSError:
            continue
        pages[repr(sorted((k, v) for k, v in page.items() if k.startswith(("actor", "http_requests_total"))))] = page
        if len(pages) >= processes:
            break
    return list(pages.values())


def batch_sizes(pages: list[dict[str, float]], kind: str = "product") -> tuple[float, float]:
    """(messages, batches) of the `kind` actors summed over the pages."""
    msgs = sum(p.get(f'actor_batch_size_sum{{kind="{kind}"}}', 0.0) for p in pages)
    batches = sum(p.get(f'actor_batch_size_count{{kind="{kind}"}}', 0.0) for p in pages)
    return msgs, batches


def live_actors(pages: list[dict[str, float]]) -> float:
    return sum(v for p in pages for k, v in p.items() if k.startswith("actors_live"))


def _p50_p99(latencies_ms: list[float]) -> tuple[float, float]:
    if not latencies_ms:
        return 0.0, 0.0
    ordered = sorted(latencies_ms)
    return statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]


ENGINE_ROW_UPDATE = "UPDATE stock SET reserved = reserved + 1 WHERE id = $1::uuid AND available >= 1"
# The same conditional UPDATE on a table with nothing else: no triggers, one index, one row.
BARE_TABLE = ("CREATE TABLE IF NOT EXISTS bench_bare_row (id uuid PRIMARY KEY, on_hand int NOT NULL,"
              " reserved int NOT NULL DEFAULT 0)")
BARE_ROW_UPDATE = "UPDATE bench_bare_row SET reserved = reserved + 1 WHERE id = $1::uuid AND on_hand - reserved >= 1"


async def bare_row(conn: asyncpg.Connection) -> str:
    """A fresh row of the bare one-row table (created on first use), with stock for any run."""
    await conn.execute(BARE_TABLE)
    await conn.execute("DELETE FROM bench_bare_row")
    return str(await conn.fetchval("INSERT INTO bench_bare_row (id, on_hand) VALUES (gen_random_uuid(), 2000000000)"
                                   " RETURNING id"))


async def raw_conditional_updates(dsn: str, stock_id: str, *, connections: int, seconds: float,
                                  statement: str = ENGINE_ROW_UPDATE,
                                  backend_cpu: list[float] | None = None) -> tuple[float, float, float]:
    """The database's own rate for the contended operation: one single-row conditional UPDATE
    per transaction on ONE row from `connections` connections. Returns (updates/s, p50, p99 ms);
    the PostgreSQL backends' CPU seconds over the loop (from /proc) are appended to `backend_cpu`."""
    from loadtests.bench.cpu import _cpu

    pool = await asyncpg.create_pool(dsn, min_size=connections, max_size=connections)
    done, lat = 0, []
    deadline = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal done
        async with pool.acquire() as conn:
            stmt = await conn.prepare(statement)
            pid = conn.get_server_pid()
            cpu0 = _cpu(pid) or 0.0
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                await stmt.fetch(stock_id)
                lat.append((time.perf_counter() - t0) * 1000)
                done += 1
            if backend_cpu is not None:
                backend_cpu.append(max(0.0, (_cpu(pid) or cpu0) - cpu0))

    try:
        t0 = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(connections)))
        wall = time.monotonic() - t0
    finally:
        await pool.close()
    return (done / wall, *_p50_p99(lat))


async def direct_loop(dsn: str, work: Callable[[asyncpg.Connection, int], Awaitable[str]], *, connections: int,
                      seconds: float, max_items: int,
                      init: Callable[[asyncpg.Connection], Awaitable[None]] | None = None) -> LoadResult:
    """Run `work(conn, i)` for i = 0.. from `connections` connections until time or items run
    out. `statuses` counts the outcomes `work` returned ("ok", ...); `cpu` is this process's
    (the driver's) CPU time, so the report can show the driver was not the limit."""
    pool = await asyncpg.create_pool(dsn, min_size=connections, max_size=connections, init=init)
    items = iter(range(max_items))
    outcomes: dict = {}
    lat: list[float] = []
    deadline = time.monotonic() + seconds

    async def loop() -> None:
        async with pool.acquire() as conn:
            for i in items:
                if time.monotonic() >= deadline:
                    return
                t0 = time.perf_counter()
                outcome = await work(conn, i)
                lat.append((time.perf_counter() - t0) * 1000)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

    try:
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.gather(*(loop() for _ in range(connections)))
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    finally:
        await pool.close()
    return LoadResult(sum(outcomes.values()), outcomes, lat, wall, cpu)


async def reservations_only(dsn: str, stock_id: str, *, mode: str, callers: int,
                            seconds: float) -> tuple[float, float, float, float | None, int]:
    """The reservation step alone, without HTTP or the rest of checkout: `callers` concurrent
    callers each reserving one unit at a time through engine.stock (ACTOR_MODE `mode`), in
    this process, until `seconds` pass. Returns (reservations/s, p50, p99 ms, mean batch or
    None without actors, refusals). The units stay held (nobody writes orders); the stock row
    is sized for it."""
    from engine.db import Database
    from engine.settings import Settings
    from engine.stock import StockService

    settings = Settings.from_env({}, database_url=dsn, actor_mode=mode, db_pool_min=1,
                                 db_pool_max=min(callers, 64))
    db = Database(settings)
    await db.open()
    service = StockService(db, settings)
    sid = uuid.UUID(stock_id)
    done, refused, lat = 0, 0, []
    deadline = time.monotonic() + seconds
    before = service.stats()

    async def loop() -> None:
        nonlocal done, refused
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                await service.reserve(sid, 1)
            except Exception:  # noqa: BLE001 - a refusal (shed load) is counted, not fatal
                refused += 1
                continue
            lat.append((time.perf_counter() - t0) * 1000)
            done += 1

    try:
        t0 = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(callers)))
        wall = time.monotonic() - t0
        after = service.stats()
    finally:
        await service.shutdown(1)
        await db.close()
    batches = after.batches - before.batches
    return (done / wall, *_p50_p99(lat), (after.messages - before.messages) / batches if batches else None, refused)
