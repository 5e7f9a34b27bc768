"""Shipping: destinations and zones, packing, weight bands, free thresholds, delivery dates."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from engine.domain.errors import InvalidDestination, InvalidShippingMethod, ShippingNotAvailable, ValidationError
from engine.domain.shipping_rules import (
    ItemSize,
    Parcel,
    ShippingMethod,
    WeightBand,
    Zone,
    add_business_days,
    methods_for,
    pack,
    quote,
    quote_method,
    validate_destination,
)

D = Decimal
MONDAY = date(2024, 1, 15)
RU = Zone(frozenset({"RU"}))
MOSCOW = Zone(frozenset({"RU"}), (("101000", "129999"),))


def method(id="ship-001", *, zones=(RU,), bands=(WeightBand(None, D("350")),), free=D("5000"),
           days=(5, 10), active=True, name="Standard Delivery", carrier="Russian Post") -> ShippingMethod:
    return ShippingMethod(id, name, carrier, None, days[0], days[1], "RUB", free, zones, bands, active)


STANDARD = method()
EXPRESS = method("ship-002", bands=(WeightBand(None, D("650")),), free=D("10000"), days=(2, 4),
                 name="Express Delivery", carrier="CDEK")
PARCEL = Parcel(750, 25, 15, 20)


# --- destinations --------------------------------------------------------------------------

@pytest.mark.parametrize("country", ["ru", "RUS", "R", "", "R1", "ÄB", None, 7])
def test_malformed_country_is_a_validation_error(country):
    with pytest.raises(ValidationError) as exc:
        validate_destination(country)
    assert list(exc.value.details) == ["country"]


def test_malformed_postal_code_is_a_validation_error_with_prefixed_details():
    with pytest.raises(ValidationError) as exc:
        validate_destination("rU", "12#45", prefix="destination.")
    assert set(exc.value.details) == {"destination.country", "destination.postalCode"}
    with pytest.raises(ValidationError):
        validate_destination("RU", "x" * 17)


def test_validate_destination_normalizes_the_postal_code():
    assert validate_destination("GB", " sw1a 1aa ") == ("GB", "SW1A1AA")
    assert validate_destination("RU") == ("RU", None)


@pytest.mark.parametrize(("postal", "covered"), [
    ("101000", True), ("129999", True), ("125009", True),   # range bounds are inclusive
    ("100999", False), ("130000", False),
    ("12500", False),                                       # other length never compares
    ("1250090", False),
    (None, True),                                           # no postal code: the country decides
])
def test_zone_postal_ranges(postal, covered):
    assert MOSCOW.covers("RU", postal) is covered


def test_zone_without_ranges_covers_the_whole_country_only():
    assert RU.covers("RU", "999999") and not RU.covers("KZ", "050000")


def test_zone_rejects_ranges_of_mixed_length_or_reversed():
    with pytest.raises(ValueError):
        Zone(frozenset({"RU"}), (("1000", "99999"),))
    with pytest.raises(ValueError):
        Zone(frozenset({"RU"}), (("2", "1"),))


def test_methods_for_lists_active_serving_methods_in_order():
    inactive = method("ship-003", active=False)
    moscow_only = method("ship-004", zones=(MOSCOW,))
    assert [m.id for m in methods_for([STANDARD, inactive, moscow_only, EXPRESS], "RU", "125009")] == [
        "ship-001", "ship-004", "ship-002"]
    assert [m.id for m in methods_for([moscow_only], "RU")] == ["ship-004"]


def test_methods_for_raises_shipping_not_available_for_an_unserved_destination():
    with pytest.raises(ShippingNotAvailable):
        methods_for([STANDARD, EXPRESS], "US", "10001")
    with pytest.raises(ShippingNotAvailable):
        methods_for([method(zones=(MOSCOW,))], "RU", "190000")
    with pytest.raises(ShippingNotAvailable):
        methods_for([method(active=False)], "RU")
    with pytest.raises(ValidationError):
        methods_for([STANDARD], "ru")


# --- packing -------------------------------------------------------------------------------

def test_pack_sums_weights_stacks_heights_and_takes_the_largest_footprint():
    parcel = pack([ItemSize(250, 25, 15, 5, 3), ItemSize(100, 20, 18, 2, 1)])
    assert parcel == Parcel(weight_grams=850, length=25, width=18, height=17)


def test_pack_uses_defaults_for_missing_weight_and_dimensions():
    assert pack([ItemSize(None, None, None, None, 2)]) == Parcel(1000, 10, 10, 20)
    assert pack([ItemSize(None, 5, None, 1, 1)], default_weight_grams=200, default_dimension_cm=4) == Parcel(200, 5, 4, 1)


def test_pack_of_nothing_is_an_empty_parcel_and_quantities_must_be_positive():
    assert pack([]) == Parcel(0, 0, 0, 0)
    with pytest.raises(ValueError):
        pack([ItemSize(1, 1, 1, 1, 0)])


# --- prices --------------------------------------------------------------------------------

BANDED = method(bands=(WeightBand(None, D("900")), WeightBand(1000, D("350")), WeightBand(5000, D("500"))))
BOUNDED_ONLY = method(bands=(WeightBand(1000, D("350")), WeightBand(5000, D("500"))))


@pytest.mark.parametrize(("grams", "expected"), [
    (0, D("350")), (1000, D("350")), (1001, D("500")), (5000, D("500")), (5001, D("900")), (10**7, D("900")),
])
def test_weight_bands_are_read_lightest_first_with_inclusive_bounds(grams, expected):
    assert BANDED.price_for(grams) == expected


def test_parcel_heavier_than_every_bounded_band_is_not_offered_that_method():
    assert BOUNDED_ONLY.price_for(5001) is None
    options = quote([BOUNDED_ONLY, EXPRESS], "RU", "125009", Parcel(6000, 1, 1, 1), D("0"), MONDAY)
    assert [o.method_id for o in options] == ["ship-002"]
    with pytest.raises(InvalidDestination):
        quote([BOUNDED_ONLY], "RU", "125009", Parcel(6000, 1, 1, 1), D("0"), MONDAY)
    assert method(bands=()).price_for(0) is None
    assert BANDED.list_price == D("350")


def test_storefront_calculate_example_prices_and_express_dates():
    options = quote([STANDARD, EXPRESS], "RU", "125009", PARCEL, D("2500"), MONDAY)
    assert [(o.method_id, o.price, o.currency, o.is_free) for o in options] == [
        ("ship-001", D("350"), "RUB", False), ("ship-002", D("650"), "RUB", False)]
    express = options[1]
    assert (express.estimated_min, express.estimated_max) == (date(2024, 1, 17), date(2024, 1, 19))
    standard = options[0]   # business days: Mon + 5 = next Mon, Mon + 10 = the Monday after
    assert (standard.estimated_min, standard.estimated_max) == (date(2024, 1, 22), date(2024, 1, 29))


@pytest.mark.parametrize(("subtotal", "free"), [(D("4999.99"), False), (D("5000"), True), (D("5000.01"), True)])
def test_shipping_is_free_from_the_threshold_inclusive(subtotal, free):
    option = quote([STANDARD], "RU", None, PARCEL, subtotal, MONDAY)[0]
    assert option.is_free is free
    assert option.price == (D("0") if free else D("350"))


def test_method_without_threshold_is_never_free():
    option = quote([method(free=None)], "RU", None, PARCEL, D("10") ** 9, MONDAY)[0]
    assert not option.is_free and option.price == D("350")


def test_quote_raises_invalid_destination_when_nothing_serves_it():
    with pytest.raises(InvalidDestination):
        quote([STANDARD, EXPRESS], "US", "10001", PARCEL, D("0"), MONDAY)
    with pytest.raises(ValidationError):
        quote([STANDARD], "usa", "10001", PARCEL, D("0"), MONDAY)


def test_quote_method_checks_the_chosen_method():
    assert quote_method(EXPRESS, "RU", "125009", PARCEL, D("0"), MONDAY).price == D("650")
    for chosen, country in [(None, "RU"), (method(active=False), "RU"), (EXPRESS, "US"), (BOUNDED_ONLY, "RU")]:
        with pytest.raises(InvalidShippingMethod):
            quote_method(chosen, country, None, Parcel(6000, 1, 1, 1), D("0"), MONDAY)


# --- business days -------------------------------------------------------------------------

FRIDAY, SATURDAY, SUNDAY = date(2024, 1, 19), date(2024, 1, 20), date(2024, 1, 21)


@pytest.mark.parametrize(("start", "n", "expected"), [
    (MONDAY, 0, MONDAY), (SATURDAY, 0, SATURDAY),
    (MONDAY, 1, date(2024, 1, 16)), (MONDAY, 4, FRIDAY), (MONDAY, 5, date(2024, 1, 22)),
    (FRIDAY, 1, date(2024, 1, 22)), (FRIDAY, 5, date(2024, 1, 26)), (FRIDAY, 6, date(2024, 1, 29)),
    (SATURDAY, 1, date(2024, 1, 22)), (SUNDAY, 1, date(2024, 1, 22)), (SUNDAY, 5, date(2024, 1, 26)),
    (date(2024, 1, 17), 3, date(2024, 1, 22)),
])
def test_add_business_days_skips_weekends(start, n, expected):
    assert add_business_days(start, n) == expected


def test_add_business_days_agrees_with_counting_one_day_at_a_time():
    for offset in range(7):
        start = date(2024, 1, 15 + offset)
        for n in range(1, 30):
            d, left = start, n
            while left:
                d = date.fromordinal(d.toordinal() + 1)
                left -= d.weekday() < 5
            assert add_business_days(start, n) == d, (start, n)
    with pytest.raises(ValueError):
        add_business_days(MONDAY, -1)
