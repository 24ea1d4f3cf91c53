"""Money: Decimal amounts with an explicit per-currency exponent.

Rounding happens in exactly one place in the pipeline: each invoice line item's
amount is rounded to its currency's minor unit with ROUND_HALF_UP (half away
from zero), in ``pricing_sql/sql/line_items.sql``. ``quantize`` below is the
same rule in Python, used for fixed-point formatting and for checking values
read back from SQL; it never changes an amount that SQL already rounded.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from babel.numbers import format_currency, get_currency_precision, list_currencies

ROUNDING = ROUND_HALF_UP
# Every exponent CLDR gives a currency (JPY 0, USD 2, KWD 3, CLF 4). The line
# item SQL rounds with one branch per exponent, so this set is closed on purpose.
SUPPORTED_EXPONENTS = (0, 2, 3, 4)


class UnknownCurrencyError(ValueError):
    pass


def validate_currency(code: str) -> str:
    """Return the ISO 4217 code if Babel knows it, else raise naming the code."""
    if code not in list_currencies():
        raise UnknownCurrencyError(f"unknown ISO 4217 currency code {code!r}")
    return code


@cache  # Babel's lookups are slow and the answer never changes
def exponent(currency: str) -> int:
    """Number of digits after the decimal point in the currency's minor unit."""
    digits = get_currency_precision(validate_currency(currency))
    if digits not in SUPPORTED_EXPONENTS:
        raise UnknownCurrencyError(f"currency {currency} has unsupported exponent {digits}")
    return digits


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of the currency, e.g. Decimal('0.01') for USD."""
    return Decimal(1).scaleb(-exponent(currency))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round ``amount`` to the currency's minor unit with ROUND_HALF_UP."""
    return amount.quantize(minor_unit(currency), rounding=ROUNDING)


def format_money(amount: Decimal, currency: str, locale: str = "en_US") -> str:
    """Human form of an already rounded amount, e.g. '$1,234.50' or '¥1,234'."""
    return format_currency(amount, currency, locale=locale)


def format_rate(amount: Decimal, currency: str, locale: str = "en_US") -> str:
    """A unit price or sub-line amount at full precision, e.g. '$0.000025'."""
    return format_currency(amount.normalize(), currency, locale=locale, decimal_quantization=False)
