"""Billing cycles: the service periods a price is billed for.

A subscription's periods start on its billing cycle day, every ``months`` months,
counted from the month it starts in: cycle day 15 with a quarterly cadence from a
start on 2026-02-10 gives [2025-11-15, 2026-02-15), [2026-02-15, 2026-05-15), ...
A cycle day past a month's end falls on its last day (31 -> 2026-02-28). Dates are
the customer's local calendar dates; periods are half-open ``[start, end)``.

A price's own cycle (``Cycle``) may be N months (as above), N days counted from the
subscription's start (``day_periods``), or once: a one-time fee, billed for the first
day of the phase that adds it.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Literal, NamedTuple

from billing.periods import add_months


def cycle_date(month: date, cycle_day: int) -> date:
    """The cycle day in the month of ``month``, clamped to the month's last day."""
    last = calendar.monthrange(month.year, month.month)[1]
    return month.replace(day=min(cycle_day, last))


def billing_periods(anchor: date, cycle_day: int, months: int, start: date,
                    end: date | None, since: date, until: date) -> Iterator[tuple[date, date]]:
    """Every cycle ``[b_k, b_k+1)`` with ``b_k`` = the cycle day ``k * months`` months
    after ``anchor``'s month that overlaps ``[start, end)``, ends after ``since`` and
    begins on or before ``until``."""
    skip = max(start, since)
    # Start one cycle early: the cycle containing ``skip`` can begin in an earlier month.
    k = ((skip.year - anchor.year) * 12 + skip.month - anchor.month) // months - 1
    while True:
        begin = cycle_date(add_months(anchor, k * months), cycle_day)
        after = cycle_date(add_months(anchor, (k + 1) * months), cycle_day)
        k += 1
        if after <= skip:
            continue
        if begin > until or (end is not None and begin >= end):
            return
        yield begin, after


class Cycle(NamedTuple):
    """How often a price is billed: every ``duration`` months or days, or once."""

    unit: Literal["month", "day", "once"]
    duration: int

    @property
    def months_spanned(self) -> int:
        """The most calendar months a window can span (between its start and its invoice)."""
        if self.unit == "day":
            return -(-self.duration // 28)  # ceil: no month is shorter than 28 days
        return self.duration if self.unit == "month" else 1

    @property
    def key(self) -> str:
        """The cycle as the pricing SQL joins windows to prices on: ``month:3``."""
        return "one_time" if self.unit == "once" else f"{self.unit}:{self.duration}"


ONE_TIME = Cycle("once", 1)


def day_periods(anchor: date, days: int, start: date, end: date | None, since: date,
                until: date) -> Iterator[tuple[date, date]]:
    """Every cycle ``[anchor + k days, anchor + (k+1) days)`` that overlaps
    ``[start, end)``, ends after ``since`` and begins on or before ``until``."""
    skip = max(start, since)
    k = max((skip - anchor).days // days, 0)
    while True:
        begin = anchor + timedelta(days=k * days)
        after = begin + timedelta(days=days)
        k += 1
        if after <= skip:
            continue
        if begin > until or (end is not None and begin >= end):
            return
        yield begin, after
