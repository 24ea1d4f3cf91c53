from decimal import Decimal

import pytest

from billing import money


@pytest.mark.parametrize(("currency", "digits"), [("USD", 2), ("EUR", 2), ("JPY", 0),
                                                  ("KWD", 3), ("CLF", 4)])
def test_exponent_comes_from_the_currency(currency, digits):
    assert money.exponent(currency) == digits


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("2.345", "USD", "2.35"),  # half rounds away from zero...
        ("-2.345", "USD", "-2.35"),  # ...on both sides
        ("2.344999", "USD", "2.34"),
        ("1.225", "USD", "1.23"),  # banker's rounding would give 1.22
        ("2.5", "JPY", "3"),
        ("1.0005", "KWD", "1.001"),
        ("0.00005", "CLF", "0.0001"),
    ],
)
def test_quantize_rounds_half_up_to_the_minor_unit(amount, currency, expected):
    result = money.quantize(Decimal(amount), currency)
    assert result == Decimal(expected)
    assert result.as_tuple().exponent == -money.exponent(currency)


def test_unknown_currency_is_named():
    with pytest.raises(money.UnknownCurrencyError, match="'ABC'"):
        money.exponent("ABC")


def test_formatting_shows_the_rounded_amount():
    assert money.format_money(Decimal("1234.5"), "USD") == "$1,234.50"
    assert money.format_money(Decimal("75000"), "JPY") == "¥75,000"
    assert money.format_rate(Decimal("0.000020000000"), "USD") == "$0.00002"
