"""Browse: anonymous and signed-in catalogue traffic (listings with filters and search, details,
categories, reviews), with a shopper's think time between pages."""

from __future__ import annotations

import random

from locust import HttpUser, between, task

from loadtests.scenarios.common import API, bearer, next_buyer, shop


class Browser(HttpUser):
    """Anonymous visitor: the caller is its address, the tenant the default one."""

    wait_time = between(0.5, 2.0)
    weight = 3

    def on_start(self) -> None:
        self.headers: dict[str, str] = {}

    @task(4)
    def listing(self) -> None:
        s = shop(self)
        params = {"page": random.randint(1, 3), "pageSize": 20,
                  "sortBy": random.choice(["price", "name", "createdAt", "popularity"]),
                  "sortOrder": random.choice(["asc", "desc"])}
        if random.random() < 0.5:
            params["category"] = random.choice(list(s.category_ids))
        if random.random() < 0.3:
            params.update(minPrice=1000, maxPrice=30000)
        self.client.get(f"{API}/products", params=params, headers=self.headers, name="GET /products")

    @task(2)
    def search(self) -> None:
        self.client.get(f"{API}/products", params={"search": random.choice(shop(self).search_words)},
                        headers=self.headers, name="GET /products?search")

    @task(5)
    def detail(self) -> None:
        pid = random.choice(shop(self).product_ids[:50])
        self.client.get(f"{API}/products/{pid}", headers=self.headers, name="GET /products/{id}")

    @task(1)
    def categories(self) -> None:
        self.client.get(f"{API}/categories", headers=self.headers, name="GET /categories")

    @task(1)
    def reviews(self) -> None:
        pid = random.choice(shop(self).product_ids[:10])
        self.client.get(f"{API}/products/{pid}/reviews", params={"sortBy": "helpful"}, headers=self.headers,
                        name="GET /products/{id}/reviews")


class SignedInBrowser(Browser):
    """A signed-in customer browsing: same pages, its own rate-limit bucket."""

    weight = 1

    def on_start(self) -> None:
        self.headers = bearer(next_buyer(self).token)
