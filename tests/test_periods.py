from datetime import UTC, date, datetime, timedelta

import pytest

from billing.periods import Period, days_of_month, local_date_period, month_period


def utc(*parts):
    return datetime(*parts, tzinfo=UTC)


def test_new_york_november_spans_the_end_of_daylight_saving():
    # 2026-11-01 is the first Sunday of November: midnight is still EDT (UTC-4),
    # and December 1st is EST (UTC-5).
    assert month_period(date(2026, 11, 1), "America/New_York") == Period(
        utc(2026, 11, 1, 4), utc(2026, 12, 1, 5))


def test_berlin_march_loses_an_hour():
    # CET (UTC+1) on March 1st, CEST (UTC+2) from March 29th.
    period = month_period(date(2026, 3, 1), "Europe/Berlin")
    assert period == Period(utc(2026, 2, 28, 23), utc(2026, 3, 31, 22))
    assert period.end - period.start == timedelta(days=31, hours=-1)


def test_tokyo_month_starts_the_previous_utc_day():
    assert month_period(date(2026, 10, 1), "Asia/Tokyo") == Period(
        utc(2026, 9, 30, 15), utc(2026, 10, 31, 15))


def test_subscription_window_cuts_the_month():
    month = month_period(date(2026, 10, 1), "Asia/Tokyo")
    active = local_date_period(date(2026, 10, 15), None, "Asia/Tokyo")
    assert month.intersect(active) == Period(utc(2026, 10, 14, 15), utc(2026, 10, 31, 15))
    ended = local_date_period(date(2026, 1, 1), date(2026, 10, 1), "Asia/Tokyo")
    assert month.intersect(ended) is None


def test_period_rejects_naive_or_empty_bounds():
    with pytest.raises(ValueError, match="timezone-aware"):
        Period(datetime(2026, 1, 1), utc(2026, 2, 1))
    with pytest.raises(ValueError, match="empty period"):
        Period(utc(2026, 2, 1), utc(2026, 2, 1))


def test_days_of_month():
    assert len(days_of_month(date(2028, 2, 10))) == 29
    assert days_of_month(date(2026, 12, 5))[-1] == date(2026, 12, 31)
