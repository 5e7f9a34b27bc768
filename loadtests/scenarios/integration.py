"""Integration: a server-to-server client with an API key (the platform document's use):
create products, list them, create orders and move them through their statuses."""

from __future__ import annotations

import random
import uuid

from locust import HttpUser, between, task

from loadtests.scenarios.common import API, data, error_code, idempotency, next_buyer, shop

NEXT = {"PENDING_PAYMENT": "PAID", "PAID": "PROCESSING", "PROCESSING": "SHIPPED", "SHIPPED": "DELIVERED"}


class Integration(HttpUser):
    wait_time = between(0.2, 0.8)

    def on_start(self) -> None:
        s = shop(self)
        self.headers = {"X-API-Key": s.api_keys["enterprise"]}
        self.product_ids: list[str] = []
        self.orders: dict[str, str] = {}
        self.buyer = next_buyer(self)

    @task(2)
    def create_product(self) -> None:
        s = shop(self)
        tag = uuid.uuid4().hex[:10]
        body = {"name": f"Integration item {tag}", "description": "Created by the integration load test.",
                "price": random.randint(100, 10000), "sku": f"INT-{tag}", "stockQuantity": 1000,
                "categoryId": random.choice(list(s.category_ids.values()))}
        with self.client.post(f"{API}/products", json=body, headers=self.headers, name="POST /products",
                              catch_response=True) as r:
            if r.status_code == 201 and (d := data(r)):
                self.product_ids.append(d["id"])
                r.success()
            else:
                r.failure(f"{r.status_code} {error_code(r)}")

    @task(3)
    def list_products(self) -> None:
        self.client.get(f"{API}/products", params={"pageSize": 50, "sort": "createdAt", "order": "desc"},
                        headers=self.headers, name="GET /products")

    @task(2)
    def create_order(self) -> None:
        s = shop(self)
        pid = random.choice(self.product_ids or s.product_ids)
        body = {"customerId": self.buyer.id, "items": [{"productId": pid, "quantity": 1}],
                "shippingAddressId": self.buyer.address_id, "shippingMethodId": s.shipping_method_id,
                "paymentMethod": "BANK_TRANSFER"}
        with self.client.post(f"{API}/orders", json=body, headers={**self.headers, **idempotency()},
                              name="POST /orders", catch_response=True) as r:
            if r.status_code in (200, 201) and (d := data(r)):
                self.orders[d.get("id") or d.get("orderId")] = d.get("status", "PENDING_PAYMENT")
                r.success()
            else:
                r.failure(f"{r.status_code} {error_code(r)}")

    @task(3)
    def move_status(self) -> None:
        movable = [(oid, st) for oid, st in self.orders.items() if st in NEXT]
        if not movable:
            return
        oid, status = random.choice(movable)
        body = {"status": NEXT[status]}
        if NEXT[status] == "SHIPPED":  # shipping through PATCH names the parcel (docs/DECISIONS.md)
            body.update(carrier="Sandbox", trackingNumber=f"LT{oid.replace('-', '')[:20]}")
        with self.client.patch(f"{API}/orders/{oid}/status", json=body, headers=self.headers,
                               name="PATCH /orders/{id}/status", catch_response=True) as r:
            if r.status_code == 200:
                self.orders[oid] = NEXT[status]
                r.success()
            else:
                r.failure(f"{r.status_code} {error_code(r)}")
