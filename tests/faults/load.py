"""Steady checkout load from a few concurrent buyers, in a background thread with its own loop.

Each buyer, until told to stop: puts one unit in the cart, then checks out with a fresh
`Idempotency-Key`, retrying THE SAME key (against the next API process on connection errors,
timeouts, 503 and 409-in-progress) until it has a definite answer or the key's deadline passes.
So every key ends `ok` (2xx, with its order id), `refused` (a 4xx), or `undecided` (reported).

Without the checkout endpoint (`mode="cart"`) the buyers only write their carts: the faults,
the 503s and the recovery are still exercised, the stock promises are not.

Every attempt is recorded with its start/end (monotonic), status and Retry-After, so a scenario
can ask afterwards: any 500? any 503 without Retry-After? any request that hung past its
timeout? when was the first success after the dependency came back?

`browsers` (a flash sale's bystanders) meanwhile read the catalogue and their carts and put the
product in and out of their carts: ops "browse" and "cart", held to the same 500/503/hang rules.
`settle_undecided` asks again, with the same key, for every checkout left undecided when the
load stopped: the stored answer (or a definite refusal) is what the buyer would finally see.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

RETRYABLE = {409, 429, 502, 503, 504}


@dataclass
class Attempt:
    buyer: int
    op: str                 # "add", "checkout"
    key: str | None
    api: str
    started: float
    ended: float
    status: int | None      # None: no HTTP answer (connection refused/reset, or timeout)
    error: str | None = None
    retry_after: str | None = None
    code: str | None = None
    order_id: str | None = None

    @property
    def elapsed(self) -> float:
        return self.ended - self.started


@dataclass
class Buyer:
    user_id: uuid.UUID
    token: str
    address_id: uuid.UUID | None = None


@dataclass
class LoadReport:
    attempts: list[Attempt] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)           # key -> ok | refused | undecided
    orders_by_key: dict[str, set[str]] = field(default_factory=dict)
    key_owner: dict[str, int] = field(default_factory=dict)      # key -> buyer index

    def server_errors(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status is not None and a.status >= 500 and a.status != 503]

    def unavailable_without_retry_after(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status == 503 and not a.retry_after]

    def hangs(self, limit: float) -> list[Attempt]:
        return [a for a in self.attempts if a.error == "timeout" or a.elapsed > limit]

    def successes(self, op: str | None = None) -> list[Attempt]:
        return [a for a in self.attempts if a.status is not None and 200 <= a.status < 300 and (op is None or a.op == op)]

    def first_success_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the end of the first 2xx request that started after it."""
        ends = [a.ended for a in self.successes() if a.started >= moment]
        return min(ends) - moment if ends else None

    def count(self, status: int | None) -> int:
        return sum(1 for a in self.attempts if a.status == status)

    def summary(self) -> dict[str, Any]:
        statuses: dict[str, int] = {}
        for a in self.attempts:
            label = str(a.status) if a.status is not None else (a.error or "no-answer")
            statuses[label] = statuses.get(label, 0) + 1
        outcome: dict[str, int] = {}
        for v in self.keys.values():
            outcome[v] = outcome.get(v, 0) + 1
        return {"requests": len(self.attempts), "statuses": statuses, "checkout_keys": outcome}


