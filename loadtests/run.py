"""`commerce loadtest <scenario>`: one command per scenario, bounded in time.

Starts the engine itself (see loadtests.engine_run) or targets `--host` (then DATABASE_URL and
JWT_KEYS of that engine are needed to arrange data and sign tokens), arranges the shop, runs
Locust headless (CSV + HTML report in --out), then judges the run:
- budgets (p95/p99 per request name, failure ratio, throughput) -> loadtests.budgets;
- database invariants (oversell, duplicate orders) -> loadtests.invariants;
- rate-limit counts and headers (rate_limits scenario) -> loadtests.ratelimit_check.
Exit status 0 when everything holds; 1 naming each missed budget and by how much; 2 when the
scenario cannot run (an endpoint it needs is missing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from loadtests import budgets as b
from loadtests import invariants, ratelimit_check
from loadtests.engine_run import GENEROUS_LIMITS, JWT_SECRET, REPO, EngineRun
from loadtests.fixtures import Shop, Tokens, arrange_shop

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"

# Limits the rate_limits scenario gives the API processes: small, so every caller meets its
# limit within seconds; the plans are tighter than the catalogue policy so the plan answers.
PROOF_LIMITS = {"catalogue": 40, "cart": 30, "financial": 2, "orders": 30, "standard": 20, "enterprise": 30}


@dataclass(frozen=True)
class Scenario:
    users: int
    spawn_rate: float
    seconds: int
    processes: int
    needs: tuple[str, ...]            # "METHOD /path" the scenario cannot run without
    p95: float
    p99: float
    buyers: int = 200
    products: int = 500
    hot_stock: int = 100
    env: dict[str, str] = field(default_factory=lambda: dict(GENEROUS_LIMITS))


SCENARIOS = {
    "browse": Scenario(20, 10, 30, 2, ("GET /products", "GET /products/{}", "GET /categories",
                                       "GET /products/{}/reviews"), 300, 800),
    "shopper": Scenario(10, 5, 30, 2, ("POST /auth/login", "POST /cart/items", "POST /cart/checkout",
                                       "GET /orders"), 800, 2000),
    "flash_sale": Scenario(50, 25, 20, 2, ("POST /cart/items", "POST /cart/checkout"), 1000, 2500,
                           buyers=2000, hot_stock=300),
    "rate_limits": Scenario(14, 14, 15, 2, ("GET /products", "GET /cart", "POST /cart/checkout"), 500, 1500,
                            env={"RATE_CATALOGUE": str(PROOF_LIMITS["catalogue"]), "RATE_CART": str(PROOF_LIMITS["cart"]),
                                 "RATE_FINANCIAL": str(PROOF_LIMITS["financial"]), "RATE_ORDERS": str(PROOF_LIMITS["orders"]),
                                 "RATE_API_KEY_STANDARD": str(PROOF_LIMITS["standard"]),
                                 "RATE_API_KEY_ENTERPRISE": str(PROOF_LIMITS["enterprise"])}),
    "integration": Scenario(5, 5, 30, 2, ("POST /products", "POST /orders", "PATCH /orders/{}/status"), 800, 2000),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="commerce loadtest", description="Run one Locust scenario headless and judge it.")
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--host", help="target a running engine (needs DATABASE_URL and JWT_KEYS of it) instead of starting one")
    p.add_argument("--processes", type=int, help="API processes to start (default per scenario)")
    p.add_argument("-u", "--users", type=int, help="concurrent Locust users")
    p.add_argument("-r", "--spawn-rate", type=float, help="users started per second")
    p.add_argument("-t", "--run-time", type=int, help="seconds of load")
    p.add_argument("--buyers", type=int, help="customers to arrange")
    p.add_argument("--products", type=int, help="products to arrange")
    p.add_argument("--hot-stock", type=int, help="units of the flash-sale product")
    p.add_argument("--out", default="loadtest-results", help="folder for CSV, HTML and summary.json")
    p.add_argument("--p95", action="append", metavar="[NAME=]MS", help="p95 budget; NAME is a request name, default all")
    p.add_argument("--p99", action="append", metavar="[NAME=]MS", help="p99 budget; NAME is a request name, default all")
    p.add_argument("--max-failure-ratio", type=float, default=0.01)
    p.add_argument("--min-rps", type=float, default=0.0, help="minimum whole-run throughput (requests/s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sc = SCENARIOS[args.scenario]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    budgets = b.Budgets(p95_ms=b.parse_named_ms(args.p95, sc.p95), p99_ms=b.parse_named_ms(args.p99, sc.p99),
                        max_failure_ratio=args.max_failure_ratio, min_rps=args.min_rps)
    if args.host:
        db_url, keys = os.environ.get("DATABASE_URL"), os.environ.get("JWT_KEYS")
        if not db_url or not keys:
            sys.exit("commerce loadtest --host: DATABASE_URL and JWT_KEYS of the target engine must be set")
        return judge_run(args, sc, budgets, out, args.host, db_url, keys)
    env = dict(sc.env)
    with EngineRun(processes=args.processes or sc.processes, env=env, label=f"lt_{args.scenario}",
                   log_dir=out) as engine:
        return judge_run(args, sc, budgets, out, engine.base_url, engine.database_url, f"bench:{JWT_SECRET}")


def missing_endpoints(base_url: str, needs: Sequence[str]) -> list[str]:
    """Which of `needs` the engine's OpenAPI document does not declare."""
    with urllib.request.urlopen(base_url + "/api/v1/openapi.json", timeout=10) as r:
        doc = json.load(r)
    have = set()
    for path, ops in doc.get("paths", {}).items():
        norm = _normalise(path.removeprefix("/api/v1"))
        have |= {f"{m.upper()} {norm}" for m in ops}
    return [n for n in needs if n not in have]


