"""Who sees what in the catalogue, and at which price.

`price_for` is the one seam for personalised pricing: today every caller pays the list price;
a price list per customer group plugs in here (look the principal's group up, return its price)
without touching any query or view.
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
