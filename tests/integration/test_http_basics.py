"""Cross-cutting HTTP behaviour: envelope, error mapping, guards, request ids, readiness."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import msgspec
import pytest
import structlog.testing
from aiohttp.test_utils import TestClient, TestServer

from engine.domain.errors import InsufficientStock
from web.api import Req, RouteTable
from web.app import create_app


class Echo(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    product_id: str
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    tags: list[str] = []


class EchoQuery(msgspec.Struct, rename="camel"):
    page: Annotated[int, msgspec.Meta(ge=1)] = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20


probe = RouteTable()


@probe.post("/test/echo", body=Echo, response=Echo, status=201)
async def echo(req: Req) -> Echo:
    return req.body


@probe.get("/test/query", query=EchoQuery, response=EchoQuery)
async def query(req: Req) -> EchoQuery:
    return req.query


@probe.get("/test/items/{id}")
async def item(req: Req) -> dict:
    return {"id": str(req.params["id"])}


@probe.get("/test/stock")
async def stock(req: Req) -> dict:
    raise InsufficientStock("Only 3 left.", extra={"available": 3})


@probe.get("/test/constraint")
async def constraint(req: Req) -> dict:
    import asyncpg

    raise asyncpg.CheckViolationError("new row violates check constraint")


@probe.get("/test/slow")
async def slow(req: Req) -> dict:
    await asyncio.sleep(5)
    return {}


@probe.get("/test/boom")
async def boom(req: Req) -> dict:
    raise RuntimeError("secret internals")


@pytest.fixture
async def probe_client(base_settings) -> TestClient:
    app = create_app(base_settings.with_(max_body_bytes=64 * 1024))
    probe.register(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def _call(client: TestClient, method: str, path: str, **kw):
    async with client.request(method, path, **kw) as r:
        return r.status, await r.json(content_type=None), r.headers


async def test_success_envelope(probe_client):
    status, body, _ = await _call(probe_client, "POST", "/api/v1/test/echo", json={"productId": "p", "quantity": 2})
    assert status == 201
    assert body == {"success": True, "data": {"productId": "p", "quantity": 2, "tags": []}}


async def test_unknown_route_and_method_use_envelope(probe_client):
    status, body, _ = await _call(probe_client, "GET", "/api/v1/nope")
    assert status == 404 and body["success"] is False and body["error"]["code"] == "NOT_FOUND"
    status, body, headers = await _call(probe_client, "DELETE", "/api/v1/test/echo")
    assert status == 405 and body["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert "POST" in headers.get("Allow", "")


@pytest.mark.parametrize("raw, field", [
    (b"{not json", "body"),
    (b"", "body"),
    (b'{"productId": 1, "quantity": 1}', "productId"),
    (b'{"productId": "p"}', "quantity"),
    (b'{"productId": "p", "quantity": 0}', "quantity"),
    (b'{"productId": "p", "quantity": 1, "role": "staff"}', "role"),
    (b'{"productId": "p", "quantity": 99999999999999999999999999}', "quantity"),
    (b'{"productId": "p", "quantity": 1, "tags": [1]}', "tags[0]"),
    (b'{"productId": "a\\u0000b", "quantity": 1}', "body"),
    (b'\xff\xfe{"productId": "p"}', "body"),
])
async def test_bad_bodies_are_400_with_field_details(probe_client, raw, field):
    status, body, _ = await _call(probe_client, "POST", "/api/v1/test/echo", data=raw,
                                  headers={"Content-Type": "application/json"})
    assert status == 400, body
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert field in body["error"]["details"], body


async def test_deeply_nested_json_is_400_not_500(probe_client):
    deep = b"[" * 100_000 + b"]" * 100_000
    app = create_app(probe_client.server.app[__import__("web.keys", fromlist=["SETTINGS"]).SETTINGS].with_(max_body_bytes=1_000_000))
    probe.register(app)
    async with TestClient(TestServer(app)) as c:
        status, body, _ = await _call(c, "POST", "/api/v1/test/echo", data=deep, headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"]["code"] == "VALIDATION_ERROR"


async def test_oversized_body_is_413(probe_client):
    big = json.dumps({"productId": "x" * 100_000, "quantity": 1})
    status, body, _ = await _call(probe_client, "POST", "/api/v1/test/echo", data=big,
                                  headers={"Content-Type": "application/json"})
    assert status == 413 and body["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_wrong_content_type_is_415(probe_client):
    status, body, _ = await _call(probe_client, "POST", "/api/v1/test/echo", data="productId=p",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and body["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_query_validation_and_duplicates(probe_client):
    status, body, _ = await _call(probe_client, "GET", "/api/v1/test/query?page=2&pageSize=50")
    assert status == 200 and body["data"] == {"page": 2, "pageSize": 50}
    for qs, field in [("pageSize=0", "pageSize"), ("pageSize=101", "pageSize"), ("page=abc", "page"),
                      ("page=1&page=2", "page")]:
        status, body, _ = await _call(probe_client, "GET", f"/api/v1/test/query?{qs}")
        assert status == 400 and field in body["error"]["details"], (qs, body)


async def test_path_ids_must_be_uuids(probe_client):
    status, body, _ = await _call(probe_client, "GET", "/api/v1/test/items/not-a-uuid")
    assert status == 400 and body["error"]["details"] == {"id": ["must be a UUID"]}
    status, body, _ = await _call(probe_client, "GET", "/api/v1/test/items/3f1c2d6e-4b5a-4c3d-9e8f-0a1b2c3d4e5f")
    assert status == 200


async def test_domain_error_maps_through_the_table(probe_client):
    status, body, _ = await _call(probe_client, "GET", "/api/v1/test/stock")
    assert status == 400
    assert body["error"]["code"] == "INSUFFICIENT_STOCK" and body["error"]["available"] == 3


async def test_500_hides_internals_and_carries_request_id(probe_client):
    status, body, headers = await _call(probe_client, "GET", "/api/v1/test/boom", headers={"X-Request-ID": "abc-123"})
    assert status == 500 and body["error"]["code"] == "INTERNAL_ERROR"
    assert "secret internals" not in json.dumps(body) and "Traceback" not in json.dumps(body)
    assert body["error"]["requestId"] == "abc-123" and headers["X-Request-ID"] == "abc-123"


async def test_the_request_log_line_carries_the_error_code(probe_client):
    with structlog.testing.capture_logs() as logs:
        await _call(probe_client, "GET", "/api/v1/test/stock")
        await _call(probe_client, "GET", "/api/v1/test/boom")
        await _call(probe_client, "GET", "/healthz")
    lines = {e["route"]: e for e in logs if e["event"] == "request"}
    assert lines["/api/v1/test/stock"]["error"] == "INSUFFICIENT_STOCK"
    assert lines["/api/v1/test/boom"]["error"] == "INTERNAL_ERROR"
    assert lines["/healthz"]["error"] is None


async def test_request_id_generated_or_echoed(probe_client):
    _, _, headers = await _call(probe_client, "GET", "/healthz")
    assert len(headers["X-Request-ID"]) == 32
    _, _, headers = await _call(probe_client, "GET", "/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert headers["X-Request-ID"] != "bad id\twith spaces"


async def test_readiness(client):
    status, body, _ = await _call(client, "GET", "/readyz")
    assert status == 200 and body["data"] == {"status": "ready", "postgres": True, "redis": True}


async def test_readiness_with_dependencies_down(make_client):
    c = await make_client(redis_url="redis://127.0.0.1:1/0")
    status, body, headers = await _call(c, "GET", "/readyz")
    assert status == 503 and body["error"]["code"] == "SERVICE_UNAVAILABLE" and "Retry-After" in headers
    assert body["error"]["redis"] is False and body["error"]["postgres"] is True


async def test_readiness_with_database_down(base_settings):
    app = create_app(base_settings.with_(database_url="postgresql://postgres@127.0.0.1:1/none", db_pool_min=0))
    # The pool cannot open at start-up against a dead server; the process still starts and says so.
    async with TestClient(TestServer(app)) as c:
        status, body, headers = await _call(c, "GET", "/readyz")
    assert status == 503 and body["error"]["postgres"] is False


async def test_metrics_exposes_request_counts(client):
    await _call(client, "GET", "/healthz")
    async with client.get("/metrics") as r:
        text = await r.text()
    assert 'http_requests_total{method="GET",route="/healthz",status="200"}' in text


async def test_openapi_is_valid_31(client):
    from openapi_spec_validator import validate

    async with client.get("/api/v1/openapi.json") as r:
        doc = await r.json()
    assert doc["openapi"] == "3.1.0"
    validate(doc)
    async with client.get("/docs") as r:
        assert r.status == 200 and "openapi.json" in await r.text()


async def test_docs_serve_swagger_ui_from_the_package_offline(client):
    async with client.get("/docs") as r:
        page = await r.text()
    assert r.status == 200 and "/api/v1/openapi.json" in page
    links = [line for line in page.splitlines() if "src=" in line or "href=" in line]
    assert links and not any("http" in line or "//" in line.replace("<!--", "") for line in links)   # no CDN
    async with client.get("/docs/assets/swagger-ui-bundle.js") as r:
        body = await r.read()
    assert r.status == 200 and b"SwaggerUIBundle" in body and len(body) > 500_000   # the real bundle, not a stub
    async with client.get("/docs/assets/docs-init.js") as r:
        assert r.status == 200 and "data-spec-url" in await r.text()
    async with client.get("/docs/assets/index.html") as r:
        assert r.status == 404     # only the listed files are served


async def test_openapi_shows_money_as_numbers(client):
    async with client.get("/api/v1/openapi.json") as r:
        text = await r.text()
    assert '"format":"decimal"' not in text.replace(" ", "")


async def test_metrics_show_the_process_but_leave_cluster_figures_to_the_worker(client):
    async with client.get("/metrics") as r:
        text = await r.text()
    assert "process_cpu_seconds_total" in text and "process_resident_memory_bytes" in text
    # Queue depths and outbox lag come from the worker's endpoint only (workers/metrics.py).
    assert "outbox_lag_rows" not in text and "job_queue_messages{" not in text


async def test_a_constraint_that_validation_missed_is_400_not_500(probe_client):
    status, body, _ = await _call(probe_client, "GET", "/api/v1/test/constraint")
    assert status == 400 and body["error"]["code"] == "VALIDATION_ERROR"


async def test_a_request_past_its_deadline_answers_503_with_retry_after(base_settings):
    app = create_app(base_settings.with_(request_timeout=0.2))
    probe.register(app)
    async with TestClient(TestServer(app)) as c:
        status, body, headers = await _call(c, "GET", "/api/v1/test/slow")
    assert status == 503 and body["error"]["code"] == "SERVICE_UNAVAILABLE" and "Retry-After" in headers


async def test_features_set_up_in_any_order(make_client, tenant, monkeypatch):
    """web/app.py's FEATURES order is only the OpenAPI document's: shared resources (pool,
    Redis, actor services) start before any feature's setup, so reversing it changes nothing."""
    import web.app

    monkeypatch.setattr(web.app, "FEATURES", tuple(reversed(web.app.FEATURES)))
    client = await make_client()
    me = await tenant.user("customer")
    async with client.get("/readyz") as r:
        assert r.status == 200
    async with client.get("/api/v1/cart", headers=me.headers) as r:  # through the user actors
        assert r.status == 200, await r.text()
    async with client.get("/api/v1/me", headers=me.headers) as r:  # identity's authenticator
        assert r.status == 200, await r.text()
    async with client.get("/metrics") as r:  # web.resources' actor collector
        assert 'actors_live{kind="user"}' in await r.text()
