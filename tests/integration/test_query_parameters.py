"""One rule for query parameters on every route: unknown ones are ignored, known ones are checked."""

from __future__ import annotations

import pytest

from tests.integration.conftest_orders import make_shipping_method

# (route, the parameters it needs, a known parameter with a bad value)
ROUTES = [
    ("/api/v1/orders", {}, {"page": "0"}),
    ("/api/v1/shipping/methods", {"country": "RU"}, {"country": "R"}),
    ("/api/v1/addresses", {}, {"page": "0"}),
    ("/api/v1/coupons", {}, {"page": "0"}),
    ("/api/v1/api-keys", {}, {"page": "0"}),
    ("/api/v1/admin/refunds", {}, {"page": "0"}),
    ("/api/v1/products", {}, {"page": "0"}),
    ("/api/v1/categories", {}, {"parentId": "x"}),
]


@pytest.mark.parametrize(("path", "needed", "bad"), ROUTES)
async def test_unknown_query_parameters_are_ignored_everywhere(api, tenant, db, path, needed, bad):
    await make_shipping_method(db, tenant.id)
    staff = await tenant.user("staff")
    customer = await tenant.user()
    who = customer if path == "/api/v1/addresses" else staff
    plain = await api.get(path, as_=who, params=needed)
    assert plain.status == 200, plain.body
    tagged = await api.get(path, as_=who, params={**needed, "utm_source": "mail", "_": "1700000000"})
    assert tagged.status == 200, tagged.body
    assert tagged.data == plain.data
    # Known parameters are still validated: the rule is about names, not values.
    r = await api.get(path, as_=who, params={**needed, **bad, "utm_source": "x"})
    assert r.status == 400 and set(bad) <= set(r.error["details"]), r.body


async def test_category_tree_and_shipping_methods_carry_pagination(api, tenant, db):
    """Every list has meta.pagination (CONTRACT.md); these two are one page of everything."""
    staff = await tenant.user("staff")
    r = await api.get("/api/v1/categories")
    assert r.body["meta"]["pagination"] == {"total": 0, "page": 1, "pageSize": 1, "totalPages": 0,
                                            "hasNext": False, "hasPrevious": False}
    for name in ("Footwear", "Apparel"):
        assert (await api.post("/api/v1/categories", as_=staff, json={"name": name})).status == 201
    r = await api.get("/api/v1/categories")
    assert len(r.data["categories"]) == 2
    assert r.body["meta"]["pagination"] == {"total": 2, "page": 1, "pageSize": 2, "totalPages": 1,
                                            "hasNext": False, "hasPrevious": False}
    for _ in range(3):
        await make_shipping_method(db, tenant.id)
    r = await api.get("/api/v1/shipping/methods", params={"country": "RU"})
    assert len(r.data["methods"]) == 3
    assert r.body["meta"]["pagination"] == {"total": 3, "page": 1, "pageSize": 3, "totalPages": 1,
                                            "hasNext": False, "hasPrevious": False}
