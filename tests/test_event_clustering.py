"""Event files clustered by customer (docs/lake.md#events-clustered-by-customer): each
batch's day file is sorted by customer, then timestamp, then row, in row groups whose
customer_id statistics let a one-customer scan skip the others; a crash before a file
is published loses nothing and counts nothing twice; dedup still finds re-sent events."""

import json
import os
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion import event_files
from ingestion.batches import ingest_files
from pricing_sql.customer_rating import CustomerEngine
from storage import lake as lake_module
from storage.duck import connect
from storage.lake import Lake
from storage.tables import EVENTS
from tests.batches import batch, ev
from tests.catalogs import catalog as make_catalog

NOW = datetime(2026, 11, 10, tzinfo=UTC)
CUSTOMERS = ["c1", "c2", "c3", "c4"]


def shop():
    return make_catalog(plans=[], customers=[{"id": c, "name": c} for c in CUSTOMERS],
                        subscriptions=[])


def arrivals(folder, name="a.jsonl", prefix="k"):
    """Two events of each customer on Nov 8 and one on Nov 9, arriving interleaved and
    out of time order: 12 events."""
    events = [ev(f"{prefix}{hour}-{c}", ts=f"2026-11-0{day}T{hour:02d}:00:00Z", customer=c)
              for day, hour in ((8, 13), (9, 5), (8, 1)) for c in reversed(CUSTOMERS)]
    return batch(folder / name, *events)


@pytest.fixture
def small_groups(monkeypatch):
    # 2-row groups, so that 4 customers' 8 events of a day make 4 groups (one each)
    monkeypatch.setitem(event_files.EVENT_ENCODING, "row_group_size", 2)


def test_a_day_file_is_sorted_by_customer_then_time(tmp_path):
    lake = Lake(tmp_path / "data")
    (result,) = ingest_files(connect(), lake, shop(), [arrivals(tmp_path)], NOW)
    assert (result.accepted, result.days) == (12, [date(2026, 11, 8), date(2026, 11, 9)])
    nov8, nov9 = lake.all_files("events")
    rows = pq.read_table(nov8, partitioning=None).to_pylist()
    # by customer, then time (01:00 before 13:00, though 13:00 arrived first)
    assert [(r["customer_id"], r["timestamp"].hour) for r in rows] == [
        (c, hour) for c in CUSTOMERS for hour in (1, 13)]
    assert [r["customer_id"] for r in pq.read_table(nov9, partitioning=None).to_pylist()] \
        == CUSTOMERS


def test_a_big_day_is_cut_in_row_groups_of_65536_events_each_a_range_of_customers(tmp_path):
    # 70,000 events of 7 customers, 10,000 each, arriving round-robin in time order
    n = 70_000
    day = pa.table({
        "timestamp": pa.array([datetime(2026, 11, 8, tzinfo=UTC)] * n, EVENTS.field(
            "timestamp").type),
        "event_name": ["call"] * n,
        "customer_id": [f"c{i % 7}" for i in range(n)],
        "idempotency_key": [f"k{i}" for i in range(n)],
        "properties": ["{}"] * n, "batch_id": ["b"] * n, "source_file": ["f"] * n,
        "source_row": list(range(1, n + 1)), "late": [False] * n,
    }, schema=EVENTS)
    lake = Lake(tmp_path)
    event_files.write_days(lake, "b", [event_files.DayEvents(date(2026, 11, 8), day, None)])
    (path,) = lake.all_files("events")
    metadata = pq.ParquetFile(path).metadata
    column = metadata.schema.names.index("customer_id")
    groups = [metadata.row_group(g) for g in range(metadata.num_row_groups)]
    # 70,000 = 65,536 + 4,464; customers c0..c6 hold rows 0-9,999, ..., 60,000-69,999:
    # the first group is c0..c6 (row 65,535 is c6's), the second c6 alone
    assert [g.num_rows for g in groups] == [65_536, 4_464]
    assert [(g.column(column).statistics.min, g.column(column).statistics.max)
            for g in groups] == [("c0", "c6"), ("c6", "c6")]
    rows = pq.read_table(path, columns=["customer_id", "source_row"]).to_pylist()
    # by customer, then (equal timestamps) row: c0's rows 1, 8, 15, ...
    assert rows[:2] == [{"customer_id": "c0", "source_row": 1},
                        {"customer_id": "c0", "source_row": 8}]
    assert rows[10_000] == {"customer_id": "c1", "source_row": 2}


