"""GET /products: every parameter, both spellings, pagination meta, stable order, bad values."""

from __future__ import annotations

import pytest

from tests.integration.conftest_catalogue import PRODUCT_FIELDS, assert_shape, make_category, make_product


@pytest.fixture
async def staff(tenant):
    return await tenant.user("staff")


@pytest.fixture
async def shop(api, staff):
    """Seven visible products (two share a price), one draft, one out of stock."""
    shoes = await make_category(api, staff, "Footwear")
    boots = await make_category(api, staff, "Boots", parent=shoes["id"])
    hats = await make_category(api, staff, "Hats")
    made = {}
    specs = [
        ("Trail Runner", 300, shoes, ["run", "sale"], 5), ("Road Runner", 200, shoes, ["run"], 5),
        ("Winter Boot", 500, boots, ["winter", "sale"], 5), ("Rain Boot", 200, boots, ["rain"], 5),
        ("Sun Hat", 50, hats, ["summer", "sale"], 5), ("Wool Hat", 80, hats, ["winter"], 5),
        ("Empty Hat", 70, hats, ["winter"], 0),
    ]
    for name, price, cat, tags, stock in specs:
        made[name] = await make_product(api, staff, name=name, price=price, categoryId=cat["id"], tags=tags,
                                        stockQuantity=stock, description=f"{name} for everyday use")
    made["Draft"] = await make_product(api, staff, name="Draft Runner", price=10, status="DRAFT")
    return {"shoes": shoes, "boots": boots, "hats": hats, "products": made}


async def names(api, who=None, **params):
    r = await api.get("/api/v1/products", as_=who, params={k: str(v) for k, v in params.items()})
    assert r.status == 200, r.body
    return [p["name"] for p in r.data["products"]]


async def test_shape_and_default_order_newest_first(api, shop):
    r = await api.get("/api/v1/products")
    assert r.body["meta"]["pagination"] == {"total": 7, "page": 1, "pageSize": 20, "totalPages": 1,
                                            "hasNext": False, "hasPrevious": False}
    for p in r.data["products"]:
        assert_shape(p, PRODUCT_FIELDS)
    assert [p["name"] for p in r.data["products"]][0] == "Empty Hat"


async def test_pagination_meta_first_middle_last_empty(api, shop):
    pages = {}
    for page in (1, 2, 3, 4):
        r = await api.get("/api/v1/products", params={"page": page, "pageSize": 3, "sortBy": "name"})
        pages[page] = (r.body["meta"]["pagination"], [p["name"] for p in r.data["products"]])
    assert pages[1][0] == {"total": 7, "page": 1, "pageSize": 3, "totalPages": 3, "hasNext": True, "hasPrevious": False}
    assert pages[2][0]["hasNext"] is True and pages[2][0]["hasPrevious"] is True
    assert pages[3][0]["hasNext"] is False and pages[3][0]["hasPrevious"] is True and len(pages[3][1]) == 1
    assert pages[4][0]["hasNext"] is False and pages[4][1] == []
    listed = pages[1][1] + pages[2][1] + pages[3][1]
    assert listed == sorted(listed) and len(set(listed)) == 7


async def test_equal_keys_never_repeat_or_skip(api, shop):
    seen = []
    for page in range(1, 8):
        seen += await names(api, sortBy="price", page=page, pageSize=1)
    assert len(seen) == 7 and len(set(seen)) == 7
    assert {seen.index("Road Runner"), seen.index("Rain Boot")} == {3, 4}


@pytest.mark.parametrize("sort,order,first", [
    ("price", "asc", "Sun Hat"), ("price", "desc", "Winter Boot"), ("name", "asc", "Empty Hat"),
    ("name", "desc", "Wool Hat"), ("stock", "asc", "Empty Hat"), ("createdAt", "asc", "Trail Runner"),
    ("createdAt", "desc", "Empty Hat"),
])
async def test_sorts_in_both_spellings(api, shop, sort, order, first):
    assert (await names(api, sortBy=sort, sortOrder=order))[0] == first
    assert (await names(api, sort=sort, order=order))[0] == first


