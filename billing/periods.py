"""Billing periods: half-open ``[start, end)`` intervals of UTC instants.

A customer's month starts at local midnight on the 1st in the customer's time
zone, so its UTC bounds move with DST and differ between customers. Events are
assigned to a period by comparing their UTC timestamp with these bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True, order=True)
class Period:
    start: datetime  # inclusive, timezone-aware UTC
    end: datetime  # exclusive, timezone-aware UTC

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                raise ValueError(f"Period.{name} must be timezone-aware, got {value!r}")
        if not self.start < self.end:
            raise ValueError(f"empty period: start {self.start} is not before end {self.end}")

    def intersect(self, other: Period) -> Period | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Period(start, end) if start < end else None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc


def local_day(instant: datetime, tz: str) -> date:
    """The day ``instant`` falls on in time zone ``tz``: a customer's today, the day of
    their calendar an invoice or grant date is."""
    return instant.astimezone(zone(tz)).date()


def local_days(instant: datetime, zones: Mapping[str, str]) -> Callable[[str], date]:
    """Each customer's day at ``instant``: ``zones`` maps customer ids to their time
    zones; a customer it does not hold has UTC's day."""
    days = {tz: local_day(instant, tz) for tz in set(zones.values()) | {"UTC"}}
    return lambda customer: days[zones.get(customer, "UTC")]


def local_midnight(day: date, tz: str) -> datetime:
    """The UTC instant at which ``day`` begins in time zone ``tz``."""
    return datetime.combine(day, time(0), tzinfo=zone(tz)).astimezone(UTC)


def add_months(day: date, months: int) -> date:
    """First day of the month ``months`` after the month of ``day``."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def days_of_month(month: date) -> list[date]:
    """Every calendar day of the month containing ``month``."""
    first = month.replace(day=1)
    return [first + timedelta(days=i) for i in range((add_months(first, 1) - first).days)]


def month_period(month: date, tz: str) -> Period:
    """The calendar month containing ``month``, in time zone ``tz``, as UTC instants."""
    first = month.replace(day=1)
    return Period(local_midnight(first, tz), local_midnight(add_months(first, 1), tz))


def local_date_period(start: date, end: date | None, tz: str) -> Period:
    """Dates ``[start, end)`` in time zone ``tz``; an open end runs to the far future."""
    far_future = datetime(9999, 1, 1, tzinfo=UTC)
    return Period(local_midnight(start, tz), local_midnight(end, tz) if end else far_future)
