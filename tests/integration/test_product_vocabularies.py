"""POST/PATCH /products in both documents' vocabularies (platform: `stock`, `active`, category
slug; storefront: `stockQuantity`, `status`, `categoryId`), and variants changed through PATCH."""

from __future__ import annotations

import secrets

import pytest

from tests.integration.conftest_catalogue import make_category, make_product

P = "/api/v1/products"


@pytest.fixture
async def staff(tenant):
    return await tenant.user("staff")


def _sku() -> str:
    return f"V-{secrets.token_hex(4)}"


async def test_platform_client_creates_and_edits_with_its_own_field_names(api, staff, tenant):
    cat = await make_category(api, staff, "Footwear")
    body = {"name": "Trail shoe", "sku": _sku(), "price": 4990, "stock": 7, "active": True, "category": cat["slug"]}
    r = await api.post(P, as_=staff, json=body)
    assert r.status == 201, r.body
    d = r.data
    assert (d["stockQuantity"], d["status"], d["category"]["id"]) == (7, "ACTIVE", cat["id"])
    # The platform's filters find it the same way.
    listed = await api.get(P, params={"category": cat["slug"], "active": "true"})
    assert [p["id"] for p in listed.data["products"]] == [d["id"]]

    other = await make_category(api, staff, "Apparel")
    r = await api.patch(f"{P}/{d['id']}", as_=staff, json={"stock": 3, "active": False, "category": other["slug"]})
    assert r.status == 200, r.body
    assert (r.data["stockQuantity"], r.data["status"], r.data["category"]["id"]) == (3, "DRAFT", other["id"])
    customer = await tenant.user()
    assert (await api.get(f"{P}/{d['id']}", as_=customer)).status == 404   # off sale
    r = await api.patch(f"{P}/{d['id']}", as_=staff, json={"active": True, "category": None})
    assert (r.data["status"], r.data["category"]) == ("ACTIVE", None)


async def test_both_spellings_must_agree_and_slugs_must_exist(api, staff):
    cat = await make_category(api, staff, "Footwear")
    base = {"name": "Shoe", "sku": _sku(), "price": 10}
    for extra in ({"stock": 5, "stockQuantity": 4}, {"active": False, "status": "ACTIVE"}):
        r = await api.post(P, as_=staff, json={**base, **extra})
        assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", (extra, r.body)
    r = await api.post(P, as_=staff, json={**base, "stock": 5, "stockQuantity": 5, "active": True, "status": "ACTIVE"})
    assert r.status == 201 and r.data["stockQuantity"] == 5
    other = await make_category(api, staff, "Apparel")
    r = await api.post(P, as_=staff, json={**base, "sku": _sku(), "category": cat["slug"], "categoryId": other["id"]})
    assert r.status == 400 and "category" in r.error["details"]
    r = await api.post(P, as_=staff, json={**base, "sku": _sku(), "category": "no-such-slug"})
    assert r.status == 404 and r.error["code"] == "CATEGORY_NOT_FOUND"
    r = await api.post(P, as_=staff, json={**base, "sku": _sku(), "category": "Not A Slug"})
    assert r.status == 400


async def test_variants_change_through_patch(api, staff, db):
    s_sku, m_sku = _sku(), _sku()
    p = await make_product(api, staff, stockQuantity=0, variants=[
        {"name": "S", "sku": s_sku, "price": 10, "stockQuantity": 3, "attributes": {"size": "S"}},
        {"name": "M", "sku": m_sku, "price": 12, "stockQuantity": 4, "attributes": {"size": "M"}}])
    small, medium = p["variants"]
    l_sku = _sku()
    r = await api.patch(f"{P}/{p['id']}", as_=staff, json={"variants": [
        {"id": small["id"], "price": 11, "stock": 9},
        {"id": medium["id"], "deleted": True},
        {"name": "L", "sku": l_sku, "price": 14, "stockQuantity": 2, "attributes": {"size": "L"}}]})
    assert r.status == 200, r.body
    got = [(v["name"], v["sku"], v["price"], v["stockQuantity"], v["attributes"]) for v in r.data["variants"]]
    assert got == [("S", s_sku, 11, 9, {"size": "S"}), ("L", l_sku, 14, 2, {"size": "L"})]
    assert r.data["stockQuantity"] == 11
    # The removed variant's row stays for the orders that may point at it.
    assert await db.fetchval("SELECT deleted_at IS NOT NULL FROM product_variants WHERE id = $1::uuid", medium["id"])

    bad = [
        ([{"id": medium["id"], "price": 1}], 404),                          # removed already
        ([{"name": "XL", "price": 1}], 400),                                # new without sku
        ([{"id": small["id"], "sku": l_sku}], 409),                         # sku taken
        ([{"id": small["id"], "deleted": True}, {"id": r.data["variants"][1]["id"], "deleted": True}], 400),
        ([{"id": small["id"], "price": 1}, {"id": small["id"], "price": 2}], 400),
    ]
    for variants, status in bad:
        resp = await api.patch(f"{P}/{p['id']}", as_=staff, json={"variants": variants})
        assert resp.status == status, (variants, resp.body)
    # Nothing of the refused edits stuck.
    again = (await api.get(f"{P}/{p['id']}", as_=staff)).data
    assert [(v["name"], v["price"]) for v in again["variants"]] == [("S", 11), ("L", 14)]


async def test_a_product_without_variants_keeps_that_shape(api, staff):
    p = await make_product(api, staff)
    r = await api.patch(f"{P}/{p['id']}", as_=staff, json={"variants": [{"name": "S", "sku": _sku(), "price": 1}]})
    assert r.status == 400 and "variants" in r.error["details"]
