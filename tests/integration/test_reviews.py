"""Reviews: the verified-purchase rule, one per author, moderation, the helpful toggle, rating
summaries that stay exact under concurrent writes, and every list parameter."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.conftest import Api
from tests.integration.conftest_catalogue import REVIEW_FIELDS, assert_shape, deliver, make_product

GOOD = {"rating": 5, "title": "Great", "content": "Really good product, works well.", "pros": ["fast"], "cons": []}


@pytest.fixture
async def staff(tenant):
    return await tenant.user("staff")


@pytest.fixture
async def product(api, staff):
    return await make_product(api, staff)


async def buyer(tenant, db, product, name="John Doe", status="DELIVERED"):
    user = await tenant.user("customer", name=name)
    await deliver(db, tenant.id, user.id, product["id"], status=status)
    return user


async def review(api, user, product, **body):
    return await api.post(f"/api/v1/products/{product['id']}/reviews", as_=user, json={**GOOD, **body})


async def publish(api, staff, review_id, **extra):
    r = await api.patch(f"/api/v1/reviews/{review_id}", as_=staff, json={"status": "PUBLISHED", **extra})
    assert r.status == 200, r.body
    return r.data


async def test_verified_purchase_rule(api, tenant, db, product):
    stranger = await tenant.user("customer")
    r = await review(api, stranger, product)
    assert r.status == 403 and r.error["code"] == "NOT_PURCHASED"
    shipped = await buyer(tenant, db, product, status="SHIPPED")
    assert (await review(api, shipped, product)).status == 403
    user = await buyer(tenant, db, product)
    r = await review(api, user, product)
    assert r.status == 201
    assert r.data["status"] == "PENDING" and r.data["rating"] == 5 and r.data["pros"] == ["fast"]
    assert set(r.data) >= {"id", "rating", "title", "content", "pros", "cons", "status", "createdAt"}
    r = await review(api, user, product)
    assert r.status == 409 and r.error["code"] == "ALREADY_REVIEWED"
    assert (await api.post(f"/api/v1/products/{product['id']}/reviews", json=GOOD)).status == 401


async def test_unknown_or_hidden_product_404(api, tenant, db, staff):
    user = await tenant.user("customer")
    r = await api.post(f"/api/v1/products/{uuid.uuid4()}/reviews", as_=user, json=GOOD)
    assert r.status == 404 and r.error["code"] == "PRODUCT_NOT_FOUND"
    draft = await make_product(api, staff, status="DRAFT")
    assert (await api.get(f"/api/v1/products/{draft['id']}/reviews")).status == 404


@pytest.mark.parametrize("change", [
    {"rating": 0}, {"rating": 6}, {"rating": "5"}, {"content": "short"}, {"content": "x" * 2001},
    {"title": "t" * 101}, {"pros": ["p"] * 6}, {"cons": ["c" * 101]}, {"pros": [""]}, {"helpfulCount": 10},
    {"status": "PUBLISHED"},
])
async def test_review_validation(api, tenant, db, product, change):
    user = await buyer(tenant, db, product)
    r = await review(api, user, product, **change)
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR"


async def test_pending_hidden_until_published_and_summary(api, tenant, db, product, staff):
    ids = []
    for rating, name in ((5, "Ann Lee"), (4, "Bob Stone"), (2, "Cy")):
        user = await buyer(tenant, db, product, name=name)
        ids.append((await review(api, user, product, rating=rating)).data["id"])
    listed = (await api.get(f"/api/v1/products/{product['id']}/reviews")).data
    assert listed["reviews"] == [] and listed["summary"]["count"] == 0
    for rid in ids[:2]:
        await publish(api, staff, rid)
    r = await api.get(f"/api/v1/products/{product['id']}/reviews")
    data = r.data
    assert data["summary"] == {"average": 4.5, "count": 2, "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1}}
    assert r.body["meta"]["pagination"]["total"] == 2
    for rv in data["reviews"]:
        assert_shape(rv, REVIEW_FIELDS)
        assert rv["author"]["isVerifiedPurchaser"] is True and rv["isHelpful"] is None
    assert {rv["author"]["name"] for rv in data["reviews"]} == {"Ann L.", "Bob S."}
    d = (await api.get(f"/api/v1/products/{product['id']}")).data
    assert d["rating"]["average"] == 4.5 and d["rating"]["count"] == 2
    # Rejecting a published review takes it out of the summary.
    await api.patch(f"/api/v1/reviews/{ids[0]}", as_=staff, json={"status": "REJECTED"})
    summary = (await api.get(f"/api/v1/products/{product['id']}/reviews")).data["summary"]
    assert summary == {"average": 4, "count": 1, "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0}}
    # Moderators can list the other statuses; customers cannot ask.
    pending = await api.get(f"/api/v1/products/{product['id']}/reviews", as_=staff, params={"status": "PENDING"})
    assert [rv["id"] for rv in pending.data["reviews"]] == [ids[2]]
    assert (await api.get(f"/api/v1/products/{product['id']}/reviews", params={"status": "PENDING"})).status == 400
    queue = await api.get("/api/v1/reviews", as_=staff)
    assert [rv["id"] for rv in queue.data["reviews"]] == [ids[2]]


async def test_auto_publish_setting(make_client, tenant, db, product):
    api = Api(await make_client(auto_publish_verified_reviews=True), tenant.slug)
    user = await buyer(tenant, db, product)
    r = await review(api, user, product)
    assert r.data["status"] == "PUBLISHED"
    assert (await api.get(f"/api/v1/products/{product['id']}/reviews")).data["summary"]["count"] == 1


async def test_staff_response(api, tenant, db, product, staff):
    user = await buyer(tenant, db, product)
    rid = (await review(api, user, product)).data["id"]
    data = await publish(api, staff, rid, response="Thank you!")
    assert data["response"]["content"] == "Thank you!" and data["response"]["respondedAt"].endswith("Z")
    listed = (await api.get(f"/api/v1/products/{product['id']}/reviews")).data["reviews"][0]
    assert listed["response"]["content"] == "Thank you!" and listed["updatedAt"] is not None
    cleared = (await api.patch(f"/api/v1/reviews/{rid}", as_=staff, json={"response": None})).data
    assert cleared["response"] is None
    assert (await api.patch(f"/api/v1/reviews/{rid}", as_=user, json={"status": "PUBLISHED"})).status == 403
    assert (await api.patch(f"/api/v1/reviews/{uuid.uuid4()}", as_=staff, json={"status": "PUBLISHED"})).status == 404
    assert (await api.patch(f"/api/v1/reviews/{rid}", as_=staff, json={"status": "GONE"})).status == 400


async def test_helpful_toggle(api, tenant, db, product, staff):
    author = await buyer(tenant, db, product)
    rid = (await review(api, author, product)).data["id"]
    reader = await tenant.user("customer")
    path = f"/api/v1/products/{product['id']}/reviews/{rid}/helpful"
    assert (await api.post(path, as_=reader)).status == 404  # not published yet
    await publish(api, staff, rid)
    assert (await api.post(path)).status == 401
    on = (await api.post(path, as_=reader)).data
    assert on["helpfulCount"] == 1 and on["isHelpful"] is True
    mine = (await api.get(f"/api/v1/products/{product['id']}/reviews", as_=reader)).data["reviews"][0]
    assert mine["isHelpful"] is True and mine["helpfulCount"] == 1
    assert (await api.get(f"/api/v1/products/{product['id']}/reviews", as_=staff)).data["reviews"][0]["isHelpful"] is False
    off = (await api.post(path, as_=reader)).data
    assert off["helpfulCount"] == 0 and off["isHelpful"] is False
    # Many readers at once: the count equals the marks.
    readers = [await tenant.user("customer") for _ in range(6)]
    await asyncio.gather(*(api.post(path, as_=u) for u in readers))
    assert await db.fetchval("SELECT helpful_count FROM reviews WHERE id = $1::uuid", rid) == 6
    assert (await api.post(f"/api/v1/products/{product['id']}/reviews/{uuid.uuid4()}/helpful", as_=reader)).status == 404


async def test_list_parameters(api, tenant, db, product, staff):
    for rating in (1, 3, 5, 5):
        user = await buyer(tenant, db, product)
        await publish(api, staff, (await review(api, user, product, rating=rating)).data["id"])
    base = f"/api/v1/products/{product['id']}/reviews"
    assert [r["rating"] for r in (await api.get(base, params={"rating": 5})).data["reviews"]] == [5, 5]
    for params in ({"sortBy": "rating", "sortOrder": "asc"}, {"sort": "rating", "order": "asc"}):
        assert [r["rating"] for r in (await api.get(base, params=params)).data["reviews"]] == [1, 3, 5, 5]
    newest = (await api.get(base)).data["reviews"]
    assert newest[0]["createdAt"] >= newest[-1]["createdAt"]
    r = await api.get(base, params={"pageSize": 3, "page": 2, "sortBy": "helpful"})
    assert len(r.data["reviews"]) == 1
    assert r.body["meta"]["pagination"] == {"total": 4, "page": 2, "pageSize": 3, "totalPages": 2,
                                            "hasNext": False, "hasPrevious": True}
    for bad in ({"pageSize": 51}, {"pageSize": 0}, {"rating": 6}, {"sortBy": "evil"}, {"sortOrder": "x"}, {"page": -1}):
        r = await api.get(base, params=bad)
        assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", bad


async def test_concurrent_publishing_keeps_rating_exact(api, tenant, db, product, staff):
    ids = []
    for i in range(10):
        user = await buyer(tenant, db, product)
        ids.append((await review(api, user, product, rating=1 + i % 5)).data["id"])
    await asyncio.gather(*(publish(api, staff, rid) for rid in ids))
    row = await db.fetchrow("SELECT rating_count, rating_sum, rating_distribution FROM products WHERE id = $1::uuid",
                            product["id"])
    assert (row["rating_count"], row["rating_sum"], list(row["rating_distribution"])) == (10, 30, [2, 2, 2, 2, 2])
