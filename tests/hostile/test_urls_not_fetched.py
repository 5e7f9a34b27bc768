"""Submitted URLs (product and category images) are stored, never fetched by the server.

A listener on 127.0.0.1 stands in for an internal service (and the cloud metadata address is
submitted too): creating, changing and reading the product must not open a single connection.
"""

from __future__ import annotations

import asyncio
import uuid


async def test_image_urls_are_never_fetched(api, tenant) -> None:
    hits: list[bytes] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append(await reader.read(200))
        writer.close()

    listener = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    internal = f"http://127.0.0.1:{port}/secret.png"
    try:
        staff = await tenant.user("staff")
        r = await api.post("/api/v1/products", as_=staff, json={
            "name": "SSRF bait", "sku": f"SSRF-{uuid.uuid4().hex[:6]}", "price": 10,
            "images": [{"url": internal, "thumbnailUrl": f"http://localhost:{port}/t.png"},
                       {"url": "http://169.254.169.254/latest/meta-data/iam/"},
                       {"url": "http://[::1]:%d/x" % port}, {"url": "http://10.0.0.1/x.png"}]})
        assert r.status == 201, r.body
        pid = r.data["id"]
        await api.patch(f"/api/v1/products/{pid}", as_=staff, json={"images": [{"url": internal}]})
        await api.get(f"/api/v1/products/{pid}")
        await api.get("/api/v1/products")
        await api.post("/api/v1/categories", as_=staff, json={"name": "Bait", "slug": f"bait-{uuid.uuid4().hex[:6]}",
                                                             "imageUrl": internal})
        await asyncio.sleep(0.5)  # anything fetching in the background would have connected by now
    finally:
        listener.close()
        await listener.wait_closed()
    assert hits == [], f"the server fetched a submitted URL: {hits}"
