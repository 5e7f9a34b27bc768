"""Shipping: which methods serve a destination, what a parcel costs, and when it arrives.

Destinations:
- A country code of the wrong shape (not two letters A-Z, e.g. 'ru', 'RUS', '') or a
  malformed postal code is a ValidationError with details, whatever the endpoint: the caller
  sent something that is not a destination at all.
- A well-formed destination no active method serves is SHIPPING_NOT_AVAILABLE when listing
  methods (`methods_for`) and INVALID_DESTINATION when calculating a cost (`quote`), as the
  storefront document lists those codes on those endpoints.
- Postal codes are compared as strings after trimming, upper-casing and removing spaces, and
  only against ranges whose bounds have the same length (so '9' never falls between '100000'
  and '199999'). Ranges are inclusive. A zone without ranges covers the whole country. With no
  postal code given, a zone matches on its country alone (listing methods for a country).

Parcels (`pack`): all items go in one parcel. Weight is the sum of weight x quantity, an
unknown weight counting `default_weight_grams` (500 g). The footprint is the largest length
and the largest width of any item; items are stacked, so height is the sum of
height x quantity. An unknown dimension counts `default_dimension_cm` (10 cm).

Prices: a method's weight bands are read from the lightest up; a parcel costs the price of the
first band whose `max_grams` it does not exceed (bounds inclusive), else the unbounded band.
A parcel heavier than every bounded band with no unbounded band is not offered that method;
a method without bands is never offered. Shipping is free (price 0) when the subtotal reaches
the method's free threshold (inclusive).

Dates: estimated delivery is today plus the method's min/max days counted in business days
(Saturdays and Sundays do not count; public holidays are not modelled).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Iterable

from engine.domain.errors import InvalidDestination, InvalidShippingMethod, ShippingNotAvailable, ValidationError
from engine.domain.money import money

DEFAULT_WEIGHT_GRAMS = 500
DEFAULT_DIMENSION_CM = 10
_COUNTRY = re.compile(r"[A-Z]{2}")
_POSTAL = re.compile(r"[A-Z0-9][A-Z0-9 -]{0,15}")


def normalize_postal_code(postal_code: str) -> str:
    return postal_code.strip().upper().replace(" ", "")


@dataclass(frozen=True, slots=True)
class Zone:
    """Countries (ISO 3166-1 alpha-2) and, optionally, inclusive postal ranges within them."""

    countries: frozenset[str]
    postal_ranges: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for low, high in self.postal_ranges:
            if len(low) != len(high) or low > high:
                raise ValueError(f"bad postal range {low!r}..{high!r}: bounds must have one length, low <= high")

    def covers(self, country: str, postal_code: str | None = None) -> bool:
        if country not in self.countries:
            return False
        if not self.postal_ranges or postal_code is None:
            return True
        code = normalize_postal_code(postal_code)
        return any(len(code) == len(low) and normalize_postal_code(low) <= code <= normalize_postal_code(high)
                   for low, high in self.postal_ranges)


@dataclass(frozen=True, slots=True)
class WeightBand:
    max_grams: int | None   # inclusive upper bound; None = no upper bound
    price: Decimal


@dataclass(frozen=True, slots=True)
class ShippingMethod:
    id: str
    name: str
    carrier: str
    description: str | None
    min_days: int
    max_days: int
    currency: str
    free_threshold: Decimal | None
    zones: tuple[Zone, ...]
    weight_bands: tuple[WeightBand, ...]
    active: bool = True

    def serves(self, country: str, postal_code: str | None = None) -> bool:
        return self.active and any(zone.covers(country, postal_code) for zone in self.zones)

    def price_for(self, weight_grams: int) -> Decimal | None:
        """The band price for a parcel of `weight_grams`, or None if no band takes it."""
        bands = sorted(self.weight_bands, key=lambda b: (b.max_grams is None, b.max_grams or 0))
        for band in bands:
            if band.max_grams is None or weight_grams <= band.max_grams:
                return money(band.price)
        return None

    @property
    def list_price(self) -> Decimal | None:
        """The price of the lightest parcel: what a method list shows without a cart."""
        return self.price_for(0)

    def is_free_for(self, subtotal: Decimal) -> bool:
        return self.free_threshold is not None and subtotal >= self.free_threshold


@dataclass(frozen=True, slots=True)
class Parcel:
    weight_grams: int
    length: int | Decimal
    width: int | Decimal
    height: int | Decimal


@dataclass(frozen=True, slots=True)
class ItemSize:
    weight_grams: int | None
    length: int | Decimal | None
    width: int | Decimal | None
    height: int | Decimal | None
    quantity: int


@dataclass(frozen=True, slots=True)
class ShippingOption:
    method_id: str
    name: str
    carrier: str
    price: Decimal
    currency: str
    is_free: bool
    estimated_min: date
    estimated_max: date


def pack(items: Iterable[ItemSize], default_weight_grams: int = DEFAULT_WEIGHT_GRAMS,
         default_dimension_cm: int = DEFAULT_DIMENSION_CM) -> Parcel:
    """One parcel holding every item (the rule is in the module docstring). No items -> an
    empty parcel of zero weight and size."""
    items = list(items)
    if any(item.quantity < 1 for item in items):
        raise ValueError("item quantity must be at least 1")

    def known(value: int | Decimal | None, default: int) -> int | Decimal:
        return default if value is None else value

    d = default_dimension_cm
    return Parcel(
        weight_grams=sum(known(i.weight_grams, default_weight_grams) * i.quantity for i in items),
        length=max((known(i.length, d) for i in items), default=0),
        width=max((known(i.width, d) for i in items), default=0),
        height=sum((known(i.height, d) * i.quantity for i in items), 0),
    )


def validate_destination(country: object, postal_code: object = None, *,
                         prefix: str = "") -> tuple[str, str | None]:
    """Return (country, normalized postal code) or raise ValidationError with details keyed
    `prefix + 'country'` / `prefix + 'postalCode'` (prefix e.g. 'destination.')."""
    details: dict[str, list[str]] = {}
    if not isinstance(country, str) or not _COUNTRY.fullmatch(country):
        details[prefix + "country"] = ["Must be an ISO 3166-1 alpha-2 country code (two capital letters)."]
    if postal_code is not None and (not isinstance(postal_code, str)
                                    or not _POSTAL.fullmatch(postal_code.strip().upper())):
        details[prefix + "postalCode"] = ["Must be 1-16 letters, digits, spaces or hyphens."]
    if details:
        raise ValidationError(details=details)
    return country, None if postal_code is None else normalize_postal_code(postal_code)  # type: ignore[arg-type]


def methods_for(methods: Iterable[ShippingMethod], country: str,
                postal_code: str | None = None) -> list[ShippingMethod]:
    """The active methods serving the destination, in the given order; none ->
    ShippingNotAvailable. A malformed destination -> ValidationError."""
    country, postal_code = validate_destination(country, postal_code)
    serving = [m for m in methods if m.serves(country, postal_code)]
    if not serving:
        raise ShippingNotAvailable(f"No shipping is available to {country}"
                                   + (f" {postal_code}." if postal_code else "."))
    return serving


def add_business_days(d: date, n: int) -> date:
    """`d` plus `n` working days (Monday-Friday). n=0 returns `d` itself; from a weekend the
    first business day is the Monday."""
    if n < 0:
        raise ValueError("business days must not be negative")
    if n == 0:
        return d
    # From a weekend, counting starts as if from the Friday before (Sat + 1 = Mon = Fri + 1).
    if d.weekday() >= 5:
        d -= timedelta(days=d.weekday() - 4)
    weeks, rest = divmod(n, 5)
    d += timedelta(weeks=weeks)
    for _ in range(rest):
        d += timedelta(days=3 if d.weekday() == 4 else 1)
    return d


def _option(method: ShippingMethod, parcel: Parcel, subtotal: Decimal, today: date) -> ShippingOption | None:
    band_price = method.price_for(parcel.weight_grams)
    if band_price is None:
        return None
    free = method.is_free_for(subtotal)
    return ShippingOption(
        method_id=method.id, name=method.name, carrier=method.carrier,
        price=money(0) if free else band_price, currency=method.currency, is_free=free,
        estimated_min=add_business_days(today, method.min_days),
        estimated_max=add_business_days(today, method.max_days),
    )


def quote(methods: Iterable[ShippingMethod], country: str, postal_code: str | None, parcel: Parcel,
          subtotal: Decimal, today: date) -> list[ShippingOption]:
    """Every method that serves the destination and takes the parcel, priced, in the given
    order; none -> InvalidDestination. A malformed destination -> ValidationError."""
    country, postal_code = validate_destination(country, postal_code)
    options = [option for m in methods if m.serves(country, postal_code)
               if (option := _option(m, parcel, subtotal, today)) is not None]
    if not options:
        raise InvalidDestination(f"No shipping method delivers this parcel to {country}"
                                 + (f" {postal_code}." if postal_code else "."))
    return options


def quote_method(method: ShippingMethod | None, country: str, postal_code: str | None, parcel: Parcel,
                 subtotal: Decimal, today: date) -> ShippingOption:
    """The option of the one method a checkout chose; InvalidShippingMethod if it is missing,
    inactive, does not serve the destination or does not take the parcel."""
    country, postal_code = validate_destination(country, postal_code)
    option = None
    if method is not None and method.serves(country, postal_code):
        option = _option(method, parcel, subtotal, today)
    if option is None:
        raise InvalidShippingMethod("The chosen shipping method does not deliver this order to this address.")
    return option
