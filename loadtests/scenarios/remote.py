"""Suites against any deployment, with only its URL (and, for the suites that need them,
staff credentials): `locust -f loadtests/scenarios/browse.py --host https://shop.example`.

When LOADTEST_SHOP is not set (it is set by `commerce loadtest`, which arranges a shop in the
database directly), each Locust process discovers the shop through the public API: categories,
products (up to forty by popularity, without variants), shipping methods. Buyers are registered through
POST /auth/register, one per Locust user, with an address made through the API, so nothing
needs the target's database URL or JWT signing key. Staff credentials (--staff-email /
--staff-password, or LOCUST_STAFF_EMAIL / LOCUST_STAFF_PASSWORD) or --api-key are only passed
on to the suites that call staff or partner routes.
"""

from __future__ import annotations

import uuid
from typing import Any

import requests

from loadtests.fixtures import SEARCH_WORDS, Buyer, Shop

API = "/api/v1"
BUYER_PASSWORD = "loadtest-password-1"


def add_arguments(parser: Any) -> None:
    group = parser   # Locust's own parser: is_secret hides passwords in the web UI
    group.add_argument("--staff-email", env_var="LOCUST_STAFF_EMAIL", default="", help="staff login (optional)")
    group.add_argument("--staff-password", env_var="LOCUST_STAFF_PASSWORD", default="", is_secret=True,
                       help="staff password (optional)")
    group.add_argument("--api-key", env_var="LOCUST_API_KEY", default="", is_secret=True,
                       help="partner API key (optional; the integration suite)")
    group.add_argument("--tenant", env_var="LOCUST_TENANT", default="", help="X-Tenant of every request (optional)")
    group.add_argument("--coupon", env_var="LOCUST_COUPON", default="WELCOME10", help="coupon shoppers try")


def _data(r: requests.Response) -> Any:
    r.raise_for_status()
    return r.json()["data"]


def discover(host: str, options: Any = None) -> Shop:
    """The shop as its public API shows it (no buyers yet: see `register_buyer`)."""
    session, base = requests.Session(), host.rstrip("/")
    tenant = getattr(options, "tenant", "") or ""
    if tenant:
        session.headers["X-Tenant"] = tenant
    categories = _data(session.get(f"{base}{API}/categories", params={"pageSize": 100}, timeout=30))["categories"]
    products = _data(session.get(f"{base}{API}/products", params={"pageSize": 100, "sortBy": "popularity"},
                                 timeout=30))["products"]
    if not products:
        raise RuntimeError(f"{host} lists no products: seed it first (commerce seed)")
    # Buyers' addresses (register_buyer) are in Moscow: the methods serving it.
    methods = _data(session.get(f"{base}{API}/shipping/methods", params={"country": "RU", "postalCode": "101000"},
                                timeout=30))["methods"]
    words = tuple({w.lower() for p in products[:30] for w in str(p.get("name", "")).split() if len(w) > 3})
    staff_token, api_keys = "", {}
    if getattr(options, "staff_email", ""):
        staff_token = login(base, options.staff_email, options.staff_password, tenant)
    if getattr(options, "api_key", ""):
        api_keys = {"standard": options.api_key, "enterprise": options.api_key}
    # Buyers add products without choosing a variant: keep the first 40 that have none.
    simple = [p["id"] for p in products[:40] if p.get("stockQuantity", 1) > 0
              and not _data(session.get(f"{base}{API}/products/{p['id']}", timeout=30)).get("variants")]
    if not simple:
        raise RuntimeError(f"{host}: none of its first products can be bought without choosing a variant")
    first = simple[0]
    return Shop(tenant_id="", tenant_slug=tenant, category_ids={c["slug"]: c["id"] for c in categories},
                product_ids=simple, hot_product_id=first, hot_stock_id="", hot_stock=0,
                shipping_method_id=(methods[0]["id"] if methods else ""), coupon=getattr(options, "coupon", "WELCOME10"),
                staff_token=staff_token, api_keys=api_keys, buyers=[], password=BUYER_PASSWORD,
                search_words=words or SEARCH_WORDS)


def login(base: str, email: str, password: str, tenant: str = "") -> str:
    headers = {"X-Tenant": tenant} if tenant else {}
    r = requests.post(f"{base}{API}/auth/login", json={"email": email, "password": password}, headers=headers,
                      timeout=30)
    return _data(r)["accessToken"]


def register_buyer(client: Any, tenant: str = "") -> Buyer:
    """A new customer with a default address, made through the API by a Locust user's client
    (so the calls show in the statistics)."""
    email = f"lt-{uuid.uuid4().hex[:16]}@loadtest.example"
    headers = {"X-Tenant": tenant} if tenant else {}
    r = client.post(f"{API}/auth/register", json={"email": email, "password": BUYER_PASSWORD,
                                                  "name": "Load Test Buyer"},
                    headers=headers, name="POST /auth/register")
    body = r.json()["data"]
    token = body["accessToken"]
    user_id = body.get("user", {}).get("id", "")
    headers = {**headers, "Authorization": f"Bearer {token}"}
    a = client.post(f"{API}/addresses", json={"recipientName": "Load Test Buyer", "street": "1 Test Street",
                                              "city": "Moscow", "region": "Moscow", "country": "RU",
                                              "postalCode": "101000", "isDefault": True},
                    headers=headers, name="POST /addresses")
    address_id = (a.json().get("data") or {}).get("id", "") if a.status_code < 300 else ""
    return Buyer(id=user_id, email=email, token=token, address_id=address_id)
