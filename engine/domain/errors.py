"""Domain errors. Each carries the stable code the API documents; its HTTP status lives in
one table in `web/errors.py`, never here (the engine knows nothing of HTTP).

Raise the most specific class; pass `details` (field path -> messages) where the caller can
act on them, and `extra` for machine-readable context (e.g. the quantity still available).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a client may cause. `code` is the documented error code."""

    code = "DOMAIN_ERROR"
    default_message = "The request cannot be completed."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
        code: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details
        self.extra = extra or {}
        if code is not None:
            self.code = code
        super().__init__(self.message)


def _error(name: str, code: str, message: str) -> type[DomainError]:
    return type(name, (DomainError,), {"code": code, "default_message": message, "__doc__": message})


# Generic.
ValidationError = _error("ValidationError", "VALIDATION_ERROR", "The request is invalid.")
Unauthorized = _error("Unauthorized", "UNAUTHORIZED", "Invalid or expired access token.")
Forbidden = _error("Forbidden", "FORBIDDEN", "You do not have permission to do this.")
NotFound = _error("NotFound", "NOT_FOUND", "Not found.")
Conflict = _error("Conflict", "CONFLICT", "The request conflicts with the current state.")
RateLimited = _error("RateLimited", "RATE_LIMIT_EXCEEDED", "Too many requests.")
ServiceUnavailable = _error("ServiceUnavailable", "SERVICE_UNAVAILABLE", "A dependency is unavailable; retry shortly.")
IdempotencyKeyReused = _error("IdempotencyKeyReused", "IDEMPOTENCY_KEY_REUSED", "This Idempotency-Key was used with a different request.")
InvalidStatusTransition = _error("InvalidStatusTransition", "INVALID_STATUS_TRANSITION", "That status change is not allowed.")

# Catalogue.
ProductNotFound = _error("ProductNotFound", "PRODUCT_NOT_FOUND", "Product not found.")
VariantNotFound = _error("VariantNotFound", "VARIANT_NOT_FOUND", "Product variant not found.")
CategoryNotFound = _error("CategoryNotFound", "CATEGORY_NOT_FOUND", "Category not found.")
ReviewNotFound = _error("ReviewNotFound", "REVIEW_NOT_FOUND", "Review not found.")
NotPurchased = _error("NotPurchased", "NOT_PURCHASED", "You must purchase this product to review it.")
AlreadyReviewed = _error("AlreadyReviewed", "ALREADY_REVIEWED", "You have already reviewed this product.")

# Cart and checkout.
ProductUnavailable = _error("ProductUnavailable", "PRODUCT_UNAVAILABLE", "Product is not available.")
InsufficientStock = _error("InsufficientStock", "INSUFFICIENT_STOCK", "Not enough stock available.")
MaxQuantityExceeded = _error("MaxQuantityExceeded", "MAX_QUANTITY_EXCEEDED", "Maximum quantity per item exceeded.")
CartItemNotFound = _error("CartItemNotFound", "CART_ITEM_NOT_FOUND", "Cart item not found.")
CartEmpty = _error("CartEmpty", "CART_EMPTY", "Cart is empty.")
ItemsUnavailable = _error("ItemsUnavailable", "ITEMS_UNAVAILABLE", "Some items are no longer available.")
InvalidAddress = _error("InvalidAddress", "INVALID_ADDRESS", "Shipping address is invalid.")
AddressNotFound = _error("AddressNotFound", "ADDRESS_NOT_FOUND", "Address not found.")
InvalidShippingMethod = _error("InvalidShippingMethod", "INVALID_SHIPPING_METHOD", "Shipping method not available.")
InvalidCoupon = _error("InvalidCoupon", "INVALID_COUPON", "Coupon code is invalid or expired.")
CouponNotFound = _error("CouponNotFound", "COUPON_NOT_FOUND", "Coupon not found.")
KycRequired = _error("KycRequired", "KYC_REQUIRED", "KYC verification required for this purchase.")
InsufficientBalance = _error("InsufficientBalance", "INSUFFICIENT_BALANCE", "Partner balance is too low for this payment.")
TooManyUnpaidOrders = _error("TooManyUnpaidOrders", "TOO_MANY_UNPAID_ORDERS", "Too many unpaid orders: pay or cancel one first.")

# Orders, refunds, payments.
OrderNotFound = _error("OrderNotFound", "ORDER_NOT_FOUND", "Order not found.")
CannotCancel = _error("CannotCancel", "CANNOT_CANCEL", "Order cannot be cancelled.")
CannotRefund = _error("CannotRefund", "CANNOT_REFUND", "Order is not eligible for refund.")
RefundPeriodExpired = _error("RefundPeriodExpired", "REFUND_PERIOD_EXPIRED", "Refund period has expired.")
RefundAlreadyRequested = _error("RefundAlreadyRequested", "REFUND_ALREADY_REQUESTED", "Refund request already pending.")
RefundNotFound = _error("RefundNotFound", "REFUND_NOT_FOUND", "Refund request not found.")
PriceListNotFound = _error("PriceListNotFound", "PRICE_LIST_NOT_FOUND", "Price list not found.")
RefundFailed = _error("RefundFailed", "REFUND_FAILED", "The payment provider refused the refund.")
NotShipped = _error("NotShipped", "NOT_SHIPPED", "Order has not been shipped yet.")
InvalidSignature = _error("InvalidSignature", "INVALID_SIGNATURE", "Webhook signature is invalid.")

# Shipping.
InvalidDestination = _error("InvalidDestination", "INVALID_DESTINATION", "Cannot ship to this destination.")
ShippingNotAvailable = _error("ShippingNotAvailable", "SHIPPING_NOT_AVAILABLE", "No shipping available to this location.")
ShippingMethodNotFound = _error("ShippingMethodNotFound", "SHIPPING_METHOD_NOT_FOUND", "Shipping method not found.")

# Identity.
UserNotFound = _error("UserNotFound", "USER_NOT_FOUND", "User not found.")
EmailTaken = _error("EmailTaken", "EMAIL_TAKEN", "An account with this email already exists.")
InvalidCredentials = _error("InvalidCredentials", "INVALID_CREDENTIALS", "Invalid email or password.")
ApiKeyNotFound = _error("ApiKeyNotFound", "API_KEY_NOT_FOUND", "API key not found.")
TenantNotFound = _error("TenantNotFound", "TENANT_NOT_FOUND", "Tenant not found.")

# Actors.
ActorUnavailable = _error("ActorUnavailable", "SERVICE_UNAVAILABLE", "The engine is busy; retry shortly.")

# Event webhooks (issue 19).
WebhookSubscriptionNotFound = _error("WebhookSubscriptionNotFound", "WEBHOOK_SUBSCRIPTION_NOT_FOUND", "Webhook subscription not found.")
WebhookDeliveryNotFound = _error("WebhookDeliveryNotFound", "WEBHOOK_DELIVERY_NOT_FOUND", "Webhook delivery not found.")
