"""Who sees what in the catalogue, and at which price.

`price_for` is the public list price every view is rendered with (so anonymous reads stay
cacheable); a signed-in buyer's customer-group prices are laid over the rendered views by
engine.price_lists.personalise, which asks the same SQL rule the cart and checkout use.
"""

from __future__ import annotations

from decimal import Decimal

from engine.domain.principal import Principal


def sees_hidden(principal: Principal) -> bool:
    """Staff and catalogue API keys may see DRAFT, ARCHIVED and soft-deleted products."""
    return principal.is_staff or principal.can("products:read") or principal.can("products:write")


def moderates_reviews(principal: Principal) -> bool:
    return principal.can("reviews:write")


def price_for(principal: Principal, list_price: Decimal) -> Decimal:
    """The price `principal` pays for a product whose list price is `list_price`."""
    return list_price


def shares_public_view(principal: Principal) -> bool:
    """True when `principal` sees exactly what every anonymous caller sees (list prices, no hidden
    products), so a document cached for one may be served to another. Only anonymous callers
    today: a signed-in read bypasses the shared cache, which leaves room for per-group prices."""
    return principal.is_anonymous
