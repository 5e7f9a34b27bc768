"""Money is exact: two decimal places, half-up rounding, no floats, no lost cents."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.domain.money import allocate, money, percent_of, to_api

D = Decimal


@pytest.mark.parametrize(("given", "expected"), [
    (2500, D("2500.00")),
    ("25.99", D("25.99")),
    (" 7.5 ", D("7.50")),
    (D("2.005"), D("2.01")),      # half-up, not banker's rounding
    (D("2.0049"), D("2.00")),
    (D("-2.005"), D("-2.01")),    # half away from zero
    ("0", D("0.00")),
])
def test_money_quantizes_to_the_cent_half_up(given, expected):
    result = money(given)
    assert result == expected
    assert result.as_tuple().exponent == -2


@pytest.mark.parametrize("bad", [0.1, 1.0, True, None, [1]])
def test_money_refuses_floats_and_non_numbers(bad):
    with pytest.raises(TypeError):
        money(bad)


@pytest.mark.parametrize("bad", ["abc", "", "NaN", "Infinity", D("NaN")])
def test_money_refuses_text_that_is_not_an_amount(bad):
    with pytest.raises(ValueError):
        money(bad)


def test_to_api_shows_whole_amounts_as_integers_and_keeps_cents_otherwise():
    assert to_api(D("2500.00")) == 2500 and type(to_api(D("2500.00"))) is int
    assert to_api(D("25.99")) == D("25.99") and isinstance(to_api(D("25.99")), Decimal)
    assert to_api(D("0")) == 0 and type(to_api(D("0"))) is int
    assert to_api(D("25.9")) == D("25.90")
    assert to_api(None) is None


def test_percent_of_rounds_half_up_to_the_cent():
    assert percent_of(D("5000"), 10) == D("500.00")
    assert percent_of(D("0.05"), 10) == D("0.01")    # 0.005 -> 0.01
    assert percent_of(D("0.04"), 10) == D("0.00")
    assert percent_of(D("99.99"), D("12.5")) == D("12.50")   # 12.49875
    with pytest.raises(TypeError):
        percent_of(D("10"), 0.1)


def test_allocate_splits_proportionally():
    assert allocate(D("100"), [D("50"), D("30"), D("20")]) == [D("50.00"), D("30.00"), D("20.00")]


def test_allocate_gives_leftover_cents_to_the_largest_lines():
    assert allocate(D("100"), [D("1"), D("1"), D("1")]) == [D("33.34"), D("33.33"), D("33.33")]
    assert allocate(D("0.05"), [D("1"), D("3"), D("2")]) == [D("0.00"), D("0.03"), D("0.02")]
    assert allocate(D("10"), [D("1"), D("2")]) == [D("3.33"), D("6.67")]


@pytest.mark.parametrize(("total", "weights"), [
    (D("6750"), [D("5000"), D("2500")]),
    (D("0.01"), [D("1")] * 7),
    (D("999.99"), [D("0.01"), D("123.45"), D("77"), D("1000000")]),
    (D("1234.56"), [D(i) for i in range(1, 30)]),
    (D("0"), [D("3"), D("4")]),
])
def test_allocate_parts_always_sum_to_the_total(total, weights):
    parts = allocate(total, weights)
    assert sum(parts) == total
    assert len(parts) == len(weights)
    assert all(p.as_tuple().exponent == -2 and p >= 0 for p in parts)


def test_allocate_edge_cases():
    assert allocate(D("10"), [D("0"), D("0")]) == [D("5.00"), D("5.00")]   # no weight: even split
    assert allocate(D("0"), []) == []
    assert allocate(D("-10"), [D("1"), D("2")]) == [D("-3.33"), D("-6.67")]
    with pytest.raises(ValueError):
        allocate(D("1"), [])
    with pytest.raises(ValueError):
        allocate(D("1"), [D("-1"), D("2")])
