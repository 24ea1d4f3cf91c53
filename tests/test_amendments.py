"""Amendments deprecate past events without deleting them; replacements then count."""

from datetime import UTC, date, datetime

import pyarrow.parquet as pq
import pytest

from ingestion.amendments import Amendment, amended_days, record_amendment
from ingestion.batches import ingest_files
from pricing_sql.rating import compute_usage
from storage.duck import connect
from storage.lake import Lake
from tests.batches import batch, ev
from tests.catalogs import catalog, unit

NOW = datetime(2026, 11, 10, tzinfo=UTC)
LATER = datetime(2026, 11, 11, tzinfo=UTC)


def shop():
    return catalog(
        plans=[{"id": "p", "name": "P", "currency": "USD",
                "prices": [unit("tokens", "0.01", metric="tokens")]}],
        customers=[{"id": "c1", "name": "c1"}, {"id": "c2", "name": "c2"}],
        subscriptions=[{"id": "s1", "customer_id": "c1", "plan_id": "p",
                        "start_date": "2026-01-01"},
                       {"id": "s2", "customer_id": "c2", "plan_id": "p",
                        "start_date": "2026-01-01"}],
        metrics={"tokens": "SELECT sum(properties.tokens) FROM events"},
    )


def october_tokens(lake):
    usage = compute_usage(connect(), lake, shop(), date(2026, 10, 1)).usage.to_pylist()
    return {row["window_id"].split(":")[0]: int(row["quantity"]) for row in usage}


@pytest.fixture
def lake(tmp_path):
    lake = Lake(tmp_path)
    # c1: 1 + 10 + 100 tokens on Oct 2, 4 and 6; c2: 1000 tokens on Oct 4
    ingest_files(connect(), lake, shop(), [batch(
        tmp_path / "october.jsonl",
        ev("a", ts="2026-10-02T12:00:00Z", tokens=1),
        ev("b", ts="2026-10-04T12:00:00Z", tokens=10),
        ev("c", ts="2026-10-06T12:00:00Z", tokens=100),
        ev("d", ts="2026-10-04T12:00:00Z", customer="c2", tokens=1000),
    )], NOW)
    return lake


def test_replacing_a_customers_events_in_a_timeframe(lake, tmp_path):
    assert october_tokens(lake) == {"s1": 111, "s2": 1000}
    record_amendment(lake, "c1", datetime(2026, 10, 3, tzinfo=UTC),
                     datetime(2026, 10, 6, tzinfo=UTC), "double-counted by the gateway", LATER)
    # b (Oct 4) no longer counts; c (Oct 6) is outside [Oct 3, Oct 6); c2 is untouched
    assert october_tokens(lake) == {"s1": 101, "s2": 1000}
    # the replacement reuses the deprecated event's key, and counts
    (result,) = ingest_files(connect(), lake, shop(), [batch(
        tmp_path / "fix.jsonl", ev("b", ts="2026-10-04T12:00:00Z", tokens=5))], LATER)
    assert (result.accepted, result.duplicates) == (1, 0)
    assert october_tokens(lake) == {"s1": 106, "s2": 1000}
    # nothing was deleted: both versions of b are in the lake, and the record says why
    events = pq.read_table(lake.all_files("events"), partitioning=None).to_pylist()
    assert sorted(e["idempotency_key"] for e in events) == ["a", "b", "b", "c", "d"]
    (record,) = pq.read_table(lake.all_files("amendments"), partitioning=None).to_pylist()
    assert (record["customer_id"], record["reason"]) == ("c1", "double-counted by the gateway")


def test_a_single_event_can_be_deprecated(lake):
    record_amendment(lake, "c1", datetime(2026, 10, 1, tzinfo=UTC),
                     datetime(2026, 11, 1, tzinfo=UTC), "test event", LATER,
                     idempotency_key="c")
    assert october_tokens(lake) == {"s1": 11, "s2": 1000}


def test_events_ingested_after_an_amendment_are_not_deprecated_by_it(lake, tmp_path):
    record_amendment(lake, None, datetime(2026, 10, 1, tzinfo=UTC),
                     datetime(2026, 11, 1, tzinfo=UTC), "reset October", LATER)
    assert october_tokens(lake) == {}
    ingest_files(connect(), lake, shop(), [batch(
        tmp_path / "late.jsonl", ev("late", ts="2026-10-20T00:00:00Z", tokens=7))],
        datetime(2026, 11, 12, tzinfo=UTC))
    assert october_tokens(lake) == {"s1": 7}


def test_amendments_need_a_timeframe_and_a_reason(lake):
    start = datetime(2026, 10, 3, tzinfo=UTC)
    with pytest.raises(ValueError, match="empty timeframe"):
        record_amendment(lake, "c1", start, start, "oops", LATER)
    with pytest.raises(ValueError, match="needs a reason"):
        record_amendment(lake, "c1", start, datetime(2026, 10, 4, tzinfo=UTC), " ", LATER)


def test_amended_days_end_before_an_exclusive_midnight():
    def days(start, end):
        return amended_days(Amendment("x", LATER, "c1", start, end, None, "why"))

    assert days(datetime(2026, 10, 3, 5, tzinfo=UTC), datetime(2026, 10, 5, tzinfo=UTC)) == [
        date(2026, 10, 3), date(2026, 10, 4)]
    assert days(datetime(2026, 10, 3, 5, tzinfo=UTC), datetime(2026, 10, 5, 1, tzinfo=UTC)) == [
        date(2026, 10, 3), date(2026, 10, 4), date(2026, 10, 5)]
