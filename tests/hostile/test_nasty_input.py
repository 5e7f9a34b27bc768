"""Malformed and malicious request shapes: each gets its documented 4xx, never a 500.

Mass assignment, oversized pages, 1 MB+ bodies, 100 000-deep JSON, NUL bytes, invalid UTF-8,
numbers beyond 64 bits, negative/zero/huge quantities, duplicated query parameters, wrong
content type, ids that are not UUIDs.
"""

from __future__ import annotations

import uuid

import pytest

ITEMS = "/api/v1/cart/items"


@pytest.fixture
async def shopper(tenant):
    return await tenant.user("customer")


@pytest.fixture
async def product(api, tenant) -> str:
    staff = await tenant.user("staff")
    r = await api.post("/api/v1/products", as_=staff, json={"name": "Hostile boot", "sku": f"HB-{uuid.uuid4().hex[:8]}",
                                                           "price": 100, "stockQuantity": 50})
    return r.data["id"]


def _json(raw: bytes) -> dict:
    return {"data": raw, "headers": {"Content-Type": "application/json"}}


async def _code(r) -> str:
    return r.error["code"]


# ----------------------------------------------------------------------------- mass assignment

async def test_register_cannot_choose_role_or_permissions(api) -> None:
    r = await api.post("/api/v1/auth/register", json={"email": "mass@example.com", "password": "password-123!",
                                                      "role": "staff", "permissions": ["*"]})
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR"


async def test_read_only_product_fields_are_refused(api, tenant, product) -> None:
    staff = await tenant.user("staff")
    for field, value in (("id", str(uuid.uuid4())), ("ratingCount", 5), ("tenantId", str(uuid.uuid4())),
                         ("unitsSold", 1000), ("createdAt", "2020-01-01T00:00:00Z")):
        r = await api.patch(f"/api/v1/products/{product}", as_=staff, json={field: value})
        assert r.status == 400, (field, r.status, r.body)


async def test_address_owner_cannot_be_assigned(api, shopper) -> None:
    r = await api.post("/api/v1/addresses", as_=shopper, json={
        "recipientName": "X", "street": "S 1", "city": "C", "region": "R", "country": "RU", "postalCode": "101000",
        "userId": str(uuid.uuid4())})
    assert r.status == 400


# ----------------------------------------------------------------------------- sizes and depth

@pytest.mark.parametrize("query", [{"pageSize": "1000"}, {"pageSize": "0"}, {"page": "0"}, {"page": "-1"},
                                   {"page": str(2**64)}, {"pageSize": "1e3"}, {"page": "abc"}])
async def test_oversized_or_bad_pages(api, query) -> None:
    r = await api.get("/api/v1/products", params=query)
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", (query, r.status)


async def test_body_over_one_megabyte_is_413(api, shopper) -> None:
    big = b'{"productId": "' + b"a" * (1_100_000) + b'", "quantity": 1}'
    r = await api.post(ITEMS, as_=shopper, **_json(big))
    assert r.status == 413 and r.error["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("opener,closer", [(b"[", b"]"), (b'{"a":', b"}")])
async def test_json_nested_100000_deep(api, shopper, opener, closer) -> None:
    deep = opener * 100_000 + b"1" + closer * 100_000
    r = await api.post(ITEMS, as_=shopper, **_json(deep))
    assert r.status in (400, 413), r.status
    assert r.error["code"] in ("VALIDATION_ERROR", "PAYLOAD_TOO_LARGE")


# ----------------------------------------------------------------------------- encodings

async def test_nul_in_json_string(api, shopper) -> None:
    r = await api.post("/api/v1/addresses", as_=shopper, json={
        "recipientName": "A\u0000B", "street": "S 1", "city": "C", "region": "R", "country": "RU", "postalCode": "101000"})
    assert r.status == 400


async def test_nul_in_query(api) -> None:
    r = await api.get("/api/v1/products", params={"search": "a\x00b"})
    assert r.status == 400


async def test_invalid_utf8_body(api, shopper) -> None:
    r = await api.post(ITEMS, as_=shopper, **_json(b'{"productId": "\xff\xfe", "quantity": 1}'))
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR"


async def test_invalid_utf8_in_login(api) -> None:
    r = await api.post("/api/v1/auth/login", **_json(b'{"email": "a\xc3@x.io", "password": "\xff"}'))
    assert r.status == 400


# ----------------------------------------------------------------------------- numbers and quantities

@pytest.mark.parametrize("quantity", [0, -1, -(2**31), 2**31, 2**63, 2**64 + 1, 10**30, 1.5, "1", None, True])
async def test_cart_quantity_out_of_range(api, shopper, product, quantity) -> None:
    r = await api.post(ITEMS, as_=shopper, json={"productId": product, "quantity": quantity})
    assert r.status == 400, (quantity, r.status, r.body)


async def test_huge_quantity_beyond_max(api, shopper, product) -> None:
    r = await api.post(ITEMS, as_=shopper, json={"productId": product, "quantity": 100_000})
    assert r.status == 400 and r.error["code"] in ("VALIDATION_ERROR", "MAX_QUANTITY_EXCEEDED", "INSUFFICIENT_STOCK")


@pytest.mark.parametrize("price", [2**64, -1, 1e400, "NaN", 10**13])
async def test_product_price_beyond_storage(api, tenant, price) -> None:
    staff = await tenant.user("staff")
    r = await api.post("/api/v1/products", as_=staff, json={"name": "P", "sku": f"S-{uuid.uuid4().hex[:6]}",
                                                           "price": price})
    assert r.status == 400, (price, r.status, r.body)


async def test_number_beyond_64_bits_raw(api, shopper, product) -> None:
    raw = ('{"productId": "%s", "quantity": 123456789012345678901234567890}' % product).encode()
    r = await api.post(ITEMS, as_=shopper, **_json(raw))
    assert r.status == 400


# ----------------------------------------------------------------------------- query, type, path

async def test_duplicated_query_parameters(api) -> None:
    r = await api.get("/api/v1/products?page=1&page=2")
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
async def test_wrong_content_type(api, shopper, product, content_type) -> None:
    r = await api.post(ITEMS, as_=shopper, data=b'{"productId": "%s", "quantity": 1}' % product.encode(),
                       headers={"Content-Type": content_type})
    assert r.status == 415 and r.error["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "1", "' OR 1=1 --", "%00", "..%2F..%2Fetc"])
async def test_ids_that_are_not_uuids(api, shopper, bad_id) -> None:
    r = await api.get(f"/api/v1/addresses/{bad_id}", as_=shopper)
    assert r.status in (400, 404), r.status
    assert r.status != 500


async def test_unknown_tenant_header(api) -> None:
    r = await api.get("/api/v1/products", headers={"X-Tenant": "x" * 500})
    assert r.status == 400
