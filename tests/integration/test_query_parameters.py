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
