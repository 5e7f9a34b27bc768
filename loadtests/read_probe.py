"""A quick, self-contained probe of the catalogue read path (the ratios of bench sections 3 and 4,
in one run, at one concurrency):

    .venv/bin/python -m loadtests.read_probe [--seconds 3] [--runs 3] [--concurrency 64]
        [--processes 2]

It starts the engine (`python -m ops.cli serve`, via EngineRun) and the bare aiohttp+asyncpg
server on one fresh database, then alternates, `runs` times: engine with the limiter on, the
bare server, engine with the limiter off; all on GET /api/v1/products/{id} with loadgen's
closed loop. It prints the medians and the two ratios the budgets are about:
engine(limiter on) / bare, and 1 - on/off (the limiter's cost). Only ratios within one run
mean anything on a shared machine. It also prints the server processes' CPU time per request
(API processes only; PostgreSQL and Redis not included), steadier than rates when the machine is busy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from loadtests.bench.measure import Series
from loadtests.bench.reads import BareServer, _measure, _paths
from loadtests.engine_run import GENEROUS_LIMITS, JWT_SECRET, EngineRun
from loadtests.fixtures import Tokens, arrange_shop


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--processes", type=int, default=2)
    a = p.parse_args()
    with EngineRun(processes=a.processes, env=dict(GENEROUS_LIMITS), label="probe") as engine:
        shop = asyncio.run(arrange_shop(engine.database_url, Tokens(f"bench:{JWT_SECRET}"), products=2000,
                                        buyers=10, reviews=0))
        path = _paths(shop)["GET /products/{id}"]
        c = a.concurrency
        on, off, bare_s = Series("limiter on", c), Series("limiter off", c), Series("bare", c)
        cpu_ms: dict[str, list[float]] = {"limiter on": [], "limiter off": [], "bare": []}

        def run(base: str, cpu, series: Series) -> None:
            asyncio.run(_measure(base, path, c, 0.5, cpu))  # warm-up (connections, statement cache)
            r, ok, used = asyncio.run(_measure(base, path, c, a.seconds, cpu))
            series.add(r, ok, used)
            cpu_ms[series.name].append(used * 1000 / ok if ok else 0.0)
            print(f"  {series.name:12s} {series.rates[-1]:8.0f}/s p50 {r.p50:6.1f} ms p99 {r.p99:6.1f} ms"
                  f" server CPU {cpu_ms[series.name][-1]:.2f} ms/request generator {r.cpu_share:.0%} of a core"
                  f" errors {sum(v for k, v in r.statuses.items() if k != 200)}", flush=True)

        with BareServer(engine.database_url, engine.processes) as bare:
            for i in range(a.runs):
                print(f"round {i + 1}", flush=True)
                engine.restart_api(RATE_LIMIT_ENABLED="true")
                run(engine.base_url, engine.api_cpu_seconds, on)
                run(bare.base_url, bare.cpu_seconds, bare_s)
                engine.restart_api(RATE_LIMIT_ENABLED="false")
                run(engine.base_url, engine.api_cpu_seconds, off)
        ratios = [o / b for o, b in zip(on.rates, bare_s.rates) if b]
        costs = [1 - o / f for o, f in zip(on.rates, off.rates) if f]
        print(f"medians: on {on.rate:.0f}/s (p99 {on.p99:.1f} ms), off {off.rate:.0f}/s (p99 {off.p99:.1f} ms),"
              f" bare {bare_s.rate:.0f}/s (p99 {bare_s.p99:.1f} ms)")
        print(f"engine(limiter on)/bare: {statistics.median(ratios):.1%} per round {[f'{r:.0%}' for r in ratios]}")
        print(f"limiter cost 1-on/off:  {statistics.median(costs):.1%} per round {[f'{r:.0%}' for r in costs]}")
        med = {k: statistics.median(x) for k, x in cpu_ms.items()}
        print(f"server CPU per request (ms, median): on {med['limiter on']:.2f}, off {med['limiter off']:.2f},"
              f" bare {med['bare']:.2f}; bare/on {med['bare'] / med['limiter on']:.1%},"
              f" limiter share {1 - med['limiter off'] / med['limiter on']:.1%}")


if __name__ == "__main__":
    main()