def _scanned_row_groups(con, profile) -> tuple[int, int]:
    """(row groups scanned, row groups to scan) of the last query's Parquet scan."""
    def scans(node):
        if node.get("name") == "PARQUET_SCAN":
            yield node
        for child in node.get("children", []):
            yield from scans(child)
    (scan,) = [s for root in json.loads(profile.read_text())["operator"] for s in scans(root)]
    return scan["row_groups_scanned"], scan["total_row_groups_to_scan"]


def test_a_customer_s_scan_skips_the_other_customers_row_groups(tmp_path, small_groups):
    lake = Lake(tmp_path / "data")
    ingest_files(connect(), lake, shop(), [arrivals(tmp_path)], NOW)
    nov8 = lake.all_files("events")[0]
    metadata = pq.ParquetFile(nov8).metadata
    column = metadata.schema.names.index("customer_id")
    # 8 events in 2-row groups: one customer each, by its min/max statistics
    assert [(metadata.row_group(g).column(column).statistics.min,
             metadata.row_group(g).column(column).statistics.max)
            for g in range(metadata.num_row_groups)] == [(c, c) for c in CUSTOMERS]
    # the API's engine: its customer filter is pushed to the scan, which reads 1 group of 4
    engine = CustomerEngine("c3")
    engine.register_active_events(lake, [nov8])
    profile = tmp_path / "profile.json"
    engine.con.execute("SET enable_profiling = 'json'")
    engine.con.execute("SET profiling_mode = 'detailed'")
    engine.con.execute("SET profiling_output = $path", {"path": str(profile)})
    rows = engine.con.sql("SELECT idempotency_key FROM lake_events").fetchall()
    engine.con.execute("SET enable_profiling = 'no_output'")
    assert sorted(rows) == [("k1-c3",), ("k13-c3",)]
    assert _scanned_row_groups(engine.con, profile) == (1, 4)


def test_a_crash_between_writing_and_publishing_a_day_loses_and_doubles_nothing(
        tmp_path, monkeypatch, small_groups):
    lake = Lake(tmp_path / "data")
    source = arrivals(tmp_path)
    real_replace = os.replace

    def crash_on_nov9(scratch, target):
        if "event_date=2026-11-09" in str(target):
            raise OSError("crashed after writing the day, before publishing it")
        real_replace(scratch, target)

    monkeypatch.setattr(lake_module.os, "replace", crash_on_nov9)
    with pytest.raises(OSError, match="before publishing"):
        ingest_files(connect(), lake, shop(), [source], NOW)
    monkeypatch.setattr(lake_module.os, "replace", real_replace)
    # readable: no half-written file, no scratch file left; nothing of the batch counts
    # (it did not commit), whichever of its days were published
    assert not [p for p in lake.root.rglob("*") if p.name.endswith(".tmp")]
    assert ingest_files(connect(), lake, shop(), [], NOW) == []
    con = connect()
    assert con.execute("SELECT count(*) FROM read_parquet($f)",
                       {"f": lake.all_files("events")}).fetchone() == (8,)  # Nov 8 only
    (result,) = ingest_files(connect(), lake, shop(), [source], NOW)
    assert (result.status, result.accepted, result.duplicates) == ("ingested", 12, 0)
    keys = con.execute("SELECT idempotency_key FROM read_parquet($f) ORDER BY ALL",
                       {"f": lake.all_files("events")}).fetchall()
    # each of the 12 events once: the batch's Nov 8 file was replaced, not added to
    assert len(keys) == len(set(keys)) == 12


def test_a_re_sent_event_is_a_duplicate_in_clustered_files(tmp_path, small_groups):
    lake = Lake(tmp_path / "data")
    ingest_files(connect(), lake, shop(), [arrivals(tmp_path)], NOW)
    # k13-c2 sits in the second of Nov 8's four row groups (c2's), not the first
    again = batch(tmp_path / "b.jsonl", ev("k13-c2", ts="2026-11-08T13:00:00Z", customer="c2"),
                  ev("new", ts="2026-11-08T14:00:00Z", customer="c2"))
    (result,) = ingest_files(connect(), lake, shop(), [again], NOW)
    assert (result.accepted, result.duplicates) == (1, 1)
