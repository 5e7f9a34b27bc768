"""Checkout through the API: the order it creates, payment instructions, every error code."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal

from tests.integration.conftest_orders import (make_address, make_buyer, make_coupon, make_product,
                                               make_shipping_method, stock_of)

CHECKOUT = "/api/v1/cart/checkout"


async def test_card_checkout_creates_pending_order_reserves_stock_and_empties_cart(api, tenant, db):
    pid = await make_product(db, tenant.id, price="2500", stock=10)
    method = await make_shipping_method(db, tenant.id, price="350")
    await make_coupon(db, tenant.id, "WELCOME10", "PERCENTAGE", "10")
    buyer = await make_buyer(tenant, db, [(pid, 3)])
    r = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method, couponCodes=["welcome10"]))
    assert r.status == 201, r.body
    d = r.data
    assert re.fullmatch(r"ORD-\d{4}-\d{8}", d["orderNumber"])
    assert d["status"] == "PENDING_PAYMENT"
    assert d["summary"] == {"subtotal": 7500, "discount": 750, "shipping": 350, "tax": 1350, "total": 8450}
    assert d["payment"]["method"] == "CARD" and d["payment"]["amount"] == 8450 and d["payment"]["currency"] == "RUB"
    assert d["payment"]["paymentUrl"].startswith("http") and "/pay/" in d["payment"]["paymentUrl"]
    assert d["orderId"] not in d["payment"]["paymentUrl"]  # a signed token, not the guessable id
    assert "bankDetails" not in d["payment"] and d["payment"]["expiresAt"].endswith("Z")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", d["estimatedDelivery"])

    assert await stock_of(db, pid) == {"on_hand": 10, "available": 7, "reserved": 3, "sold": 0}
    assert await db.fetchval("SELECT count(*) FROM cart_items ci JOIN carts c ON c.id = ci.cart_id"
                             " WHERE c.user_id = $1", buyer.user.id) == 0
    oid = uuid.UUID(d["orderId"])
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE job = 'expire_order' AND payload->>'order_id' = $1",
                             str(oid)) == 1
    assert await db.fetchval("SELECT used_count FROM coupons WHERE tenant_id = $1", tenant.id) == 1
    assert await db.fetchval("SELECT count(*) FROM coupon_redemptions WHERE order_id = $1", oid) == 1

    detail = (await api.get(f"/api/v1/orders/{oid}", as_=buyer.user)).data
    assert detail["status"] == "PENDING_PAYMENT" and detail["paymentStatus"] == "PENDING"
    assert detail["items"][0]["quantity"] == 3 and detail["items"][0]["unitPrice"] == 2500
    assert detail["items"][0]["product"]["thumbnailUrl"].endswith("-thumb.jpg")
    assert detail["pricing"]["total"] == 8450 and detail["pricing"]["currency"] == "RUB"
    assert detail["shippingAddress"]["recipientName"] == "John Doe" and detail["billingAddress"] is None
    assert detail["shippingMethod"]["name"] == "Standard Delivery"
    assert detail["payment"] == {"method": "CARD", "transactionId": None, "paidAt": None}
    assert detail["appliedCoupons"] == [{"code": "WELCOME10", "discount": 750}]
    assert [h["status"] for h in detail["statusHistory"]] == ["PENDING_PAYMENT"]
    assert detail["canCancel"] is True and detail["canRefund"] is False

    listed = await api.get("/api/v1/orders", as_=buyer.user)
    assert [o["id"] for o in listed.data["orders"]] == [str(oid)]
    assert listed.data["orders"][0]["itemCount"] == 3
    assert listed.body["meta"]["pagination"]["total"] == 1


async def test_bank_transfer_answers_bank_details(api, tenant, db):
    pid = await make_product(db, tenant.id, stock=5)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    r = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method, paymentMethod="BANK_TRANSFER"))
    assert r.status == 201, r.body
    bank = r.data["payment"]["bankDetails"]
    assert set(bank) == {"bankName", "accountNumber", "bik", "purpose"}
    assert r.data["orderNumber"] in bank["purpose"] and "paymentUrl" not in r.data["payment"]


async def test_balance_payment_pays_at_once_and_sells_the_units(api, tenant, db):
    pid = await make_product(db, tenant.id, price="1000", stock=5)
    method = await make_shipping_method(db, tenant.id, price="0")
    buyer = await make_buyer(tenant, db, [(pid, 2)], role="partner")
    await db.execute("UPDATE partner_balances SET balance = 5000 WHERE user_id = $1", buyer.user.id)
    r = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method, paymentMethod="BALANCE"))
    assert r.status == 201, r.body
    assert r.data["status"] == "PAID" and r.data["summary"]["total"] == 2400
    assert await db.fetchval("SELECT balance FROM partner_balances WHERE user_id = $1", buyer.user.id) == Decimal("2600.00")
    assert await db.fetchval("SELECT amount FROM partner_ledger WHERE user_id = $1 AND kind = 'PAYMENT'",
                             buyer.user.id) == Decimal("-2400.00")
    assert await stock_of(db, pid) == {"on_hand": 5, "available": 3, "reserved": 0, "sold": 2}
    assert await db.fetchval("SELECT units_sold FROM products WHERE id = $1", pid) == 2
    order = await db.fetchrow("SELECT status, payment_status, paid_at FROM orders WHERE id = $1",
                              uuid.UUID(r.data["orderId"]))
    assert order["status"] == "PAID" and order["payment_status"] == "PAID" and order["paid_at"] is not None
    # expiresAt is a string as the storefront types it: the instant the balance payment settled.
    expires = dt.datetime.fromisoformat(r.data["payment"]["expiresAt"].replace("Z", "+00:00"))
    assert abs(expires - order["paid_at"]) < dt.timedelta(seconds=30)


async def test_balance_too_low_is_insufficient_balance_and_releases(api, tenant, db):
    pid = await make_product(db, tenant.id, price="1000", stock=5)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 2)], role="partner")
    r = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method, paymentMethod="BALANCE"))
    assert r.status == 400 and r.error["code"] == "INSUFFICIENT_BALANCE"
    assert await stock_of(db, pid) == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}
    assert await db.fetchval("SELECT count(*) FROM orders WHERE tenant_id = $1", tenant.id) == 0


async def test_error_codes(api, tenant, db):
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db)
    r = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method))
    assert r.status == 400 and r.error["code"] == "CART_EMPTY"

    archived = await make_product(db, tenant.id, status="ARCHIVED")
    b2 = await make_buyer(tenant, db, [(archived, 1)])
    r = await api.post(CHECKOUT, as_=b2.user, json=b2.body(method))
    assert r.status == 400 and r.error["code"] == "ITEMS_UNAVAILABLE"

    scarce = await make_product(db, tenant.id, stock=2)
    b3 = await make_buyer(tenant, db, [(scarce, 3)])
    r = await api.post(CHECKOUT, as_=b3.user, json=b3.body(method))
    assert r.status == 400 and r.error["code"] == "INSUFFICIENT_STOCK"
    assert r.error["available"] == 2 and r.error["productId"] == str(scarce)

    fine = await make_product(db, tenant.id, stock=50)
    b4 = await make_buyer(tenant, db, [(fine, 1)])
    other = await tenant.user()
    foreign_address = await make_address(db, tenant.id, other.id)
    r = await api.post(CHECKOUT, as_=b4.user, json=b4.body(method, shippingAddressId=str(foreign_address)))
    assert r.status == 400 and r.error["code"] == "INVALID_ADDRESS"
    r = await api.post(CHECKOUT, as_=b4.user, json=b4.body(uuid.uuid4()))
    assert r.status == 400 and r.error["code"] == "INVALID_SHIPPING_METHOD"
    kz_only = await make_shipping_method(db, tenant.id, countries=("KZ",))
    r = await api.post(CHECKOUT, as_=b4.user, json=b4.body(kz_only))
    assert r.status == 400 and r.error["code"] == "INVALID_SHIPPING_METHOD"
    r = await api.post(CHECKOUT, as_=b4.user, json=b4.body(method, couponCodes=["NOPE"]))
    assert r.status == 400 and r.error["code"] == "INVALID_COUPON"
    await make_coupon(db, tenant.id, "OLD", ends_at=__import__("datetime").datetime(2020, 1, 1,
                                                                                    tzinfo=__import__("datetime").timezone.utc))
    r = await api.post(CHECKOUT, as_=b4.user, json=b4.body(method, couponCodes=["OLD"]))
    assert r.status == 400 and r.error["code"] == "INVALID_COUPON"
    await make_coupon(db, tenant.id, "ONCE", usage_limit=1, used_count=1)
    r = await api.post(CHECKOUT, as_=b4.user, json=b4.body(method, couponCodes=["ONCE"]))
    assert r.status == 400 and r.error["code"] == "INVALID_COUPON"
    # None of the failures held stock or created orders.
    assert (await stock_of(db, fine))["reserved"] == 0
    assert await db.fetchval("SELECT count(*) FROM orders WHERE tenant_id = $1", tenant.id) == 0


async def test_kyc_required_above_the_limit_unless_verified(make_client, tenant, db):
    from tests.conftest import Api
    api = Api(await make_client(kyc_limit=Decimal("1000")), tenant.slug)
    pid = await make_product(db, tenant.id, price="2000", stock=5)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    r = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method))
    assert r.status == 403 and r.error["code"] == "KYC_REQUIRED"
    assert (await stock_of(db, pid))["reserved"] == 0
    verified = await make_buyer(tenant, db, [(pid, 1)], kyc_status="VERIFIED")
    r = await api.post(CHECKOUT, as_=verified.user, json=verified.body(method))
    assert r.status == 201, r.body


async def test_bad_input(api, tenant, db):
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db)
    body = buyer.body(method)
    for bad in ({**body, "paymentMethod": "CASH"}, {**body, "shippingAddressId": "nope"}, {**body, "extra": 1},
                {**body, "couponCodes": ["X"] * 11}, {**body, "notes": "x" * 1001}, {"paymentMethod": "CARD"}):
        r = await api.post(CHECKOUT, as_=buyer.user, json=bad)
        assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", (bad, r.body)
    r = await api.post(CHECKOUT, json=body)
    assert r.status == 401


async def test_idempotency_key_replays_the_first_response_and_refuses_another_body(api, tenant, db):
    pid = await make_product(db, tenant.id, stock=5)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    headers = {"Idempotency-Key": "key-1"}
    first = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method), headers=headers)
    again = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method), headers=headers)
    assert first.status == again.status == 201 and first.raw == again.raw
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method, notes="x"), headers=headers)
    assert other.status == 422 and other.error["code"] == "IDEMPOTENCY_KEY_REUSED"
    # A failed request stores nothing: after fixing the cause, the same key runs again.
    failed = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method), headers={"Idempotency-Key": "key-2"})
    assert failed.status == 400 and failed.error["code"] == "CART_EMPTY"
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = 'key-2'") == 0
    assert await db.fetchval("SELECT count(*) FROM orders WHERE tenant_id = $1", tenant.id) == 1


async def test_a_keyed_checkout_claims_its_key_in_the_order_statement(api, tenant, db, monkeypatch):
    """No claim round trip before checkout (issue 14): the order statement claims the key, and a
    retry is answered from the key's row after its own attempt fails (the cart is empty now)."""
    from engine import idempotency

    async def never(*_args, **_kwargs):
        raise AssertionError("checkout claims its key in the order statement")

    monkeypatch.setattr(idempotency, "claim", never)
    pid = await make_product(db, tenant.id, stock=5)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    headers = {"Idempotency-Key": "in-the-statement"}
    first = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method), headers=headers)
    assert first.status == 201, first.body
    again = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method), headers=headers)
    assert again.status == 201 and again.raw == first.raw and again.headers.get("Idempotent-Replayed") == "true"
    other = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method, notes="x"), headers=headers)
    assert other.status == 422 and other.error["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await db.fetchval("SELECT count(*) FROM orders WHERE tenant_id = $1", tenant.id) == 1
    assert await stock_of(db, pid) == {"on_hand": 5, "available": 4, "reserved": 1, "sold": 0}


async def test_the_idempotent_response_commits_with_the_order_not_after_it(api, tenant, db, monkeypatch):
    """The response is stored by the order's own statement: even if storing it afterwards
    never happened (a crash right after the commit), a retry gets the first answer, byte for
    byte, including the order number wherever the body shows it."""
    from engine import idempotency

    async def never(*_args, **_kwargs):
        raise AssertionError("the response was already stored with the order")

    monkeypatch.setattr(idempotency, "complete", never)
    pid = await make_product(db, tenant.id, stock=5)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    headers = {"Idempotency-Key": "with-the-order"}
    body = buyer.body(method, paymentMethod="BANK_TRANSFER")
    first = await api.post(CHECKOUT, as_=buyer.user, json=body, headers=headers)
    assert first.status == 201, first.body
    number = first.data["orderNumber"]
    assert first.data["payment"]["bankDetails"]["purpose"] == f"Payment for order {number}"
    # Stored as the engine's record of the order (web renders it), its number filled in by the statement.
    stored = await db.fetchrow("SELECT response_status, response_body, response_kind,"
                               " response_record->>'order_number' AS number FROM idempotency_keys WHERE key = $1",
                               "with-the-order")
    assert stored["response_status"] == 201 and stored["response_body"] is None
    assert (stored["response_kind"], stored["number"]) == ("placed_order", number)
    again = await api.post(CHECKOUT, as_=buyer.user, json=body, headers=headers)
    assert again.status == 201 and again.raw == first.raw and again.headers.get("Idempotent-Replayed") == "true"
    assert await db.fetchval("SELECT count(*) FROM orders WHERE tenant_id = $1", tenant.id) == 1