def _normalise(path: str) -> str:
    import re

    return re.sub(r"\{[^}]*\}", "{}", path)


def judge_run(args: argparse.Namespace, sc: Scenario, budgets: b.Budgets, out: Path, base_url: str,
              db_url: str, jwt_keys: str) -> int:
    missing = missing_endpoints(base_url, sc.needs)
    if missing:
        print(f"loadtest {args.scenario}: cannot run, missing endpoint(s): {', '.join(missing)}", file=sys.stderr)
        return 2
    skip_kinds = []
    if args.scenario == "rate_limits" and missing_endpoints(base_url, ("GET /orders",)):
        skip_kinds.append("user-orders")
        print("loadtest rate_limits: GET /orders is missing; the orders policy is not proven", file=sys.stderr)
    shop = asyncio.run(arrange_shop(db_url, Tokens(jwt_keys), products=args.products or sc.products,
                                    buyers=args.buyers or sc.buyers, hot_stock=args.hot_stock or sc.hot_stock))
    shop_path = shop.save(out / "shop.json")
    tally_path = out / "tally.json"
    seconds = args.run_time or sc.seconds
    prefix = out / args.scenario
    env = {**os.environ, "PYTHONPATH": str(REPO), "LOADTEST_SHOP": str(shop_path), "LOADTEST_TALLY": str(tally_path),
           "LOADTEST_LIMITS": json.dumps(PROOF_LIMITS), "LOADTEST_SKIP_KINDS": ",".join(skip_kinds)}
    cmd = [sys.executable, "-m", "locust", "-f", str(SCENARIO_DIR / f"{args.scenario}.py"), "--headless",
           "-u", str(args.users or sc.users), "-r", str(args.spawn_rate or sc.spawn_rate), "-t", f"{seconds}s",
           "--host", base_url, "--csv", str(prefix), "--csv-full-history", "--html", str(out / f"{args.scenario}.html"),
           "--only-summary", "--stop-timeout", "5", "--loglevel", "WARNING"]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, timeout=seconds + 120)
    print(f"locust exited {proc.returncode} after {time.monotonic() - started:.0f}s")
    rows, total = b.read_stats(prefix)
    missed = b.verdict(budgets, rows, total)
    tally = json.loads(tally_path.read_text()) if tally_path.exists() else {}
    missed += [f"violation: {v}" for v in tally.get("violations", [])]
    missed += asyncio.run(post_run_checks(args.scenario, shop, tally, db_url))
    # Locust's own report and time series, next to ours (paths relative to summary.json).
    report = {"scenario": args.scenario, "base_url": base_url, "missed": missed,
              "locust_html": f"{args.scenario}.html", "locust_history_csv": f"{args.scenario}_stats_history.csv",
              "requests": total.requests if total else 0, "rps": total.rps if total else 0.0,
              "stats": [asdict(s) for s in rows]}
    if args.scenario == "rate_limits":
        report["rate_limits"] = ratelimit_check.summary(tally.get("calls", {}))
    (out / "summary.json").write_text(json.dumps(report, indent=2))
    for s in rows:
        print(f"  {s.name:45} n={s.requests:6} fail={s.failures:5} p50={s.p50:6.0f} p95={s.p95:6.0f} p99={s.p99:6.0f} ms")
    if missed:
        print(f"loadtest {args.scenario}: FAILED", file=sys.stderr)
        for m in missed:
            print(f"  - {m}", file=sys.stderr)
        return 1
    print(f"Locust report: {out / (args.scenario + '.html')}")
    print(f"loadtest {args.scenario}: every budget met ({out})")
    return 0


async def post_run_checks(scenario: str, shop: Shop, tally: dict, db_url: str) -> list[str]:
    by_user = tally.get("checkouts_2xx", {})
    hot = scenario == "flash_sale"
    problems = await invariants.check_all(
        db_url, hot_stock_id=shop.hot_stock_id if hot else None, hot_stock=shop.hot_stock if hot else None,
        checkouts_2xx=sum(by_user.values()) if hot else None,
        checkouts_2xx_by_user=by_user if scenario in ("flash_sale", "shopper") else None)
    if scenario == "rate_limits":
        calls = tally.get("calls", {})
        limit_of = {c: PROOF_LIMITS[ratelimit_check.KIND_LIMIT[c.split(":", 1)[0]]] for c in calls}
        problems += ratelimit_check.verify(calls, limit_of)
        if not calls:
            problems.append("no rate-limited calls were recorded")
    return problems


if __name__ == "__main__":
    sys.exit(main())
