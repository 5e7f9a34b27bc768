"""Flash sale: many buyers, one hot product with limited stock. Each buyer puts the product in
its cart and checks out once (pays nothing: the reservation is what is contended). A sold-out
answer (400 INSUFFICIENT_STOCK) is a correct outcome, not a failure; an oversell would show in
the post-run database check."""

from __future__ import annotations

from locust import HttpUser, constant, task

from loadtests.scenarios.common import API, bearer, error_code, idempotency, next_buyer, record_checkout, shop

SOLD_OUT = ("INSUFFICIENT_STOCK", "ITEMS_UNAVAILABLE")


class FlashBuyer(HttpUser):
    wait_time = constant(0.1)

    def on_start(self) -> None:
        self.buyer = next_buyer(self)
        self.done = False

    @task
    def buy_once(self) -> None:
        if self.done:
            # One purchase per buyer; then take the next buyer (a new customer arriving).
            self.buyer = next_buyer(self)
            self.done = False
        s, h = shop(self), bearer(self.buyer.token)
        with self.client.post(f"{API}/cart/items", json={"productId": s.hot_product_id, "quantity": 1},
                              headers=h, name="POST /cart/items", catch_response=True) as r:
            sold_out = r.status_code >= 300 and error_code(r) in SOLD_OUT
            if r.status_code >= 300 and not sold_out:
                r.failure(f"{r.status_code} {error_code(r)}")
                return
            r.success()
        if sold_out:  # nothing in the cart: this buyer leaves without checking out
            self.done = True
            return
        body = {"shippingAddressId": self.buyer.address_id, "shippingMethodId": s.shipping_method_id,
                "paymentMethod": "CARD"}
        with self.client.post(f"{API}/cart/checkout", json=body, headers={**h, **idempotency()},
                              name="POST /cart/checkout", catch_response=True) as r:
            if r.status_code in (200, 201):
                record_checkout(self, self.buyer.id)
                r.success()
            elif r.status_code == 400 and error_code(r) in SOLD_OUT:
                r.success()
            else:
                r.failure(f"{r.status_code} {error_code(r)}")
        self.done = True