class CheckoutLoad:
    def __init__(self, api_urls: list[str], buyers: list[Buyer], *, tenant_slug: str, product_id: str,
                 shipping_method_id: str | None, mode: str = "checkout", request_timeout: float = 8.0,
                 key_deadline: float = 40.0, pause: float = 0.02, browsers: list[Buyer] | None = None) -> None:
        self.api_urls = api_urls
        self.buyers = buyers
        self.tenant_slug = tenant_slug
        self.product_id = product_id
        self.shipping_method_id = shipping_method_id
        self.mode = mode
        self.request_timeout = request_timeout
        self.key_deadline = key_deadline
        self.pause = pause
        self.browsers = browsers or []
        self.report = LoadReport()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- control (from the test's thread) ---------------------------------------------------

    def start(self) -> "CheckoutLoad":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="checkout-load", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> LoadReport:
        """Stop starting new keys; let each buyer settle its current key (bounded), then return."""
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout if timeout is not None else self.key_deadline + self.request_timeout + 5)
        if self._thread.is_alive():
            raise RuntimeError("load did not stop in time")
        return self.report

    def successes_so_far(self) -> int:
        with self._lock:
            return len(self.report.successes())

    # -- buyers -------------------------------------------------------------------------------

    async def _main(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        connector = aiohttp.TCPConnector(limit=0, force_close=True)  # a killed API must not poison a pool
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await asyncio.gather(*(self._buyer(session, i, b) for i, b in enumerate(self.buyers)),
                                 *(self._browser(session, i, b) for i, b in enumerate(self.browsers)))

    async def _call(self, session: aiohttp.ClientSession, buyer: int, op: str, api: str, method: str, path: str,
                    token: str, body: Any, key: str | None) -> Attempt:
        headers = {"Authorization": f"Bearer {token}", "X-Tenant": self.tenant_slug}
        if key:
            headers["Idempotency-Key"] = key
        started = time.monotonic()
        attempt = Attempt(buyer, op, key, api, started, started, None)
        try:
            async with session.request(method, api + path, json=body, headers=headers) as r:
                payload = await r.json(content_type=None)
                attempt.status = r.status
                attempt.retry_after = r.headers.get("Retry-After")
                if isinstance(payload, dict):
                    if payload.get("success") is False:
                        attempt.code = (payload.get("error") or {}).get("code")
                    elif isinstance(payload.get("data"), dict):
                        attempt.order_id = payload["data"].get("orderId")
        except asyncio.TimeoutError:
            attempt.error = "timeout"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            attempt.error = type(exc).__name__
        attempt.ended = time.monotonic()
        with self._lock:
            self.report.attempts.append(attempt)
        return attempt

    async def _buyer(self, session: aiohttp.ClientSession, index: int, buyer: Buyer) -> None:
        home = index % len(self.api_urls)
        while not self._stop.is_set():
            api = self.api_urls[home]
            added = await self._call(session, index, "add", api, "POST", "/api/v1/cart/items", buyer.token,
                                     {"productId": self.product_id, "quantity": 1}, None)
            if added.status is None or added.status >= 500:
                home = (home + 1) % len(self.api_urls)  # that process is gone or sick: use the other
                await asyncio.sleep(0.1)
                continue
            if self.mode == "checkout" and added.status == 201:
                await self._checkout(session, index, buyer, home)
            elif self.mode == "cart" or added.status == 400:
                # Cart-only load (or a full line): empty the cart so quantities stay in bounds.
                await self._call(session, index, "clear", api, "DELETE", "/api/v1/cart", buyer.token, None, None)
            await asyncio.sleep(self.pause)

    async def _browser(self, session: aiohttp.ClientSession, index: int, who: Buyer) -> None:
        """Catalogue reads and cart writes of a bystander: never a checkout."""
        home = index % len(self.api_urls)
        steps = [("browse", "GET", "/api/v1/products?limit=20", None),
                 ("browse", "GET", f"/api/v1/products/{self.product_id}", None),
                 ("cart", "POST", "/api/v1/cart/items", {"productId": self.product_id, "quantity": 1}),
                 ("cart", "GET", "/api/v1/cart", None),
                 ("cart", "DELETE", "/api/v1/cart", None)]
        step = 0
        while not self._stop.is_set():
            op, method, path, body = steps[step % len(steps)]
            a = await self._call(session, -1 - index, op, self.api_urls[home], method, path, who.token, body, None)
            if a.status is None or a.status >= 500:
                home = (home + 1) % len(self.api_urls)
                await asyncio.sleep(0.1)
            step += 1
            await asyncio.sleep(self.pause * 5)

    def _body(self, buyer: Buyer) -> dict[str, Any]:
        return {"shippingAddressId": str(buyer.address_id), "shippingMethodId": self.shipping_method_id,
                "paymentMethod": "CARD"}

    async def _checkout(self, session: aiohttp.ClientSession, index: int, buyer: Buyer, home: int,
                        key: str | None = None) -> str:
        key = key or f"fault-{uuid.uuid4()}"
        with self._lock:
            self.report.key_owner[key] = index
        body = self._body(buyer)
        deadline = time.monotonic() + self.key_deadline
        target = home
        outcome = "undecided"
        while time.monotonic() < deadline:
            a = await self._call(session, index, "checkout", self.api_urls[target], "POST", "/api/v1/cart/checkout",
                                 buyer.token, body, key)
            if a.status is not None and 200 <= a.status < 300:
                outcome = "ok"
                with self._lock:
                    self.report.orders_by_key.setdefault(key, set()).add(a.order_id or "?")
                break
            if a.status is not None and a.status < 500 and a.status not in RETRYABLE:
                outcome = "refused"
                break
            # No answer, a 5xx or a 503: same key, next process, a short backoff.
            target = (target + 1) % len(self.api_urls)
            await asyncio.sleep(0.2)
        with self._lock:
            self.report.keys[key] = outcome
        if outcome == "refused":
            # e.g. INSUFFICIENT_STOCK: empty the cart so the next round starts clean.
            await self._call(session, index, "clear", self.api_urls[home], "DELETE", "/api/v1/cart", buyer.token, None, None)
        return outcome

    def settle_undecided(self, deadline: float = 30.0) -> dict[str, str]:
        """After `stop`: retry every undecided key (same key, same body) until it is decided.
        Returns {key: outcome} of the keys it asked about."""
        undecided = [k for k, v in self.report.keys.items() if v == "undecided"]
        if not undecided:
            return {}
        self.key_deadline = deadline
        self._stop.clear()

        async def again() -> dict[str, str]:
            timeout = aiohttp.ClientTimeout(total=self.request_timeout)
            async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(force_close=True)) as s:
                got = await asyncio.gather(*(self._checkout(s, self.report.key_owner[k],
                                                            self.buyers[self.report.key_owner[k]], 0, key=k)
                                             for k in undecided))
            return dict(zip(undecided, got))

        return asyncio.run(again())
