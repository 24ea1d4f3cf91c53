"""Render documents and revenue summaries to HTML with the templates in ``reports/templates``.

Templates receive amounts as Decimals; the filters here format them with Babel,
so the document shows exactly the rounded amounts stored in the lake.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from functools import cache

from babel.numbers import format_decimal
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from billing import money


def _quantity(value: Decimal) -> str:
    return format_decimal(value.normalize(), locale="en_US", decimal_quantization=False)


def _day(day: date, last: bool = False) -> str:
    """A calendar date as documents show it; ``last`` turns an exclusive end into the
    inclusive last day."""
    return (day - timedelta(days=1) if last else day).strftime("%b %-d, %Y")


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money.format_money
    env.filters["rate"] = money.format_rate
    env.filters["quantity"] = _quantity
    env.filters["day"] = _day
    return env
