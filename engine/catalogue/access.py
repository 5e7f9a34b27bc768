"""Who sees what in the catalogue, and at which price.

`price_for` is the one seam for personalised pricing: today every caller pays the list price;
a price list per customer group plugs in here (look the principal's group up, return its price)
without touching any query or view.
"""

from __future__ import annotations

from decimal import Decimal

from engine.principal import Principal


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
