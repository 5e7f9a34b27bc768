"""`commerce bench`: every benchmark section in one invocation, same database and machine;
writes BENCHMARKS.md and PNG charts. `main(argv)` returns the exit status: 0, or 1 when a run
found oversell or duplicate orders (budgets missed are reported in the file, not as failure:
the report is the deliverable). `--quick` is a small run (the smoke test uses it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from loadtests.bench import contention, reads, report, sale
from loadtests.engine_run import GENEROUS_LIMITS, JWT_SECRET, REPO, EngineRun
from loadtests.fixtures import Buyer, Shop, Tokens, add_buyers, arrange_shop


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="commerce bench", description="Benchmark the engine against its own ceilings.")
    p.add_argument("--quick", action="store_true", help="a small run (seconds, not minutes)")
    p.add_argument("--out", default=str(REPO / "BENCHMARKS.md"), help="report file (default BENCHMARKS.md at the repo root)")
    p.add_argument("--charts", default=None, help="folder for PNG charts (default docs/bench next to the report)")
    p.add_argument("--processes", type=int, default=2, help="API processes (default 2: one per core)")
    p.add_argument("--runs", type=int, help="runs per configuration (median reported); default 3, quick 1")
    p.add_argument("--seconds", type=float, help="seconds per run; default 5, quick 1")
    p.add_argument("--buyers", type=int, help="buyers with a filled cart per run; default 3000, quick 200")
    p.add_argument("--products", type=int, help="products for the many-products checkout; default 10000, quick 500")
    p.add_argument("--lines", type=int, help="products per cart in the many-products checkout; default 3, quick 2")
    p.add_argument("--checkout-buyers", type=int,
                   help="buyers with a prepared cart in the many-products checkout; default 6000, quick 300")
    p.add_argument("--memory-users", type=int, help="distinct users for the memory section; default 100000, quick 300")
    p.add_argument("--sections", default="flash,sale,checkout,reads,limiter,memory",
                   help="comma-separated subset of flash,sale,checkout,reads,limiter,memory (sale: mostly losing,"
                        " 1/2/4 API processes, one buyer at idle)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    q = a.quick
    plan = contention.Plan(runs=a.runs or (1 if q else 3), seconds=a.seconds or (1.0 if q else 5.0),
                           concurrencies=(8, 32) if q else (64, 256), buyers=a.buyers or (200 if q else 3000))
    products = a.products or (500 if q else 10_000)
    lines = a.lines or (2 if q else 3)
    out = Path(a.out).resolve()
    charts = Path(a.charts).resolve() if a.charts else out.parent / "docs" / "bench"
    sections = set(a.sections.split(","))
    started = time.monotonic()
    results: dict = {"quick": q, "processes": a.processes, "runs": plan.runs, "seconds": plan.seconds,
                     "products": products, "budget_concurrency": plan.concurrencies[0],
                     "argv": list(argv) if argv is not None else sys.argv[1:], "load_at_start": os.getloadavg()}
    # At most 64 database connections per side: the engine's pools share them out.
    env = {**GENEROUS_LIMITS, "DB_POOL_MAX": str(max(2, 64 // a.processes))}
    with EngineRun(processes=a.processes, env=env, label="bench", log_dir=out.parent / ".bench-logs") as engine:
        tokens = Tokens(f"bench:{JWT_SECRET}")
        shop = asyncio.run(arrange_shop(engine.database_url, tokens, products=200 if q else 2000,
                                        buyers=plan.buyers, reviews=0))
        buyers = shop.buyers
        extra = (a.checkout_buyers or (300 if q else 6000)) - len(buyers)
        checkout_buyers = buyers + (asyncio.run(_more_buyers(engine.database_url, tokens, shop, extra)) if extra > 0 else [])

        def attempt(key: str, fn) -> None:
            if key not in sections:
                return
            t0 = time.monotonic()
            print(f"bench: {key} ...", flush=True)
            try:
                results[key] = asyncio.run(fn())
            except Exception as exc:  # noqa: BLE001 - one section's failure must not lose the others
                traceback.print_exc()
                results[key] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
            print(f"bench: {key} done in {time.monotonic() - t0:.0f}s", flush=True)

        attempt("flash", lambda: contention.flash_sale(engine, shop, buyers, plan, quick=q))
        attempt("sale", lambda: sale.flash_variants(engine, shop, buyers, plan, quick=q))
        attempt("checkout", lambda: contention.many_products(engine, shop, checkout_buyers, plan, products=products,
                                                             concurrency=plan.concurrencies[0], lines=lines))
        attempt("reads", lambda: reads.catalogue_reads(engine, shop, plan))
        attempt("limiter", lambda: reads.limiter_overhead(engine, shop, plan, plan.concurrencies[0]))
        attempt("memory", lambda: reads.memory(engine, shop, tokens, users=a.memory_users or (300 if q else 100_000),
                                               idle_seconds=2.0 if q else 5.0))
    results["elapsed"] = time.monotonic() - started
    path = report.write(results, out, charts)
    violations = [v for key in ("flash", "sale", "checkout") for v in (results.get(key) or {}).get("violations", [])]
    print(f"bench: wrote {path} in {results['elapsed']:.0f}s")
    charts.mkdir(parents=True, exist_ok=True)
    (charts / "results.json").write_text(json.dumps(
        {k: ({**v, "series": [s.row() for s in v.get("series", [])]} if isinstance(v, dict) else v)
         for k, v in results.items()}, indent=2, default=str))
    for v in violations:
        print(f"bench: VIOLATION {v}", file=sys.stderr)
    return 1 if violations else 0


async def _more_buyers(dsn: str, tokens: Tokens, shop: Shop, n: int) -> list[Buyer]:
    conn = await asyncpg.connect(dsn)
    try:
        return await add_buyers(conn, tokens, uuid.UUID(shop.tenant_id), n)
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
