import re
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


@pytest.mark.parametrize(("typed", "code"), [("usd", "USD"), (" Eur ", "EUR"), ("XAF", "XAF")])
def test_a_typed_currency_is_its_upper_case_code(typed, code):
    assert money.currency_code(typed) == code


@pytest.mark.parametrize("code", ["XXX", "XTS", "XAU", "XDR"])
def test_iso_codes_that_are_not_money_are_refused(code):
    with pytest.raises(money.UnknownCurrencyError, match=f"'{code}' is not a currency of money"):
        money.currency_code(code.lower())
    with pytest.raises(money.UnknownCurrencyError):
        money.exponent(code)


@pytest.mark.parametrize(("amount", "currency", "expected"), [
    ("100.0", "USD", "100.00"), ("15000", "JPY", "15000"), ("1.2340", "KWD", "1.234"),
    ("999999999999999999.99", "USD", "999999999999999999.99")])
def test_an_entered_amount_is_kept_at_its_minor_unit(amount, currency, expected):
    checked = money.check_amount(Decimal(amount), currency)
    assert (checked, checked.as_tuple().exponent) == (Decimal(expected),
                                                     -money.exponent(currency))


@pytest.mark.parametrize(("amount", "currency", "message"), [
    ("1e18", "JPY", "price 1E+18 is too large: an amount must be below "
                    "1,000,000,000,000,000,000"),
    ("NaN", "USD", "price NaN is not a finite number"),
    ("-Infinity", "USD", "price -Infinity is not a finite number"),
    ("0", "USD", "price 0 must be a positive number"),
    ("0.5", "JPY", "price 0.5 has more than 0 decimal digit(s), the minor unit of JPY"),
])
def test_an_entered_amount_out_of_its_range_is_refused_naming_the_field(amount, currency,
                                                                        message):
    with pytest.raises(money.AmountError, match=f"^{re.escape(message)}$"):
        money.check_amount(Decimal(amount), currency, "price")
