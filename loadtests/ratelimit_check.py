"""After a rate-limit run: exactly the budget was admitted per caller per window (pure).

Per caller, the answers are ordered by send time. The first window starts at the first
admitted request; every caller that was refused at least once must have been admitted exactly
`limit` times before the window's end (minus a small margin for clock and transit), and no
60-second window may hold more than `limit` admissions.
"""

from __future__ import annotations

from typing import Any, Mapping

# Caller kind (loadtests/scenarios/rate_limits.py) -> the limit it meets.
KIND_LIMIT = {"anonymous": "catalogue", "user-catalogue": "catalogue", "user-cart": "cart",
              "user-financial": "financial", "user-orders": "orders", "key-standard": "standard",
              "key-enterprise": "enterprise"}
WINDOW = 60.0
MARGIN = 1.0


def verify(calls: Mapping[str, list[list[Any]]], limit_of: Mapping[str, int]) -> list[str]:
    """`calls`: caller -> rows [sent, status, ...]; `limit_of`: caller -> its limit."""
    bad = []
    for caller, rows in calls.items():
        limit = limit_of[caller]
        rows = sorted(rows, key=lambda r: r[0])
        admitted = [r[0] for r in rows if r[1] != 429 and r[1] < 500]
        refused = [r for r in rows if r[1] == 429]
        if not admitted:
            bad.append(f"{caller}: nothing admitted")
            continue
        first = admitted[0]
        in_window = [t for t in admitted if t < first + WINDOW - MARGIN]
        if len(in_window) > limit:
            bad.append(f"{caller}: {len(in_window)} admitted in one window > limit {limit} (+{len(in_window) - limit})")
        elif refused and refused[0][0] < first + WINDOW - MARGIN and len(in_window) != limit:
            bad.append(f"{caller}: refused after {len(in_window)} admissions, limit is {limit} "
                       f"({len(in_window) - limit:+d})")
        j = 0
        for i, t in enumerate(admitted):  # any sliding window, not just the first
            while admitted[j] <= t - WINDOW - MARGIN:
                j += 1
            if i - j + 1 > limit:
                bad.append(f"{caller}: {i - j + 1} admitted within 60 s ending {t:.0f} > limit {limit}")
                break
    return bad


def summary(calls: Mapping[str, list[list[Any]]]) -> dict[str, dict[str, int]]:
    return {c: {"admitted": sum(1 for r in rows if r[1] != 429 and r[1] < 500),
                "refused": sum(1 for r in rows if r[1] == 429)} for c, rows in calls.items()}
