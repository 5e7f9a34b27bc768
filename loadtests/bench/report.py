"""BENCHMARKS.md and its PNG charts from one benchmark run's results."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from loadtests.bench.measure import Series, ratio


def _series_table(series: list[Series]) -> list[str]:
    lines = ["| configuration | concurrency | successes/s (median) | spread (min–max) | p50 ms | p99 ms | runs |"
             " generator CPU | API CPU (cores) | mean batch |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in series:
        r = s.row()
        batch = f"{r['mean_batch']:.1f}" if r.get("mean_batch") else "-"
        lines.append(f"| {s.name} | {s.concurrency} | {r['rate']:.0f} | {r['spread']} | {r['p50']:.1f} | {r['p99']:.1f}"
                     f" | {r['runs']} | {r['gen_cpu']:.0%} | {r['server_cpu']:.2f} | {batch} |")
    return lines


def chart(series: list[Series], title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    groups: dict[str, list[Series]] = {}
    for s in series:
        groups.setdefault(s.name, []).append(s)
    for name, items in groups.items():
        items.sort(key=lambda s: s.concurrency)
        xs = [s.concurrency for s in items]
        a.plot(xs, [s.rate for s in items], marker="o", label=name)
        b.plot(xs, [s.p99 for s in items], marker="o", label=name)
    a.set(title=f"{title}: throughput", xlabel="concurrency", ylabel="successes/s")
    b.set(title=f"{title}: p99", xlabel="concurrency", ylabel="ms")
    a.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def verdict(met: bool) -> str:
    return "met" if met else "**MISSED**"


def write(results: dict, out: Path, charts_dir: Path) -> Path:
    """Render everything in `results` (sections that did not run say why)."""
    lines = ["# Benchmarks", "",
             f"One run of `commerce bench{' --quick' if results['quick'] else ''}` on {os.cpu_count()} cores"
             f" ({platform.processor() or platform.machine()}), Python {platform.python_version()},"
             f" {results['processes']} API process(es), PostgreSQL and Redis on the same machine, load generator"
             " (asyncio + aiohttp, one process, closed loop) on the same machine too. Every figure is the median"
             f" of {results['runs']} runs of {results['seconds']:.0f} s; the spread is min–max. Generator CPU is the"
             " share of one core the load generator used (near 100 % would mean it, not the engine, was the limit).",
             f"Total bench time {results['elapsed']:.0f} s.", ""]
    head = len(lines)
    budgets: list[str] = []
    rel = lambda p: os.path.relpath(p, out.parent)  # noqa: E731

    def section(title: str, key: str, note: str) -> list[Series] | None:
        lines.extend([f"## {title}", "", note, ""])
        data = results.get(key)
        if data is None or "error" in (data or {}):
            reason = (data or {}).get("error", "not run")
            lines.extend([f"Not measured: {reason}", ""])
            budgets.append(f"- {title}: not measured ({reason}).")
            return None
        lines.extend(_series_table(data["series"]))
        png = chart(data["series"], title, charts_dir / f"{key}.png")
        lines.extend(["", f"![{title}]({rel(png)})", ""])
        for v in data.get("violations", []):
            lines.append(f"- **VIOLATION**: {v}")
        if "violations" in data:
            lines.extend([f"Oversell / duplicate orders: {'none' if not data['violations'] else 'FOUND (see above)'}.", ""])
        return data["series"]

    def find(series: list[Series], name: str, c: int) -> Series | None:
        return next((s for s in series if s.name.startswith(name) and s.concurrency == c), None)

    s = section("1. Flash sale", "flash", "Buyers each check out a cart holding one hot product (one stock row)."
                " Actor mode coalesces reservations per product; single mode runs one transaction per reservation;"
                " the raw row is the database's own rate for one conditional UPDATE per transaction on one row.")
    if s:
        for c in sorted({x.concurrency for x in s}):
            a, base, raw = find(s, "HTTP checkout, batched", c), find(s, "HTTP checkout, single", c), find(s, "raw", c)
            if a and base and raw:
                r1, r2 = ratio(a.rate, base.rate), ratio(a.rate, raw.rate)
                line = f"- {c} buyers: actor/baseline {r1:.2f}×, actor/raw UPDATE {r2:.2f}×"
                if c == 64:
                    line += (f" (budget ≥ 3× baseline: {verdict(r1 >= 3)}; ≥ 1.0× raw: {verdict(r2 >= 1)};"
                             f" zero oversell: {verdict(not results['flash']['violations'])})")
                    budgets.append(f"- Flash sale (64): actor {r1:.2f}× baseline ({verdict(r1 >= 3)}),"
                                   f" {r2:.2f}× raw UPDATE ({verdict(r2 >= 1)}).")
                lines.append(line)
        lines.append("")
    s = section("2. Checkout across many products", "checkout", f"Each buyer's cart holds one of"
                f" {results.get('products', 0)} products; the ceiling drives the same transaction shape (lock cart,"
                " read lines, conditional UPDATE, order + lines + history + outbox, empty cart) with asyncpg directly.")
    if s and len(s) == 2:
        r = ratio(s[0].rate, s[1].rate)
        lines.extend([f"- engine / direct ceiling: {r:.0%} (budget ≥ 50 %: {verdict(r >= 0.5)})", ""])
        budgets.append(f"- Checkout across many products: {r:.0%} of the direct ceiling ({verdict(r >= 0.5)}).")
    s = section("3. Catalogue reads", "reads", "Engine (rate limiter on, as deployed) against a bare aiohttp+asyncpg"
                " endpoint running the same select, same process count, same generator; runs interleaved.")
    if s:
        for c in sorted({x.concurrency for x in s}):
            for name in ("GET /products/{id}", "GET /products (filtered)"):
                e, b = find(s, f"{name} engine", c), find(s, f"{name} bare", c)
                if e and b:
                    r = ratio(e.rate, b.rate)
                    line = f"- {name} at {c}: engine {r:.0%} of bare, engine p99 {e.p99:.1f} ms"
                    if name == "GET /products/{id}" and c == 64:
                        line += f" (budget ≥ 60 %: {verdict(r >= 0.6)}; p99 < 20 ms: {verdict(e.p99 < 20)})"
                        budgets.append(f"- GET /products/{{id}} (64): {r:.0%} of bare ({verdict(r >= 0.6)}),"
                                       f" p99 {e.p99:.1f} ms ({verdict(e.p99 < 20)}).")
                    lines.append(line)
        lines.append("")
    s = section("4. Rate-limit overhead", "limiter", "The same GET /products/{id} with RATE_LIMIT_ENABLED on and off"
                " (API restarted between, runs alternated).")
    if s and len(s) == 2:
        cost = 1 - ratio(s[0].rate, s[1].rate)
        lines.extend([f"- limiter costs {cost:.1%} of throughput (budget ≤ 10 %: {verdict(cost <= 0.10)})", ""])
        budgets.append(f"- Rate limiter: costs {cost:.1%} ({verdict(cost <= 0.10)}).")
    lines.extend(["## 5. Memory", ""])
    m = results.get("memory")
    if not m or "error" in m:
        reason = (m or {}).get("error", "not run")
        lines.extend([f"Not measured: {reason}", ""])
        budgets.append(f"- Memory: not measured ({reason}).")
    else:
        n = max(m["users"], 1)
        live = (m["peak"] - m["start"]) / n
        idle = (m["after"] - m["start"]) / n
        back = ratio(m["after"], m["start"]) - 1
        lines.extend([f"One API process; {m['users']} distinct users each GET /cart (through their user actor) in"
                      f" {m['seconds']:.0f} s; ACTOR_IDLE_SECONDS={m['idle_seconds']:g}.", "",
                      "| | RSS (MiB) | per user |", "|---|---|---|",
                      f"| at rest (warm) | {m['start'] / 2**20:.1f} | |",
                      f"| all users touched ({m['live_at_peak']:.0f} actors live) | {m['peak'] / 2**20:.1f} | {live:.0f} B |",
                      f"| after eviction (waited {m['evict_wait']:.0f} s) | {m['after'] / 2**20:.1f} | {idle:.0f} B |", "",
                      f"- per idle user after eviction: {idle:.0f} B (budget ≤ 2048 B: {verdict(idle <= 2048)})",
                      f"- RSS after eviction is {back:+.1%} of the start (budget within 10 %: {verdict(abs(back) <= 0.10)})",
                      ""])
        budgets.append(f"- Memory: {idle:.0f} B per idle user ({verdict(idle <= 2048)}), RSS {back:+.1%} of start"
                       f" ({verdict(abs(back) <= 0.10)}).")
    lines[head:head] = ["## Budgets at a glance", "", *budgets, ""]
    out.write_text("\n".join(lines) + "\n")
    return out
