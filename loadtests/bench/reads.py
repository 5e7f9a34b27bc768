"""Sections 3-5 of the benchmark: catalogue reads vs a bare aiohttp+asyncpg endpoint, the rate
limiter's overhead, and memory per user before and after idle actors are evicted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import asyncpg
import psutil

from loadtests.bench.contention import Plan
from loadtests.bench.cpu import CpuMeter, spent
from loadtests.bench.loadgen import closed_loop, get
from loadtests.bench.measure import Series, live_actors, scrape_all
from loadtests.engine_run import REPO, EngineRun, free_port
from loadtests.fixtures import Shop, Tokens, add_buyers

WARM_UP = 1.0  # seconds of traffic after a (re)start that are not counted: connections, caches, JIT-less warm paths


class BareServer:
    """The bare endpoint in N processes on its own port; stopped on exit."""

    def __init__(self, dsn: str, processes: int) -> None:
        self.port = free_port()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "loadtests.bench.bare_server", "--dsn", dsn, "--port", str(self.port),
             "--processes", str(processes)], cwd=REPO, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base_url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.base_url + "/readyz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.3 * processes)

    def cpu_seconds(self) -> float:
        total = 0.0
        try:
            for p in [psutil.Process(self._proc.pid), *psutil.Process(self._proc.pid).children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
        return total

    def __enter__(self) -> BareServer:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            os.killpg(self._proc.pid, signal.SIGTERM)
            self._proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self._proc.pid, signal.SIGKILL)


def _paths(shop: Shop) -> dict[str, callable]:
    ids = shop.product_ids
    cat = shop.category_ids["footwear"]
    filtered = f"/api/v1/products?categoryId={cat}&minPrice=1000&maxPrice=30000&sortBy=price&sortOrder=asc&pageSize=20"
    return {"GET /products/{id}": lambda i: f"/api/v1/products/{ids[(i * 31) % len(ids)]}",
            "GET /products (filtered)": lambda i: filtered}


async def _measure(base: str, path, concurrency: int, seconds: float, cpu, meter: CpuMeter | None = None) -> tuple:
    """One closed-loop run: (result, successes, API CPU seconds[, CPU per component])."""
    async def request(session, i: int) -> int:
        return await get(session, base + path(i))

    snap0 = await meter.snapshot() if meter else None
    cpu0 = cpu()
    r = await closed_loop(request, concurrency=concurrency, seconds=seconds)
    used = cpu() - cpu0
    if meter is None:
        return r, r.statuses.get(200, 0), used
    return r, r.statuses.get(200, 0), used, spent(snap0, await meter.snapshot())


def _add(series: Series, measured: tuple) -> None:
    r, ok, cpu, per_component = measured
    series.add(r, ok, cpu)
    series.add_cpu(per_component, ok)


async def catalogue_reads(engine: EngineRun, shop: Shop, plan: Plan) -> dict:
    """Engine (limiter on, as deployed) vs bare server, same processes and load generator."""
    out: dict = {"series": []}
    engine.restart_api(RATE_LIMIT_ENABLED="true")
    meter = CpuMeter(engine.database_url, engine.redis_url, engine.api_cpu_seconds)
    ids = shop.product_ids
    # The engine's product cache is per process and filled by first reads: read every product about
    # twice per process (for at most 20 s, less than the cache's TTL) before measuring, so the
    # detail rows show a warm cache (each product then costs a one-row probe after
    # CATALOGUE_CACHE_SECONDS and a full read after CATALOGUE_CACHE_MAX_SECONDS), not a cold
    # start where every read is a first read.
    await closed_loop(lambda session, i: get(session, f"{engine.base_url}/api/v1/products/{ids[i % len(ids)]}"),
                      concurrency=64, seconds=20.0, max_requests=2 * len(ids) * engine.processes)
    with BareServer(engine.database_url, engine.processes) as bare:
        bare_meter = meter.with_api(bare.cpu_seconds)
        for name, path in _paths(shop).items():
            for c in plan.concurrencies:
                eng, raw = Series(f"{name} engine", c), Series(f"{name} bare aiohttp+asyncpg", c)
                for base in (engine.base_url, bare.base_url):  # warm-up, not counted
                    await _measure(base, path, c, WARM_UP, lambda: 0.0)
                for _ in range(plan.runs):  # interleaved, so drift hits both alike
                    _add(eng, await _measure(engine.base_url, path, c, plan.seconds, engine.api_cpu_seconds, meter))
                    _add(raw, await _measure(bare.base_url, path, c, plan.seconds, bare.cpu_seconds, bare_meter))
                out["series"] += [eng, raw]
    return out


async def limiter_overhead(engine: EngineRun, shop: Shop, plan: Plan, concurrency: int) -> dict:
    path = _paths(shop)["GET /products/{id}"]
    on, off = Series("limiter on", concurrency), Series("limiter off", concurrency)
    meter = CpuMeter(engine.database_url, engine.redis_url, engine.api_cpu_seconds)
    for _ in range(plan.runs):
        for flag, s in (("true", on), ("false", off)):
            engine.restart_api(RATE_LIMIT_ENABLED=flag)
            await _measure(engine.base_url, path, concurrency, WARM_UP, lambda: 0.0)  # warm-up, not counted
            _add(s, await _measure(engine.base_url, path, concurrency, plan.seconds, engine.api_cpu_seconds, meter))
    return {"series": [on, off]}


TRIM_HOOK = REPO / "loadtests" / "bench" / "trim_hook"


def user_actors(engine: EngineRun) -> float:
    """Live user actors of the (single) API process: actors_live{kind="user"} on /metrics."""
    return sum(p.get('actors_live{kind="user"}', 0.0) for p in scrape_all(engine.base_url, 1))


def _all_actors(engine: EngineRun) -> float:
    return live_actors(scrape_all(engine.base_url, 1))


async def memory(engine: EngineRun, shop: Shop, tokens: Tokens, *, users: int, idle_seconds: float,
                 concurrency: int = 64, max_seconds: float = 120) -> dict:
    """RSS of one API process: at rest, while `users` distinct users each touch their cart
    (GET /cart runs in the user's actor; stops after `max_seconds`), after every idle actor was
    evicted, and after that once more with gc.collect() + malloc_trim(0) run inside the process
    (trim_hook/sitecustomize.py, SIGUSR1): the gap between the last two is memory the
    allocators keep cached for reuse, not memory the engine holds."""
    processes = engine.processes
    engine.processes = 1
    try:
        # Limiter off: its state lives in Redis, not in the process, and it would halve the
        # users reached in the time bound.
        census_dir = engine.log_dir / f"heap-{uuid.uuid4().hex[:6]}"
        census_dir.mkdir(parents=True)
        engine.restart_api(ACTOR_IDLE_SECONDS=str(idle_seconds), RATE_LIMIT_ENABLED="false",
                           PYTHONPATH=f"{TRIM_HOOK}{os.pathsep}{REPO}", BENCH_HEAP_DUMP=str(census_dir))
        conn = await asyncpg.connect(engine.database_url)
        try:
            people = await add_buyers(conn, tokens, uuid.UUID(shop.tenant_id), users + 200, with_address=False)
        finally:
            await conn.close()
        warm, people = people[:200], people[200:]
        url = engine.base_url + "/api/v1/cart"

        async def touch(group, session, i: int) -> int:
            return await get(session, url, {"Authorization": f"Bearer {group[i].token}"})

        # Warm up every code path once, then let those actors go: the baseline is a warm process.
        await closed_loop(lambda s, i: touch(warm, s, i), concurrency=16, seconds=30, max_requests=len(warm))
        await _wait_evicted(engine, idle_seconds)
        start = engine.api_rss()
        start_trimmed = await _trimmed_rss(engine)
        census0 = await _census(engine, census_dir)
        peak = {"rss": start, "users": 0.0}
        sampling = asyncio.create_task(_sample(engine, peak))
        try:
            r = await closed_loop(lambda s, i: touch(people, s, i), concurrency=concurrency, seconds=max_seconds,
                                  max_requests=len(people))
        finally:
            sampling.cancel()
        end_rss, end_users = engine.api_rss(), await asyncio.to_thread(user_actors, engine)
        peak["rss"], peak["users"] = max(peak["rss"], end_rss), max(peak["users"], end_users)
        evicted_after = await _wait_evicted(engine, idle_seconds)
        after = engine.api_rss()
        after_trimmed = await _trimmed_rss(engine)
        census1 = await _census(engine, census_dir)
    finally:
        engine.processes = processes
        engine.extra_env.pop("PYTHONPATH", None)
        engine.extra_env.pop("BENCH_HEAP_DUMP", None)
    grown = sorted(((k, census1.get(k, 0) - census0.get(k, 0)) for k in census1), key=lambda kv: -kv[1])
    return {"users": r.statuses.get(200, 0), "wanted": users, "sent": r.sent, "seconds": r.wall, "start": start,
            "start_trimmed": start_trimmed, "peak": peak["rss"], "after": after, "after_trimmed": after_trimmed,
            "live_at_peak": peak["users"], "evict_wait": evicted_after, "idle_seconds": idle_seconds,
            "gen_cpu": r.cpu_share, "statuses": {str(k): v for k, v in r.statuses.items()},
            "objects_before": sum(census0.values()), "objects_after": sum(census1.values()),
            "objects_grown": [kv for kv in grown[:8] if kv[1] > 0]}


async def _census(engine: EngineRun, folder) -> dict[str, int]:
    """Live objects by type in the API process (trim_hook, SIGUSR2); {} if it did not answer."""
    import json

    before = set(folder.glob("heap-*.json"))
    for pid in engine.api_pids():
        os.kill(pid, signal.SIGUSR2)
    for _ in range(50):
        await asyncio.sleep(0.2)
        new = set(folder.glob("heap-*.json")) - before
        if new:
            return json.loads(max(new, key=lambda p: p.stat().st_mtime).read_text())
    return {}


async def _trimmed_rss(engine: EngineRun) -> int:
    for pid in engine.api_pids():
        os.kill(pid, signal.SIGUSR1)
    await asyncio.sleep(1.0)
    return engine.api_rss()


async def _sample(engine: EngineRun, peak: dict) -> None:
    """Largest RSS and number of live user actors seen while users are touching carts."""
    while True:
        await asyncio.sleep(1.0)
        try:
            live = await asyncio.to_thread(user_actors, engine)
        except OSError:
            live = 0.0
        peak["rss"], peak["users"] = max(peak["rss"], engine.api_rss()), max(peak["users"], live)


async def _wait_evicted(engine: EngineRun, idle_seconds: float, limit: float = 60.0) -> float:
    """Wait until no actor is live (bounded); returns the seconds waited."""
    t0 = time.monotonic()
    await asyncio.sleep(idle_seconds)
    while time.monotonic() - t0 < limit:
        if await asyncio.to_thread(_all_actors, engine) == 0:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - t0
