"""What every scenario shares: the arranged shop, buyer hand-out, and the run's tally.

The shop comes from the JSON file named by LOADTEST_SHOP (written by loadtests.run), or,
without it, from the target's public API (loadtests/scenarios/remote.py: `locust -f ...
--host URL` works against any deployment). The tally (2xx checkouts per user, rate-limit
observations, violations) lives on Locust's `environment`; under distributed Locust each
worker sends what it counted with its stats report and the master adds them up, so the
master's tally is the whole run's. It is written to LOADTEST_TALLY when Locust quits.
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
from loadtests.scenarios import remote

API = "/api/v1"


_ENV: list[Any] = []   # this process's Locust environment (for the report listeners)


def _empty_tally() -> dict[str, Any]:
    return {"checkouts_2xx": defaultdict(int), "violations": [], "calls": defaultdict(list), "notes": []}


@events.init_command_line_parser.add_listener
def _arguments(parser: Any, **_: Any) -> None:
    remote.add_arguments(parser)


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    path = os.environ.get("LOADTEST_SHOP")
    environment.shop = Shop.load(path) if path else None
    environment.remote_shop = not path
    environment.buyer_seq = itertools.count()
    environment.tally = _empty_tally()
    environment.tally_lock = threading.Lock()
    _ENV[:] = [environment]


@events.report_to_master.add_listener
def _send_tally(client_id: str, data: dict, **_: Any) -> None:
    """Worker: hand what was counted since the last report to the master, and start afresh."""
    if not _ENV:
        return
    env = _ENV[0]
    with env.tally_lock:
        data["commerce_tally"], env.tally = env.tally, _empty_tally()


@events.worker_report.add_listener
def _merge_tally(client_id: str, data: dict, **_: Any) -> None:
    """Master: add a worker's counts to the run's tally."""
    part = data.get("commerce_tally")
    if not part or not _ENV:
        return
    env = _ENV[0]
    with env.tally_lock:
        merge_tally(env.tally, part)


def merge_tally(into: dict[str, Any], part: dict[str, Any]) -> None:
    for buyer, n in part.get("checkouts_2xx", {}).items():
        into["checkouts_2xx"][buyer] += n
    for key, calls in part.get("calls", {}).items():
        into["calls"][key].extend(calls)
    into["violations"] = (into["violations"] + list(part.get("violations", [])))[:50]
    into["notes"].extend(part.get("notes", []))


@events.quitting.add_listener
def _write_tally(environment: Any, **_: Any) -> None:
    path = os.environ.get("LOADTEST_TALLY")
    if path and getattr(environment, "tally", None) is not None:
        with open(path, "w") as f:
            json.dump(environment.tally, f)


def shop(user: Any) -> Shop:
    env = user.environment
    if env.shop is None:
        with env.tally_lock:
            if env.shop is None:   # first user of this process: look the shop up through the API
                env.shop = remote.discover(user.host or env.host, env.parsed_options)
    return env.shop


def next_buyer(user: Any) -> Buyer:
    """A distinct buyer per Locust user (wrapping round when there are more users than buyers);
    against a remote shop, a customer registered for this user through the API."""
    s = shop(user)
    if user.environment.remote_shop:
        return remote.register_buyer(user.client, s.tenant_slug)
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
