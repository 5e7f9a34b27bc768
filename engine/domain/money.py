"""Money: exact amounts in the currency's major unit, always with two decimal places.

Invariants:
- An amount is a `decimal.Decimal` quantized to 0.01 (ROUND_HALF_UP). Binary floats are
  refused everywhere: `0.1 + 0.2` is not a price.
- Rounding happens once, where an amount is derived (a percentage, a tax, a share), never on
  the way out; `to_api` only changes how an already exact amount is shown.
- `allocate` never creates or loses a cent: its parts always sum to the amount split.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from math import floor

CENT = Decimal("0.01")


def exact(x: int | str | Decimal) -> Decimal:
    """A number as an unrounded Decimal; floats (and bools) are refused with TypeError."""
    if isinstance(x, bool) or isinstance(x, float):
        raise TypeError(f"money must be exact (int, str or Decimal), not {type(x).__name__}")
    if isinstance(x, Decimal):
        value = x
    elif isinstance(x, int):
        value = Decimal(x)
    elif isinstance(x, str):
        try:
            value = Decimal(x.strip())
        except InvalidOperation:
            raise ValueError(f"not an amount: {x!r}") from None
    else:
        raise TypeError(f"money must be exact (int, str or Decimal), not {type(x).__name__}")
    if not value.is_finite():
        raise ValueError(f"not an amount: {x!r}")
    return value


def money(x: int | str | Decimal) -> Decimal:
    """`x` as an amount with exactly two decimal places, rounded half-up (2.005 -> 2.01)."""
    return exact(x).quantize(CENT, rounding=ROUND_HALF_UP)


def to_api(d: Decimal | None) -> int | Decimal | None:
    """How an amount appears in JSON: whole amounts as integers (2500), others with their
    cents (Decimal('25.99')), None as None. The web layer encodes Decimal as a JSON number."""
    if d is None:
        return None
    amount = money(d)
    if amount == amount.to_integral_value():
        return int(amount)
    return amount


def percent_of(amount: int | str | Decimal, pct: int | str | Decimal) -> Decimal:
    """`pct` percent of `amount` (pct=10 means 10 %), rounded half-up to the cent."""
    return money(exact(amount) * exact(pct) / 100)


def allocate(total: int | str | Decimal, weights: list[Decimal] | tuple[Decimal, ...]) -> list[Decimal]:
    """Split `total` across lines in proportion to `weights`, exact to the cent.

    Each line first gets its proportional share rounded down to the cent; the cents left over
    (always fewer than the number of lines) go one each to the lines with the largest weights,
    earlier lines first among equal weights. The parts always sum to `money(total)`.
    When every weight is zero the total is split evenly. A negative total is split like its
    absolute value and negated, so a refund splits the same way as the charge it reverses.
    """
    amount = money(total)
    sizes = [exact(w) for w in weights]
    if any(w < 0 for w in sizes):
        raise ValueError("allocation weights must not be negative")
    if not sizes:
        if amount != 0:
            raise ValueError("cannot allocate a non-zero amount across no lines")
        return []
    if amount < 0:
        return [-part for part in allocate(-amount, sizes)]
    if sum(sizes) == 0:
        sizes = [Decimal(1)] * len(sizes)

    cents = int(amount / CENT)
    whole = sum(Fraction(w) for w in sizes)
    parts = [floor(cents * Fraction(w) / whole) for w in sizes]
    leftover = cents - sum(parts)
    # Largest lines absorb the leftover cents: a cent matters least relative to a big line.
    by_size = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    for i in by_size[:leftover]:
        parts[i] += 1
    return [Decimal(p) * CENT for p in parts]