async def test_storefront_spelling_wins(api, shop):
    assert (await names(api, sortBy="price", sort="name", sortOrder="desc", order="asc"))[0] == "Winter Boot"


async def test_popularity_is_units_sold(api, shop, db):
    pid = shop["products"]["Wool Hat"]["id"]
    await db.execute("UPDATE stock SET sold = 3 WHERE product_id = $1::uuid", pid)
    assert (await names(api, sortBy="popularity"))[0] == "Wool Hat"
    assert (await names(api, sortBy="popularity", sortOrder="asc"))[-1] == "Wool Hat"


async def test_price_range(api, shop):
    assert set(await names(api, minPrice=100, maxPrice=300)) == {"Trail Runner", "Road Runner", "Rain Boot"}
    assert await names(api, minPrice=1000) == []


async def test_category_by_slug_and_id_include_descendants(api, shop):
    by_slug = set(await names(api, category=shop["shoes"]["slug"]))
    assert by_slug == {"Trail Runner", "Road Runner", "Winter Boot", "Rain Boot"}
    assert set(await names(api, categoryId=shop["boots"]["id"])) == {"Winter Boot", "Rain Boot"}
    assert await names(api, category="no-such-category") == []


async def test_tags_must_all_match(api, shop):
    assert set(await names(api, tags="sale")) == {"Trail Runner", "Winter Boot", "Sun Hat"}
    assert set(await names(api, tags="winter,sale")) == {"Winter Boot"}
    assert set(await names(api, tags=" winter , ")) == {"Winter Boot", "Wool Hat", "Empty Hat"}


async def test_search_is_ranked_and_prefix(api, shop):
    found = await names(api, search="runner")
    assert set(found) == {"Trail Runner", "Road Runner"}
    assert set(await names(api, search="boo")) == {"Rain Boot", "Winter Boot"}
    # A name hit outranks a description-only hit: both mention "hat" but only hats are named so.
    assert (await names(api, search="wool"))[0] == "Wool Hat"
    assert await names(api, search="!!!") == []
    assert await names(api, search="runner", sortBy="price") == ["Road Runner", "Trail Runner"]


async def test_status_and_active_filters(api, shop, staff):
    assert await names(api, status="OUT_OF_STOCK") == ["Empty Hat"]
    assert "Empty Hat" not in await names(api, status="ACTIVE")
    assert len(await names(api, status="ACTIVE")) == 6
    assert len(await names(api, active="true")) == 6
    assert await names(api, active="false") == ["Empty Hat"]
    assert await names(api, staff, status="DRAFT") == ["Draft Runner"]
    assert "Draft Runner" in await names(api, staff)
    assert "Draft Runner" not in await names(api)


@pytest.mark.parametrize("params,field", [
    ({"pageSize": 0}, "pageSize"), ({"pageSize": 101}, "pageSize"), ({"page": 0}, "page"),
    ({"page": "abc"}, "page"), ({"minPrice": -1}, None), ({"minPrice": 10, "maxPrice": 5}, "minPrice"),
    ({"sortBy": "evil"}, "sortBy"), ({"sort": "evil"}, "sort"), ({"sortOrder": "sideways"}, "sortOrder"),
    ({"order": "up"}, "order"), ({"status": "GONE"}, "status"), ({"status": "DRAFT"}, "status"),
    ({"categoryId": "nope"}, "categoryId"), ({"active": "maybe"}, "active"), ({"maxPrice": "1e400"}, None),
    ({"includeDeleted": "true"}, "includeDeleted"), ({"search": "x" * 201}, "search"), ({"page": 10**12}, "page"),
])
async def test_bad_parameters_are_400(api, shop, params, field):
    r = await api.get("/api/v1/products", params={k: str(v) for k, v in params.items()})
    assert r.status == 400, r.body
    assert r.error["code"] == "VALIDATION_ERROR" and r.error["details"]
    if field:
        assert field in r.error["details"], r.error


async def test_repeated_parameter_is_400(api, shop):
    r = await api.get("/api/v1/products?page=1&page=2")
    assert r.status == 400
