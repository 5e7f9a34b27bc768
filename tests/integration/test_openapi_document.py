"""The OpenAPI document tells a client what it will really get: timestamps marked as such, raw
routes with their real content types, and which versions it describes."""

from __future__ import annotations

import json

from web.openapi import SOURCE_DOCUMENTS, engine_version


async def _doc(client) -> dict:
    async with client.get("/api/v1/openapi.json") as r:
        assert r.status == 200 and r.content_type == "application/json"
        return await r.json()


async def test_every_timestamp_field_is_a_date_time(client):
    doc = await _doc(client)
    schemas = doc["components"]["schemas"]
    timestamps = {(name, field): prop for name, schema in schemas.items()
                  for field, prop in schema.get("properties", {}).items() if field.endswith("At")}
    assert len(timestamps) > 20
    unmarked = [key for key, prop in timestamps.items() if '"date-time"' not in json.dumps(prop)]
    assert unmarked == []
    assert schemas["OrderDetailResponse"]["properties"]["createdAt"] == {"type": "string", "format": "date-time"}
    assert schemas["OrderDetailResponse"]["properties"]["expiresAt"]["anyOf"][0] == {"type": "string",
                                                                                     "format": "date-time"}
    # Plain strings stay plain.
    assert schemas["OrderDetailResponse"]["properties"]["orderNumber"] == {"type": "string"}


async def test_raw_routes_declare_their_real_content_types(client):
    doc = await _doc(client)
    paths = doc["paths"]

    def ok(path, method="get", status="200"):
        return paths[path][method]["responses"][status]

    assert list(ok("/metrics")["content"]) == ["text/plain; version=0.0.4"]
    assert list(ok("/api/v1/openapi.json")["content"]) == ["application/json"]
    assert list(ok("/docs")["content"]) == ["text/html"]
    assert list(ok("/pay/{token}")["content"]) == ["text/html"]
    completed = ok("/pay/{token}/complete", "post", "303")
    assert "content" not in completed and "Location" in completed["headers"]
    async with client.get("/metrics") as r:
        assert r.content_type == "text/plain"


async def test_info_version_is_the_engines_and_the_documents_are_named_apart(client):
    info = (await _doc(client))["info"]
    assert info["version"] == engine_version() != "2.4.0"
    assert info["x-source-documents"] == SOURCE_DOCUMENTS
    assert info["x-source-documents"]["platform-api-overview.txt"] == "2.4.0"
