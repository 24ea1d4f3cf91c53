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
# ISO 4217 codes that are not money (its minor unit is "N.A." for them): precious metals,
# bond-market units, SDR, Sucre, ADB unit, the testing code and "no currency". CLDR gives
# them the default 2 digits, which would make them look like currencies.
NOT_MONEY = frozenset({"XAG", "XAU", "XPD", "XPT", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU",
                       "XUA", "XTS", "XXX"})
# The largest amount a person enters (a credit grant, a payment) is below 10^18 of the
# currency. The lake keeps money as DECIMAL(38, 4) and invoicing adds amounts up and
# rescales them to DECIMAL(38, 18) (20 digits before the point); 18 leave room for the sums.
MAX_AMOUNT = Decimal(10) ** 18


class UnknownCurrencyError(ValueError):
    pass


class AmountError(ValueError):
    pass


def validate_currency(code: str) -> str:
    """Return the ISO 4217 code if Babel knows it as money, else raise naming the code."""
    if code not in list_currencies():
        raise UnknownCurrencyError(f"unknown ISO 4217 currency code {code!r}")
    if code in NOT_MONEY:
        raise UnknownCurrencyError(f"ISO 4217 code {code!r} is not a currency of money")
    return code


def currency_code(text: str) -> str:
    """A currency typed by a person (a grant, a payments file): ``usd`` is ``USD``."""
    return validate_currency(text.strip().upper())


def check_magnitude(amount: Decimal, field: str = "amount") -> None:
    """Raise naming ``field`` unless ``amount`` is a finite number above zero and below
    MAX_AMOUNT: the rules of an entered amount that need no currency."""
    if not amount.is_finite():
        raise AmountError(f"{field} {amount} is not a finite number")
    if amount <= 0:
        raise AmountError(f"{field} {amount} must be a positive number")
    if amount >= MAX_AMOUNT:
        raise AmountError(f"{field} {amount} is too large: an amount must be below "
                          f"{MAX_AMOUNT:,}")


def check_amount(amount: Decimal, currency: str, field: str = "amount") -> Decimal:
    """An entered amount of ``currency``, at its minor unit (``100.0`` USD is 100.00);
    raises naming ``field`` if it is not positive, too large or finer than the minor unit."""
    check_magnitude(amount, field)
    rounded = quantize(amount, currency)  # below 10^18: within Decimal's 28 digits
    if rounded != amount:
        raise AmountError(f"{field} {amount} has more than {exponent(currency)} decimal "
                          f"digit(s), the minor unit of {currency}")
    return rounded


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
