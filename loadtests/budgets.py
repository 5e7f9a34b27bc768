"""Budgets of a load run, and the verdict on Locust's statistics (pure: no I/O but reading the CSV).

A budget names what it bounds and by how much it was missed, so a failed run says e.g.
`p95 of GET /products/{id}: 312 ms > budget 250 ms (+62 ms, +25%)`.

Per-request-name latency budgets are given as `NAME=MS`; `*` is the default for every name
(the aggregated row is only checked against `*`-free whole-run budgets: failure ratio, throughput).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Budgets:
    p95_ms: dict[str, float] = field(default_factory=lambda: {"*": 500.0})
    p99_ms: dict[str, float] = field(default_factory=lambda: {"*": 1500.0})
    max_failure_ratio: float = 0.01
    min_rps: float = 0.0

    def latency(self, percentile: str, name: str) -> float | None:
        table = self.p95_ms if percentile == "95%" else self.p99_ms
        return table.get(name, table.get("*"))


@dataclass(frozen=True, slots=True)
class Stat:
    name: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float


def parse_named_ms(values: list[str] | None, default: float) -> dict[str, float]:
    """`["*=300", "GET /products=200"]` -> {"*": 300, "GET /products": 200}; a bare number is `*`."""
    out = {"*": default}
    for raw in values or ():
        name, sep, ms = raw.rpartition("=")
        out[name if sep else "*"] = float(ms)
    return out


def read_stats(csv_prefix: Path | str) -> tuple[list[Stat], Stat | None]:
    """Rows of `<prefix>_stats.csv` (Locust): per request name, and the aggregated row."""
    rows, total = [], None
    with open(f"{csv_prefix}_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            name = row["Name"]
            stat = Stat(name, int(row["Request Count"]), int(row["Failure Count"]), float(row["Requests/s"]),
                        _num(row.get("50%")), _num(row.get("95%")), _num(row.get("99%")))
            if row["Name"] == "Aggregated":
                total = stat
            else:
                rows.append(stat)
    return rows, total


def _num(raw: str | None) -> float:
    try:
        return float(raw) if raw not in (None, "", "N/A") else 0.0
    except ValueError:
        return 0.0


def verdict(budgets: Budgets, rows: list[Stat], total: Stat | None) -> list[str]:
    """Every missed budget, as one sentence each (empty: all budgets met)."""
    missed = []
    for stat in rows:
        if stat.requests == 0:
            continue
        for pct, value in (("95%", stat.p95), ("99%", stat.p99)):
            bound = budgets.latency(pct, stat.name)
            if bound is not None and value > bound:
                missed.append(f"p{pct[:2]} of {stat.name}: {value:.0f} ms > budget {bound:.0f} ms "
                              f"(+{value - bound:.0f} ms, +{(value / bound - 1) * 100:.0f}%)")
    if total is None or total.requests == 0:
        missed.append("no requests were made")
        return missed
    ratio = total.failures / total.requests
    if ratio > budgets.max_failure_ratio:
        missed.append(f"failure ratio {ratio:.2%} > budget {budgets.max_failure_ratio:.2%} "
                      f"({total.failures} of {total.requests} requests failed)")
    if total.rps < budgets.min_rps:
        missed.append(f"throughput {total.rps:.1f} req/s < budget {budgets.min_rps:.1f} req/s "
                      f"(-{budgets.min_rps - total.rps:.1f} req/s, -{(1 - total.rps / budgets.min_rps) * 100:.0f}%)")
    return missed
