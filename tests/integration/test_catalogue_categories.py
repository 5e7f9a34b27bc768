"""Categories: the tree, the detail page (breadcrumb, children, products, filters), staff CRUD,
no cycles, and product counts that follow product writes."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.integration.conftest_catalogue import (CATEGORY_FIELDS, PRODUCT_FIELDS, assert_shape, make_category,
                                                  make_product)


@pytest.fixture
async def staff(tenant):
    return await tenant.user("staff")


@pytest.fixture
async def tree(api, staff):
    health = await make_category(api, staff, "Health", position=1, description="For you",
                                 imageUrl="https://cdn.example.com/h.jpg")
    supplements = await make_category(api, staff, "Supplements", parent=health["id"], position=1)
    vitamins = await make_category(api, staff, "Vitamins", parent=supplements["id"])
    home = await make_category(api, staff, "Home", position=2)
    hidden = await make_category(api, staff, "Hidden", isActive=False)
    for price, cat, tags in ((100, supplements, ["a", "b"]), (300, vitamins, ["a"]), (50, health, ["c"])):
        await make_product(api, staff, price=price, categoryId=cat["id"], tags=tags)
    await make_product(api, staff, price=999, categoryId=vitamins["id"], status="DRAFT")
    return {"health": health, "supplements": supplements, "vitamins": vitamins, "home": home, "hidden": hidden}


def walk(categories):
    for c in categories:
        yield c
        yield from walk(c["children"])


async def test_tree_with_counts(api, tree):
    r = await api.get("/api/v1/categories", params={"includeProducts": "true"})
    roots = r.data["categories"]
    assert [c["name"] for c in roots] == ["Health", "Home"]  # inactive hidden from customers
    for c in walk(roots):
        assert_shape(c, CATEGORY_FIELDS)
    health = roots[0]
    assert (health["level"], health["productCount"], health["parentId"]) == (0, 3, None)
    sup = health["children"][0]
    assert (sup["name"], sup["level"], sup["productCount"], sup["parentId"]) == ("Supplements", 1, 2, health["id"])
    assert sup["children"][0]["productCount"] == 1 and sup["children"][0]["level"] == 2
    plain = (await api.get("/api/v1/categories")).data["categories"]
    assert all(c["productCount"] is None for c in walk(plain))


async def test_parent_filter(api, tree):
    r = await api.get("/api/v1/categories", params={"parentId": tree["health"]["id"]})
    assert [c["name"] for c in r.data["categories"]] == ["Supplements"]
    r = await api.get("/api/v1/categories", params={"parentId": "null"})
    assert [c["name"] for c in r.data["categories"]] == ["Health", "Home"]
    r = await api.get("/api/v1/categories", params={"parentId": "xyz"})
    assert r.status == 400 and "parentId" in r.error["details"]


async def test_staff_sees_inactive(api, tree, staff):
    names = [c["name"] for c in (await api.get("/api/v1/categories", as_=staff)).data["categories"]]
    assert "Hidden" in names
    assert (await api.get(f"/api/v1/categories/{tree['hidden']['id']}")).status == 404


async def test_detail_page(api, tree):
    r = await api.get(f"/api/v1/categories/{tree['supplements']['id']}", params={"sortBy": "price", "pageSize": 1})
    d = r.data
    assert d["parent"] == {"id": tree["health"]["id"], "name": "Health", "slug": tree["health"]["slug"]}
    assert [b["name"] for b in d["breadcrumb"]] == ["Health", "Supplements"]
    assert d["children"] == [{"id": tree["vitamins"]["id"], "name": "Vitamins", "slug": tree["vitamins"]["slug"],
                              "productCount": 1}]
    assert [p["price"] for p in d["products"]] == [100]
    assert_shape(d["products"][0], PRODUCT_FIELDS)
    assert d["filters"] == {"priceRange": {"min": 100, "max": 300}, "tags": [{"name": "a", "count": 2},
                                                                            {"name": "b", "count": 1}]}
    assert r.body["meta"]["pagination"] == {"total": 2, "page": 1, "pageSize": 1, "totalPages": 2,
                                            "hasNext": True, "hasPrevious": False}
    r = await api.get(f"/api/v1/categories/{tree['supplements']['id']}", params={"sort": "price", "order": "desc"})
    assert [p["price"] for p in r.data["products"]] == [300, 100]
    root = (await api.get(f"/api/v1/categories/{tree['health']['id']}")).data
    assert root["parent"] is None and len(root["breadcrumb"]) == 1
    empty = (await api.get(f"/api/v1/categories/{tree['home']['id']}")).data
    assert empty["products"] == [] and empty["filters"] == {"priceRange": {"min": 0, "max": 0}, "tags": []}


@pytest.mark.parametrize("params", [{"pageSize": 101}, {"page": 0}, {"sortBy": "evil"}, {"sortOrder": "x"}])
async def test_detail_bad_params(api, tree, params):
    assert (await api.get(f"/api/v1/categories/{tree['home']['id']}", params=params)).status == 400


async def test_unknown_category_404(api, tree):
    r = await api.get(f"/api/v1/categories/{uuid.uuid4()}")
    assert r.status == 404 and r.error["code"] == "CATEGORY_NOT_FOUND"


async def test_crud_and_permissions(api, tenant, staff, tree):
    customer = await tenant.user("customer")
    assert (await api.post("/api/v1/categories", as_=customer, json={"name": "X"})).status == 403
    assert (await api.post("/api/v1/categories", json={"name": "X"})).status == 401
    c = await make_category(api, staff, "Garden")
    assert c["slug"].startswith("garden") and c["productCount"] == 0
    r = await api.post("/api/v1/categories", as_=staff, json={"name": "Dup", "slug": c["slug"]})
    assert r.status == 409
    r = await api.patch(f"/api/v1/categories/{c['id']}", as_=staff, json={"name": "Gardening", "position": 7})
    assert (r.data["name"], r.data["position"]) == ("Gardening", 7)
    assert (await api.patch(f"/api/v1/categories/{c['id']}", as_=staff, json={"level": 3})).status == 400
    assert (await api.delete(f"/api/v1/categories/{tree['health']['id']}", as_=staff)).status == 409  # has children
    assert (await api.delete(f"/api/v1/categories/{tree['vitamins']['id']}", as_=staff)).status == 409  # has products
    assert (await api.delete(f"/api/v1/categories/{c['id']}", as_=staff)).data == {"id": c["id"], "deleted": True}
    assert (await api.get(f"/api/v1/categories/{c['id']}")).status == 404


async def test_moves_relevel_and_never_cycle(api, staff, tree):
    r = await api.patch(f"/api/v1/categories/{tree['health']['id']}", as_=staff,
                        json={"parentId": tree["vitamins"]["id"]})
    assert r.status == 400 and "parentId" in r.error["details"]
    r = await api.patch(f"/api/v1/categories/{tree['health']['id']}", as_=staff, json={"parentId": tree["health"]["id"]})
    assert r.status == 400
    r = await api.patch(f"/api/v1/categories/{tree['supplements']['id']}", as_=staff, json={"parentId": tree["home"]["id"]})
    assert r.data["level"] == 1 and r.data["parentId"] == tree["home"]["id"]
    r = await api.patch(f"/api/v1/categories/{tree['supplements']['id']}", as_=staff, json={"parentId": None})
    assert r.data["level"] == 0 and r.data["children"][0]["level"] == 1
    # Two opposite moves at once: one wins, the other sees the cycle.
    a, b = tree["home"]["id"], tree["supplements"]["id"]
    results = await asyncio.gather(api.patch(f"/api/v1/categories/{a}", as_=staff, json={"parentId": b}),
                                   api.patch(f"/api/v1/categories/{b}", as_=staff, json={"parentId": a}))
    assert sorted(r.status for r in results) == [200, 400]


async def test_counts_follow_product_writes(api, staff, tree, db):
    async def count(cat):
        return await db.fetchval("SELECT product_count FROM categories WHERE id = $1::uuid", tree[cat]["id"])

    assert await count("vitamins") == 1
    p = await make_product(api, staff, categoryId=tree["vitamins"]["id"])
    assert await count("vitamins") == 2
    await api.patch(f"/api/v1/products/{p['id']}", as_=staff, json={"categoryId": tree["home"]["id"]})
    assert (await count("vitamins"), await count("home")) == (1, 1)
    await api.patch(f"/api/v1/products/{p['id']}", as_=staff, json={"status": "ARCHIVED"})
    assert await count("home") == 0
    await api.patch(f"/api/v1/products/{p['id']}", as_=staff, json={"status": "ACTIVE"})
    assert await count("home") == 1
    await api.delete(f"/api/v1/products/{p['id']}", as_=staff)
    assert await count("home") == 0
    # Concurrent creations all count.
    await asyncio.gather(*(make_product(api, staff, categoryId=tree["home"]["id"]) for _ in range(8)))
    assert await count("home") == 8
