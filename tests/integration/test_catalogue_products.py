"""Products: staff CRUD, customer visibility, soft delete, stock edits that keep reservations."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.conftest_catalogue import (DETAIL_FIELDS, assert_shape, deliver,
                                                 make_category, make_product, new_product)


@pytest.fixture
async def staff(tenant):
    return await tenant.user("staff")


@pytest.fixture
async def customer(tenant):
    return await tenant.user("customer")


async def test_create_then_read_full_detail_shape(api, staff, customer):
    cat = await make_category(api, staff, "Health")
    child = await make_category(api, staff, "Supplements", parent=cat["id"])
    body = new_product(
        price=2500, compareAtPrice=3000, shortDescription="Vitamins", weight=250,
        dimensions={"length": 10, "width": 10.5, "height": 15}, categoryId=child["id"], tags=["health", "vitamins"],
        attributes={"form": "Capsules"}, commissionPercentage=10, careerPointsPercentage=5,
        images=[{"url": "https://cdn.example.com/a.jpg", "alt": "bottle"},
                {"url": "https://cdn.example.com/b.jpg", "thumbnailUrl": "https://cdn.example.com/b-t.jpg",
                 "isPrimary": True}])
    r = await api.post("/api/v1/products", as_=staff, json=body)
    assert r.status == 201, r.body
    pid = r.data["id"]
    d = (await api.get(f"/api/v1/products/{pid}", as_=customer)).data
    assert_shape(d, DETAIL_FIELDS)
    assert d["price"] == 2500 and d["compareAtPrice"] == 3000 and d["currency"] == "RUB"
    assert d["status"] == "ACTIVE" and d["stockQuantity"] == 10 and d["trackInventory"] is True
    assert d["dimensions"] == {"length": 10, "width": 10.5, "height": 15} and d["weight"] == 250
    assert [b["slug"] for b in d["category"]["breadcrumb"]] == [cat["slug"], child["slug"]]
    assert [(i["position"], i["isPrimary"]) for i in d["images"]] == [(1, False), (2, True)]
    assert d["images"][0]["thumbnailUrl"] == "https://cdn.example.com/a.jpg"
    assert d["rating"] == {"average": 0, "count": 0, "distribution": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0}}
    assert d["commissionPercentage"] == 10 and d["careerPointsPercentage"] == 5
    assert d["attributes"] == {"form": "Capsules"} and d["variants"] == [] and d["relatedProducts"] == []
    assert d["createdAt"].endswith("Z") and d["updatedAt"].endswith("Z")


async def test_variants_have_their_own_stock(api, staff):
    p = await make_product(api, staff, stockQuantity=0, variants=[
        {"name": "S", "sku": f"V-{uuid.uuid4().hex[:8]}", "price": 10, "stockQuantity": 3, "attributes": {"size": "S"}},
        {"name": "M", "sku": f"V-{uuid.uuid4().hex[:8]}", "price": 12.5, "stockQuantity": 4, "attributes": {"size": "M"}}])
    assert [(v["name"], v["stockQuantity"], v["price"]) for v in p["variants"]] == [("S", 3, 10), ("M", 4, 12.5)]
    assert p["stockQuantity"] == 7


async def test_related_products_are_same_category_visible_ones(api, staff):
    cat = await make_category(api, staff, "Shoes")
    a = await make_product(api, staff, categoryId=cat["id"], images=[{"url": "https://x.example/a.jpg"}])
    b = await make_product(api, staff, categoryId=cat["id"], images=[{"url": "https://x.example/b.jpg"}])
    await make_product(api, staff, categoryId=cat["id"], status="DRAFT")
    d = (await api.get(f"/api/v1/products/{a['id']}")).data
    assert [(x["id"], x["thumbnailUrl"]) for x in d["relatedProducts"]] == [(b["id"], "https://x.example/b.jpg")]


@pytest.mark.parametrize("as_role,status", [(None, 401), ("customer", 403), ("partner", 403)])
async def test_writes_need_products_write(api, tenant, as_role, status):
    user = await tenant.user(as_role) if as_role else None
    r = await api.post("/api/v1/products", as_=user, json=new_product())
    assert r.status == status


async def test_staff_with_other_permissions_is_forbidden(api, tenant):
    clerk = await tenant.user("staff", permissions=("orders:write",))
    assert (await api.post("/api/v1/products", as_=clerk, json=new_product())).status == 403
    writer = await tenant.user("staff", permissions=("products:write",))
    assert (await api.post("/api/v1/products", as_=writer, json=new_product())).status == 201


@pytest.mark.parametrize("change", [
    {"price": -1}, {"price": 1e13}, {"price": "abc"}, {"price": 1.234}, {"name": ""}, {"name": "x" * 201},
    {"sku": ""}, {"sku": "has space"}, {"stockQuantity": -1}, {"stockQuantity": 10**12}, {"rating": 5},
    {"id": str(uuid.uuid4())}, {"createdAt": "2024-01-01T00:00:00Z"}, {"unknownField": 1},
    {"status": "OUT_OF_STOCK"}, {"commissionPercentage": 101}, {"images": [{"url": "ftp://x"}]},
    {"categoryId": "not-a-uuid"}, {"tags": ["a,b"]}, {"weight": -5}, {"slug": "Bad Slug"},
])
async def test_create_rejects_bad_input(api, staff, change):
    r = await api.post("/api/v1/products", as_=staff, json=new_product(**change))
    assert r.status == 400, r.body
    assert r.error["code"] == "VALIDATION_ERROR" and r.error["details"]


async def test_unknown_category_is_404(api, staff):
    r = await api.post("/api/v1/products", as_=staff, json=new_product(categoryId=str(uuid.uuid4())))
    assert r.status == 404 and r.error["code"] == "CATEGORY_NOT_FOUND"


async def test_sku_and_slug_unique_per_tenant(api, staff, tenant, make_client, db):
    p = await make_product(api, staff)
    r = await api.post("/api/v1/products", as_=staff, json=new_product(sku=p["sku"]))
    assert r.status == 409 and r.error["code"] == "CONFLICT" and "sku" in r.error["details"]
    r = await api.post("/api/v1/products", as_=staff, json=new_product(slug=p["slug"]))
    assert r.status == 409 and "slug" in r.error["details"]
    other = await db.fetchval("INSERT INTO tenants (slug, name) VALUES ($1, 'o') RETURNING id",
                              f"o-{uuid.uuid4().hex[:8]}")
    # The same SKU in another tenant is fine.
    await db.execute("INSERT INTO products (tenant_id, name, slug, price, currency, sku) VALUES ($1, 'x', $2, 1, 'RUB', $3)",
                     other, p["slug"], p["sku"])


async def test_patch_changes_only_supplied_fields(api, staff):
    p = await make_product(api, staff, shortDescription="short", tags=["a"])
    r = await api.patch(f"/api/v1/products/{p['id']}", as_=staff, json={"price": 199.99, "shortDescription": None})
    assert r.status == 200, r.body
    d = r.data
    assert d["price"] == 199.99 and d["shortDescription"] is None
    assert d["name"] == p["name"] and d["tags"] == ["a"] and d["sku"] == p["sku"]


@pytest.mark.parametrize("body", [{"id": str(uuid.uuid4())}, {"rating": {"average": 5}}, {"createdAt": "x"},
                                  {"variants": []}, {"price": -3}, {"nope": 1}])
async def test_patch_rejects_read_only_and_unknown_fields(api, staff, body):
    p = await make_product(api, staff)
    r = await api.patch(f"/api/v1/products/{p['id']}", as_=staff, json=body)
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR"


async def test_patch_stock_keeps_reservations(api, staff, db):
    p = await make_product(api, staff, stockQuantity=10)
    pid = uuid.UUID(p["id"])
    await db.execute("UPDATE stock SET reserved = 3, sold = 2 WHERE product_id = $1", pid)
    assert (await api.get(f"/api/v1/products/{p['id']}")).data["stockQuantity"] == 5
    r = await api.patch(f"/api/v1/products/{p['id']}", as_=staff, json={"stockQuantity": 20})
    assert r.data["stockQuantity"] == 20
    row = await db.fetchrow("SELECT on_hand, reserved, sold, available FROM stock WHERE product_id = $1", pid)
    assert dict(row) == {"on_hand": 25, "reserved": 3, "sold": 2, "available": 20}
    assert await db.fetchval("SELECT units_sold FROM products WHERE id = $1", pid) == 2


async def test_out_of_stock_is_derived(api, staff):
    p = await make_product(api, staff, stockQuantity=0)
    assert (await api.get(f"/api/v1/products/{p['id']}")).data["status"] == "OUT_OF_STOCK"
    untracked = await make_product(api, staff, stockQuantity=0, trackInventory=False)
    d = (await api.get(f"/api/v1/products/{untracked['id']}")).data
    assert d["status"] == "ACTIVE" and d["stockQuantity"] is None


async def test_draft_and_archived_hidden_from_customers(api, staff, customer):
    for status in ("DRAFT", "ARCHIVED"):
        p = await make_product(api, staff, status=status)
        for who in (None, customer):
            r = await api.get(f"/api/v1/products/{p['id']}", as_=who)
            assert r.status == 404 and r.error["code"] == "PRODUCT_NOT_FOUND"
        assert (await api.get(f"/api/v1/products/{p['id']}", as_=staff)).data["status"] == status


async def test_soft_delete(api, staff, customer, db, tenant):
    p = await make_product(api, staff)
    order_id = await deliver(db, tenant.id, customer.id, p["id"])
    r = await api.delete(f"/api/v1/products/{p['id']}", as_=staff)
    assert r.status == 200 and r.data == {"id": p["id"], "deleted": True}
    assert (await api.get(f"/api/v1/products/{p['id']}", as_=customer)).status == 404
    listed = (await api.get("/api/v1/products", as_=customer)).data["products"]
    assert p["id"] not in [x["id"] for x in listed]
    staff_view = (await api.get("/api/v1/products", as_=staff, params={"includeDeleted": "true"})).data["products"]
    assert [x["deletedAt"] is not None for x in staff_view if x["id"] == p["id"]] == [True]
    # The order still renders the product's name and sku.
    item = await db.fetchrow("SELECT product_name, sku FROM order_items WHERE order_id = $1", order_id)
    assert (item["product_name"], item["sku"]) == (p["name"], p["sku"])
    assert (await api.delete(f"/api/v1/products/{p['id']}", as_=staff)).status == 404
    assert (await api.patch(f"/api/v1/products/{p['id']}", as_=staff, json={"price": 1})).status == 404
    # Its SKU is free again.
    assert (await api.post("/api/v1/products", as_=staff, json=new_product(sku=p["sku"], slug=p["slug"]))).status == 201


async def test_other_tenant_and_malformed_ids(api, staff, tenant, db):
    other = await db.fetchval("INSERT INTO tenants (slug, name) VALUES ($1, 'o') RETURNING id", f"o-{uuid.uuid4().hex[:8]}")
    foreign = await db.fetchval("INSERT INTO products (tenant_id, name, slug, price, currency, sku)"
                                " VALUES ($1, 'x', 'x', 1, 'RUB', 'X') RETURNING id", other)
    for method in ("get", "patch", "delete"):
        kw = {"json": {"price": 2}} if method == "patch" else {}
        r = await getattr(api, method)(f"/api/v1/products/{foreign}", as_=staff, **kw)
        assert r.status == 404 and r.error["code"] == "PRODUCT_NOT_FOUND"
    r = await api.get("/api/v1/products/not-a-uuid")
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR"


async def test_image_urls_are_stored_not_fetched(api, staff):
    # An internal address is stored as given: the server never requests it.
    p = await make_product(api, staff, images=[{"url": "http://169.254.169.254/latest/meta-data"}])
    assert p["images"][0]["url"] == "http://169.254.169.254/latest/meta-data"
