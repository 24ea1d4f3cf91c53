"""Render documents and revenue summaries to HTML with the templates in ``reports/templates``.

Templates receive amounts as Decimals; the filters here format them with Babel,
so the document shows exactly the rounded amounts stored in the lake.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from functools import cache, lru_cache

from babel.numbers import format_decimal
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from billing import money


def _quantity(value: Decimal) -> str:
    return format_decimal(value.normalize(), locale="en_US", decimal_quantization=False)


def _day(day: date, last: bool = False) -> str:
    """A calendar date as documents show it; ``last`` turns an exclusive end into the
    inclusive last day."""
    return (day - timedelta(days=1) if last else day).strftime("%b %-d, %Y")


def _by_text(format_: Callable[..., str]) -> Callable[..., str]:
    """``format_`` remembering what it gave: Babel takes some 30-50 µs a call, and
    documents repeat their amounts (fees, unit prices). Keyed by the amount's text, which
    keeps its exponent (``Decimal("1.0") == Decimal("1.00")``, but they may print apart)."""
    @lru_cache(maxsize=1 << 16)
    def formatted(text: str, *args: str) -> str:
        return format_(Decimal(text), *args)

    def filter_(amount: Decimal, *args: str) -> str:
        if type(amount) is not Decimal:
            return format_(amount, *args)
        return formatted(str(amount), *args)
    return filter_


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the code: compiled once per process
    )
    env.filters["money"] = _by_text(money.format_money)
    env.filters["rate"] = _by_text(money.format_rate)
    env.filters["quantity"] = _by_text(_quantity)
    env.filters["day"] = lru_cache(maxsize=1 << 12)(_day)
    return env
