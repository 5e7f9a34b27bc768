"""Catalogue at scale: list, search and detail latency (p50/p95/p99) and throughput over N
seeded products, one scenario at a time, through real API processes over real HTTP.

    python -m loadtests.bench_catalogue --products 100000 --duration 20 --concurrency 32

Uses DATABASE_URL / REDIS_URL when set, else embedded PostgreSQL + Redis in a temporary folder;
a fresh database is created, migrated and seeded (`ops.seed.seed`), `ops.cli serve` runs with
`--processes N` on 127.0.0.1 (rate limits off), and everything started is stopped afterwards,
also on Ctrl-C / SIGTERM (see loadtests.engine_run.EngineRun). `--keep` keeps the seeded database
(`bench_catalogue_<N>`; embedded servers then live under `.bench/catalogue-servers/`) so the next
run skips the seeding.

Invariants: every scenario is bounded in time (`--duration`) and count (`--max-requests`); the
request mix is drawn from a fixed seed, so runs are comparable; errors are every answer that
is not 200 (599 = connection error or timeout). The markdown table goes to stdout and to
`--out` (default loadtests/reports/catalogue.md).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import asyncpg
import psutil

from loadtests.bench.loadgen import LoadResult, closed_loop, get
from loadtests.engine_run import REPO, EngineRun, with_database
from ops.seed import ADJECTIVES, CATEGORIES, seed

SORTS = ("price", "createdAt", "popularity", "name", "stock")
TAGS = sorted({t for *_, tags in CATEGORIES for t in tags} | {"bestseller", "sale"})
NOUNS = sorted({noun for _, _, _, noun, _ in CATEGORIES if noun})
PLAN_SIZE = 20_000  # distinct requests drawn per scenario; request i uses plan[i % PLAN_SIZE]


@dataclass
class Outcome:
    """One scenario's figures (the load generator's result plus server-side CPU)."""

    scenario: str
    result: LoadResult
    api_cpu: float           # cores used by the API processes over the run
    db_cpu: float | None     # cores used by embedded PostgreSQL (None: external server)
    by_label: dict[str, list[float]] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.result.sent - self.result.statuses.get(200, 0)


# -- the request mixes ---------------------------------------------------------------------------

def detail_plan(rng: random.Random, ids: Sequence[str]) -> list[tuple[str, str]]:
    return [("detail", f"/api/v1/products/{rng.choice(ids)}") for _ in range(PLAN_SIZE)]


def list_plan(rng: random.Random) -> list[tuple[str, str]]:
    """Filters combined at random (category subtree, price range, one or two tags), every sort
    key in both directions, pages 1..50 of 20."""
    slugs = [slug for slug, *_ in CATEGORIES]
    plan = []
    for _ in range(PLAN_SIZE):
        sort = rng.choice(SORTS)
        q: dict[str, object] = {"sortBy": sort, "sortOrder": rng.choice(("asc", "desc")),
                                "page": rng.randint(1, 50), "pageSize": 20}
        if rng.random() < 0.5:
            q["category"] = rng.choice(slugs)
        if rng.random() < 0.4:
            low = rng.randrange(300, 25_000, 100)
            q["minPrice"], q["maxPrice"] = low, low + rng.choice((1000, 5000, 15_000))
        if rng.random() < 0.3:
            q["tags"] = ",".join(rng.sample(TAGS, rng.choice((1, 2))))
        plan.append((f"list sortBy={sort}", "/api/v1/products?" + urlencode(q)))
    return plan


def search_plan(rng: random.Random) -> list[tuple[str, str]]:
    """Seeded words: a noun, an adjective + noun, or a prefix; relevance order (no sort) half
    the time, else a sort key; pages 1..5."""
    plan = []
    for _ in range(PLAN_SIZE):
        noun = rng.choice(NOUNS).lower()
        text = rng.choice((noun, f"{rng.choice(ADJECTIVES).lower()} {noun}", noun[:4]))
        q: dict[str, object] = {"search": text, "page": rng.randint(1, 5), "pageSize": 20}
        label = "search relevance"
        if rng.random() < 0.5:
            q["sortBy"] = rng.choice(SORTS)
            label = "search sorted"
        plan.append((label, "/api/v1/products?" + urlencode(q)))
    return plan


# -- the engine ----------------------------------------------------------------------------------

class CatalogueEngine(EngineRun):
    """EngineRun whose database may be kept (`keep=True`) between runs: reused when it exists,
    never dropped; embedded servers then keep their data under `.bench/catalogue-servers/`."""

    def __init__(self, *, products: int, keep: bool, **kwargs: object) -> None:
        super().__init__(label="bench_catalogue", **kwargs)  # type: ignore[arg-type]
        self.keep = keep
        if keep:
            self.db_name = f"bench_catalogue_{products}"

    def start_servers(self) -> None:
        if not self.keep or (self._base_db and self._redis):
            return super().start_servers()
        from ops.embedded import EmbeddedServers

        self._servers = EmbeddedServers(REPO / ".bench" / "catalogue-servers")
        self._servers.start()
        self._base_db = self._base_db or self._servers.postgres.url
        self._redis = self._redis or self._servers.redis.url

    async def create_database(self) -> None:
        if not self.keep:
            return await super().create_database()
        from engine.migrate import migrate

        admin = await asyncpg.connect(with_database(self._base_db, "postgres"))  # type: ignore[arg-type]
        try:
            if not await admin.fetchval("SELECT true FROM pg_database WHERE datname = $1", self.db_name):
                await admin.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            await admin.close()
        self.database_url = with_database(self._base_db, self.db_name)  # type: ignore[arg-type]
        self.redis_url = self._redis  # type: ignore[assignment]
        await migrate(self.database_url)

    async def _drop(self) -> None:
        if not self.keep:
            return await super()._drop()
        import redis.asyncio as aioredis

        r = aioredis.from_url(self.redis_url, socket_timeout=5)
        try:
            keys = [k async for k in r.scan_iter(match=f"{self.redis_prefix}:*", count=1000)]
            for start in range(0, len(keys), 1000):
                await r.delete(*keys[start:start + 1000])
        finally:
            await r.aclose()

    def db_cpu_seconds(self) -> float | None:
        """CPU of the embedded PostgreSQL (postmaster and backends); None on an external server."""
        pid = self._servers.postgres.pid if self._servers is not None else None
        if pid is None:
            return None
        total = 0.0
        try:
            root = psutil.Process(pid)
            for p in [root, *root.children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
        return total


async def ensure_seeded(database_url: str, products: int) -> tuple[list[str], bool]:
    """Seed up to `products` in the default tenant (skipped when already there); returns the
    ids of the tenant's active products and whether anything was seeded."""
    conn = await asyncpg.connect(database_url)
    try:
        have = await conn.fetchval("SELECT count(*) FROM products p JOIN tenants t ON t.id = p.tenant_id"
                                   " WHERE t.slug = 'default'")
        if have < products:
            started = time.monotonic()

            def progress(done: int, total: int) -> None:
                if done % 20_000 == 0 or done == total:
                    print(f"seeded {done}/{total} in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)

            await seed(database_url, products=products, progress=progress)
            await conn.execute("VACUUM ANALYZE products")  # as autovacuum would before real traffic
        rows = await conn.fetch("SELECT p.id FROM products p JOIN tenants t ON t.id = p.tenant_id"
                                " WHERE t.slug = 'default' AND p.status = 'ACTIVE' AND p.deleted_at IS NULL")
    finally:
        await conn.close()
    return [str(r["id"]) for r in rows], have < products


# -- measuring -----------------------------------------------------------------------------------

async def run_scenario(engine: CatalogueEngine, name: str, plan: list[tuple[str, str]], *, concurrency: int,
                       seconds: float, warmup: float, max_requests: int) -> Outcome:
    base = engine.base_url
    by_label: dict[str, list[float]] = {}

    async def request(session: aiohttp.ClientSession, i: int) -> int:
        label, path = plan[i % len(plan)]
        t0 = time.perf_counter()
        status = await get(session, base + path)
        by_label.setdefault(label, []).append((time.perf_counter() - t0) * 1000)
        return status

    if warmup > 0:  # warm pools, caches and the planner; not counted
        await closed_loop(request, concurrency=concurrency, seconds=warmup, max_requests=max_requests)
        by_label.clear()
    api0, db0 = engine.api_cpu_seconds(), engine.db_cpu_seconds()
    result = await closed_loop(request, concurrency=concurrency, seconds=seconds, max_requests=max_requests)
    api1, db1 = engine.api_cpu_seconds(), engine.db_cpu_seconds()
    db_cpu = (db1 - db0) / result.wall if db0 is not None and db1 is not None and result.wall else None
    return Outcome(name, result, (api1 - api0) / result.wall if result.wall else 0.0, db_cpu, by_label)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else 0.0


def render(outcomes: list[Outcome], a: argparse.Namespace, context: dict[str, str]) -> str:
    lines = [f"# Catalogue at {a.products:,} products".replace(",", " "), ""]
    lines += [f"- {k}: {v}" for k, v in context.items()]
    header = ("| scenario | requests | errors | req/s | p50 ms | p95 ms | p99 ms | load generator CPU"
              " | API CPU (cores) | PostgreSQL CPU (cores) |")
    lines += ["", header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for o in outcomes:
        r = o.result
        db = f"{o.db_cpu:.2f}" if o.db_cpu is not None else "n/a"
        lines.append(f"| {o.scenario} | {r.sent} | {o.errors} | {r.rate_of(200):.0f} | {r.p50:.1f} | {r.pct(95):.1f}"
                     f" | {r.p99:.1f} | {r.cpu_share:.0%} | {o.api_cpu:.2f} | {db} |")
    lines += ["", "Per kind of request (same runs):", "",
              "| request | count | p50 ms | p95 ms | p99 ms |", "|---|---:|---:|---:|---:|"]
    for o in outcomes:
        for label, values in sorted(o.by_label.items()):
            lines.append(f"| {label} | {len(values)} | {_pct(values, 50):.1f} | {_pct(values, 95):.1f}"
                         f" | {_pct(values, 99):.1f} |")
    return "\n".join(lines) + "\n"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=5, check=False).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench_catalogue", description=__doc__.splitlines()[0])
    p.add_argument("--products", type=int, default=100_000, help="products to seed (default 100000)")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per scenario (default 20)")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each scenario (default 3)")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    p.add_argument("--max-requests", type=int, default=1_000_000, help="cap on requests per scenario")
    p.add_argument("--processes", type=int, default=2, help="API processes (default 2: one per core)")
    p.add_argument("--scenarios", default="detail,list,search", help="comma-separated subset of detail,list,search")
    p.add_argument("--seed", type=int, default=42, help="random seed of the request mix")
    p.add_argument("--keep", action="store_true", help="keep the seeded database for the next run")
    p.add_argument("--out", default=str(REPO / "loadtests" / "reports" / "catalogue.md"), help="markdown report")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from ops.embedded import raise_on_sigterm

    a = build_parser().parse_args(argv)
    wanted = [s for s in a.scenarios.split(",") if s]
    unknown = set(wanted) - {"detail", "list", "search"}
    if unknown:
        print(f"unknown scenarios: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    raise_on_sigterm()  # SIGTERM unwinds through `finally`, so nothing started is left running
    load_before = os.getloadavg()
    engine = CatalogueEngine(products=a.products, keep=a.keep, processes=a.processes,
                             env={"RATE_LIMIT_ENABLED": "false", "LOG_LEVEL": "warning"})
    outcomes: list[Outcome] = []
    try:
        engine.start_servers()
        asyncio.run(engine.create_database())
        t0 = time.monotonic()
        ids, seeded = asyncio.run(ensure_seeded(engine.database_url, a.products))
        seeded_in = time.monotonic() - t0
        engine.start_api()
        rng = random.Random(a.seed)
        plans = {"detail": lambda: detail_plan(rng, ids), "list": lambda: list_plan(rng),
                 "search": lambda: search_plan(rng)}
        for name in wanted:
            print(f"running {name} for {a.duration:.0f}s at concurrency {a.concurrency}", file=sys.stderr, flush=True)
            outcomes.append(asyncio.run(run_scenario(engine, name, plans[name](), concurrency=a.concurrency,
                                                     seconds=a.duration, warmup=a.warmup,
                                                     max_requests=a.max_requests)))
    finally:
        engine.close()
    context = {
        "command": "`python -m loadtests.bench_catalogue " + " ".join(argv if argv is not None else sys.argv[1:]) + "`",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": _commit(),
        "machine": f"{os.cpu_count()} cores (nproc), {psutil.virtual_memory().total / 2**30:.1f} GiB RAM,"
                   f" {platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "load average before the run (1/5/15 min)": " / ".join(f"{x:.2f}" for x in load_before),
        "servers": "DATABASE_URL/REDIS_URL" if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")
                   else "embedded PostgreSQL + Redis (ops/embedded.py)",
        "setup": f"{len(ids)} active products ({'seeded' if seeded else 'reused'} in"
                 f" {seeded_in:.0f}s), {a.processes} API processes, rate limits off, closed loop of"
                 f" {a.concurrency} connections, {a.warmup:.0f}s warm-up + {a.duration:.0f}s per scenario",
    }
    table = render(outcomes, a, context)
    print(table)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    print(f"written to {out}", file=sys.stderr)
    return 1 if any(o.errors for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
