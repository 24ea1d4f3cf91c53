"""Billing cycles: the service periods a price is billed for.

A subscription's periods start on its billing cycle day, every ``months`` months,
counted from the month it starts in: cycle day 15 with a quarterly cadence from a
start on 2026-02-10 gives [2025-11-15, 2026-02-15), [2026-02-15, 2026-05-15), ...
A cycle day past a month's end falls on its last day (31 -> 2026-02-28). Dates are
the customer's local calendar dates; periods are half-open ``[start, end)``.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import date

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
