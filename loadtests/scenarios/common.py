"""What every scenario shares: the arranged shop, buyer hand-out, and the run's tally.

The shop comes from the JSON file named by LOADTEST_SHOP (written by loadtests.run). The
tally (2xx checkouts per user, rate-limit observations, violations) lives on Locust's
`environment` and is written to LOADTEST_TALLY when Locust quits, for the post-run checks.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import uuid
from collections import defaultdict
from typing import Any

from locust import events

from loadtests.fixtures import Buyer, Shop

API = "/api/v1"


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    path = os.environ.get("LOADTEST_SHOP")
    environment.shop = Shop.load(path) if path else None
    environment.buyer_seq = itertools.count()
    environment.tally = {"checkouts_2xx": defaultdict(int), "violations": [], "calls": defaultdict(list),
                         "notes": []}
    environment.tally_lock = threading.Lock()


@events.quitting.add_listener
def _write_tally(environment: Any, **_: Any) -> None:
    path = os.environ.get("LOADTEST_TALLY")
    if path and getattr(environment, "tally", None) is not None:
        with open(path, "w") as f:
            json.dump(environment.tally, f)


def shop(user: Any) -> Shop:
    return user.environment.shop


def next_buyer(user: Any) -> Buyer:
    """A distinct buyer per Locust user (wrapping round when there are more users than buyers)."""
    s = shop(user)
    return s.buyers[next(user.environment.buyer_seq) % len(s.buyers)]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def idempotency() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def record_checkout(user: Any, buyer_id: str) -> None:
    with user.environment.tally_lock:
        user.environment.tally["checkouts_2xx"][buyer_id] += 1


def violation(user: Any, text: str) -> None:
    with user.environment.tally_lock:
        if len(user.environment.tally["violations"]) < 50:
            user.environment.tally["violations"].append(text)


def data(response: Any) -> Any:
    try:
        return response.json().get("data")
    except (ValueError, AttributeError):
        return None


def error_code(response: Any) -> str | None:
    try:
        return (response.json().get("error") or {}).get("code")
    except (ValueError, AttributeError):
        return None
