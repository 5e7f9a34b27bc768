"""Rate limits: callers of every kind hammer their policy until refused, across the API
processes. Each response is checked at once (headers present and consistent; a refusal is 429
RATE_LIMIT_EXCEEDED with Retry-After); after the run `loadtests.ratelimit_check` proves that
exactly the budget was admitted per caller in the window.

Caller kinds (Locust users are dealt round-robin over them): anonymous (one caller: the
address), a user on each policy (catalogue, cart, financial, orders), and an API key of each
plan. The limits are LOADTEST_LIMITS (JSON), the same values the API processes were given.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from locust import HttpUser, constant, task

from loadtests.scenarios.common import API, bearer, error_code, next_buyer, shop

# kind -> (method, path, expected X-RateLimit-Policy, limit name in LOADTEST_LIMITS)
KINDS = {
    "anonymous": ("GET", "/products", "catalogue", "catalogue"),
    "user-catalogue": ("GET", "/products", "catalogue", "catalogue"),
    "user-cart": ("GET", "/cart", "cart", "cart"),
    "user-financial": ("POST", "/cart/checkout", "financial", "financial"),
    "user-orders": ("GET", "/orders", "orders", "orders"),
    "key-standard": ("GET", "/products", "api-key-standard", "standard"),
    "key-enterprise": ("GET", "/products", "api-key-enterprise", "enterprise"),
}


def active_kinds() -> list[str]:
    skipped = set(filter(None, os.environ.get("LOADTEST_SKIP_KINDS", "").split(",")))
    return [k for k in KINDS if k not in skipped]


class LimitedCaller(HttpUser):
    wait_time = constant(0.05)

    def on_start(self) -> None:
        s, kinds = shop(self), active_kinds()
        self.limits = json.loads(os.environ.get("LOADTEST_LIMITS", "{}"))
        seq = next(self.environment.buyer_seq)
        self.kind = kinds[seq % len(kinds)]
        buyer = s.buyers[seq % len(s.buyers)]
        self.headers: dict[str, str] = {}
        if self.kind.startswith("user-"):
            self.headers = bearer(buyer.token)
            self.caller = f"{self.kind}:{buyer.id}"
        elif self.kind.startswith("key-"):
            self.headers = {"X-API-Key": s.api_keys[self.kind[4:]]}
            self.caller = self.kind
        else:
            self.caller = "anonymous"
        self.body = ({"shippingAddressId": buyer.address_id, "shippingMethodId": s.shipping_method_id,
                      "paymentMethod": "CARD"} if self.kind == "user-financial" else None)

    @task
    def call(self) -> None:
        method, path, policy, limit_name = KINDS[self.kind]
        limit = int(self.limits[limit_name])
        started = time.time()
        with self.client.request(method, API + path, json=self.body, headers=self.headers,
                                 name=f"{self.kind} {method} {path}", catch_response=True) as r:
            h = r.headers
            row = [started, r.status_code, h.get("X-RateLimit-Limit"), h.get("X-RateLimit-Remaining"),
                   h.get("X-RateLimit-Reset"), h.get("X-RateLimit-Policy"), h.get("Retry-After"), error_code(r)]
            with self.environment.tally_lock:
                self.environment.tally["calls"][self.caller].append(row)
            problem = header_problem(row, limit, policy)
            if problem:
                r.failure(problem)
            else:
                r.success()


def header_problem(row: list[Any], limit: int, policy: str) -> str | None:
    """What is wrong with one answer's rate-limit headers (None: nothing)."""
    _, status, lim, remaining, reset, pol, retry, code = row
    if status >= 500:
        return f"{status} {code}"
    if lim is None or remaining is None or reset is None or pol is None:
        return f"{status} without X-RateLimit-* headers"
    if int(lim) != limit or pol != policy:
        return f"limit/policy {lim}/{pol}, expected {limit}/{policy}"
    if not 0 <= int(remaining) < limit:
        return f"X-RateLimit-Remaining {remaining} outside 0..{limit - 1}"
    if status == 429:
        if code != "RATE_LIMIT_EXCEEDED" or retry is None or not 1 <= int(retry) <= 60 or int(remaining) != 0:
            return f"bad refusal: code {code}, Retry-After {retry}, remaining {remaining}"
    return None
