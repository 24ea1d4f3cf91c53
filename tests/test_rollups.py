"""Rating from rollups (pricing_sql/rollups.py, rolled_rating.py): the same usage as
from events, read from the rollups ingestion writes, and from events wherever rollups
cannot serve (a metric that does not decompose, a window off the hour, an amendment)."""

import json
import os
import tempfile
import time
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ingestion.amendments import record_amendment
from ingestion.batches import ingest_files, replay_batch
from pricing_sql.engine import DuckDBEngine
from pricing_sql.metrics import compile_usage_query
from pricing_sql.rating import WINDOWS, compute_usage, event_days
from pricing_sql.rolled_rating import rolled_usage_query
from pricing_sql.rollup_compaction import (
    INPUTS,
    RETENTION,
    chosen,
    compact_months,
    empty_compaction,
)
from pricing_sql.rollups import (
    DAY,
    HOUR,
    MONTH,
    TABLE,
    empty_rollup,
    roll_up,
    rollup_files,
    split_requests,
)
from pricing_sql.sql import load_sql
from storage.duck import connect
from storage.lake import Lake
from tests.batches import batch
from tests.catalogs import catalog, unit

OCTOBER = date(2026, 10, 1)
NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)
METRICS = {
    "api": "SELECT count(*) FROM events WHERE event_name = 'api'",
    "tokens": "SELECT sum(properties.tokens) FROM events WHERE event_name = 'completion'",
    "peak_gb": "SELECT max(properties.gb) FROM events WHERE event_name = 'storage'",
    "seats": "SELECT count(DISTINCT properties.user) FROM events WHERE event_name = 'seat'",
    "latest_gb": "SELECT latest_by(properties.gb, timestamp) FROM events "
                 "WHERE event_name = 'storage'",  # read from events
}


def event(key, name, ts, customer="ny", **properties):
    return {"event_name": name, "timestamp": ts, "customer_id": customer,
            "idempotency_key": key, "properties": properties}


def shop(metrics=METRICS):
    return catalog(
        plans=[{"id": "p", "name": "P", "currency": "USD",
                "prices": [unit(metric, "1", metric=metric) for metric in metrics]}],
        customers=[{"id": "ny", "name": "NY", "timezone": "America/New_York"},
                   {"id": "in", "name": "IN", "timezone": "Asia/Kolkata"}],
        subscriptions=[{"id": "s_ny", "customer_id": "ny", "plan_id": "p",
                        "start_date": "2026-01-01"},
                       {"id": "s_in", "customer_id": "in", "plan_id": "p",
                        "start_date": "2026-01-01"}],
        metrics=metrics)


# New York's October is [Oct 1 04:00Z, Nov 1 04:00Z) (UTC-4 at both midnights), on UTC
# hours: read from rollups. Kolkata's is [Sep 30 18:30Z, Oct 31 18:30Z), off the hour.
EVENTS = [
    event("ny-0", "api", "2026-10-01T03:59:59Z"),  # Sep 30 in New York: not October
    event("ny-1", "api", "2026-10-01T04:00:00Z"),  # first hour, an edge hour
    event("ny-2", "api", "2026-10-15T12:00:00Z"),  # a whole day
    event("ny-3", "api", "2026-10-15T23:59:59Z"),
    event("ny-4", "api", "2026-11-01T03:59:59Z"),  # last hour, an edge hour
    event("ny-5", "api", "2026-11-01T04:00:00Z"),  # November
    event("ny-6", "completion", "2026-10-01T04:30:00Z", tokens=10),
    event("ny-7", "completion", "2026-10-20T00:00:00Z", tokens=200),
    event("ny-8", "completion", "2026-10-31T22:00:00Z", tokens=0.5),
    event("ny-9", "completion", "2026-11-01T04:00:00Z", tokens=3000),
    event("ny-10", "storage", "2026-10-03T10:00:00Z", gb=7.5),
    event("ny-11", "storage", "2026-10-31T23:00:00Z", gb=12.25),
    event("ny-12", "seat", "2026-10-02T10:00:00Z", user="u1"),
    event("ny-13", "seat", "2026-10-02T11:00:00Z", user="u2"),
    event("ny-14", "seat", "2026-10-25T11:00:00Z", user="u1"),
    event("in-1", "api", "2026-09-30T18:29:59Z", customer="in"),  # Sep 30 in Kolkata
    event("in-2", "api", "2026-09-30T18:30:00Z", customer="in"),
    event("in-3", "api", "2026-10-31T18:29:59Z", customer="in"),
    event("in-4", "api", "2026-10-31T18:30:00Z", customer="in"),  # November
    event("in-5", "completion", "2026-10-10T00:00:00Z", customer="in", tokens=7),
]
# worked out by hand from the list above
EXPECTED = {("ny", "api"): Decimal(4), ("ny", "tokens"): Decimal("210.5"),
            ("ny", "peak_gb"): Decimal("12.25"), ("ny", "seats"): Decimal(2),
            ("ny", "latest_gb"): Decimal("12.25"),
            ("in", "api"): Decimal(2), ("in", "tokens"): Decimal(7)}


def usage_by_customer(lake, cat=None):
    rated = compute_usage(connect(), lake, cat or shop(), OCTOBER)
    assert rated.exclusions.num_rows == 0
    return {(row["window_id"].split(":")[0].removeprefix("s_"), row["metric_id"]):
            row["quantity"] for row in rated.usage.to_pylist()}


def ingested(tmp_path, events=EVENTS, cat=None):
    lake = Lake(tmp_path)
    ingest_files(connect(), lake, cat or shop(), [batch(tmp_path / "october.jsonl", *events)],
                 NOW)
    return lake


def test_a_month_is_rated_from_the_rollups_ingestion_wrote(tmp_path):
    lake = ingested(tmp_path)
    spec, rest = split_requests([(m, sql, ()) for m, sql in METRICS.items()])
    assert [r.request[0] for r in spec.requests] == ["api", "peak_gb", "seats", "tokens"]
    assert [r[0] for r in rest] == ["latest_gb"]
    event_files = lake.all_files("events")
    assert len(event_files) == 10  # Sep 30, Oct 1, 2, 3, 10, 15, 20, 25, 31, Nov 1
    for file in event_files:
        hour, day = rollup_files(lake, spec, file)
        assert hour.exists() and day.exists()
    assert usage_by_customer(lake) == EXPECTED

    # and it is the rollups that were read: a day's count changed in its rollup changes
    # the month's (Oct 15 is a whole day of New York's window, read from the day rollup
    # once no month compaction holds it)
    for compaction in compactions(lake):
        compaction.unlink()
    oct15 = next(f for f in event_files if "event_date=2026-10-15" in f)
    _, day_file = rollup_files(lake, spec, oct15)
    rows = pq.read_table(day_file)
    assert rows["r0_0"].to_pylist() == [2]
    pq.write_table(rows.set_column(rows.schema.get_field_index("r0_0"), "r0_0",
                                   pa.array([5], pa.int64())), day_file)
    assert usage_by_customer(lake)[("ny", "api")] == 7


def test_an_edge_day_is_read_from_its_hour_slots(tmp_path):
    lake = ingested(tmp_path)
    spec, _ = split_requests([(m, sql, ()) for m, sql in METRICS.items()])
    oct1 = next(f for f in lake.all_files("events") if "event_date=2026-10-01" in f)
    hour_file, _ = rollup_files(lake, spec, oct1)
    rows = pq.read_table(hour_file).to_pylist()
    # New York's api calls on Oct 1: ny-0 at 03:59:59Z (hour 3, Sep 30 in New York) and
    # ny-1 at 04:00Z (hour 4, its October's first hour), in one row of 24 slots
    (api,) = [r for r in rows if r["request"] == 0 and r["customer_id"] == "ny"]
    oct1_hour = (OCTOBER - date(1970, 1, 1)).days * 24
    assert api["first_hour"] == oct1_hour
    assert api["hours"] == 1 << 3 | 1 << 4
    assert api["r0_0"] == [None] * 3 + [1, 1] + [None] * 19
    # the window takes hours 4-23 of the day: a count changed in hour 4 changes the
    # month, in hour 3 it does not
    api["r0_0"][3] = 9
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(hour_file)), hour_file)
    assert usage_by_customer(lake)[("ny", "api")] == 4
    api["r0_0"][4] = 3
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(hour_file)), hour_file)
    assert usage_by_customer(lake)[("ny", "api")] == 6


def test_each_request_s_rows_are_row_groups_of_their_own(tmp_path):
    # rating reads one request at a time and skips the row groups of the others by their
    # statistics: a group shared by two requests would be decoded for both
    lake = ingested(tmp_path)
    spec, _ = split_requests([(m, sql, ()) for m, sql in METRICS.items()])
    oct1 = next(f for f in lake.all_files("events") if "event_date=2026-10-01" in f)
    (october,) = [p for p in compactions(lake) if "2026-10" in p.parent.name]
    # requests: 0 api, 1 peak_gb, 2 seats, 3 tokens. Oct 1 holds New York's api calls and
    # tokens; October, both customers' api calls and tokens and New York's storage and seats
    expected = {HOUR: [0, 3], DAY: [0, 3], MONTH: [0, 1, 2, 3]}
    for path in (*rollup_files(lake, spec, oct1), october):
        metadata = pq.ParquetFile(path).metadata
        column = metadata.schema.to_arrow_schema().get_field_index("request")
        groups = [metadata.row_group(g) for g in range(metadata.num_row_groups)]
        stats = [g.column(column).statistics for g in groups]
        assert [(s.min, s.max) for s in stats] == [
            (r, r) for r in expected[path.parent.parent.name]], path
        requests = pq.read_table(path).column("request").to_pylist()
        assert [g.num_rows for g in groups] == [requests.count(s.min) for s in stats]


def test_empty_rollups_and_compactions_have_the_schemas_of_real_ones(tmp_path):
    lake = ingested(tmp_path)
    spec, _ = split_requests([(m, sql, ()) for m, sql in METRICS.items()])
    con = connect()
    real = roll_up(con, spec, con.read_parquet(lake.all_files("events")[1]))
    empty = [empty_rollup(con, spec, HOUR), empty_rollup(con, spec, DAY)]
    assert real[0].num_rows > 0 and empty[0].num_rows == empty[1].num_rows == 0
    assert [t.schema for t in empty] == [t.schema for t in real]
    (october,) = [p for p in compactions(lake) if "2026-10" in p.parent.name]
    compacted = empty_compaction(con, spec, empty[1])
    assert compacted.num_rows == 0
    assert compacted.schema == pq.read_schema(october).remove_metadata()


def compactions(lake):
    return sorted((lake.table_dir(TABLE) / MONTH).glob("*/*.parquet"))


def day_rollups(lake, spec, month):
    return sorted(rollup_files(lake, spec, f)[1] for f in lake.all_files("events")
                  if Lake.partition_value(f).startswith(month))


def inputs(compaction):
    return json.loads(pq.read_schema(compaction).metadata[INPUTS])


def test_ingestion_compacts_each_month_and_rating_reads_the_compaction(tmp_path):
    lake = ingested(tmp_path)
    spec, _ = split_requests([(m, sql, ()) for m, sql in METRICS.items()])
    months = compactions(lake)
    assert [p.parent.name for p in months] == [
        "event_month=2026-09-01", "event_month=2026-10-01", "event_month=2026-11-01"]
    october = months[1]
    assert inputs(october) == [f"{p.parent.name}/{p.name}"
                               for p in day_rollups(lake, spec, "2026-10")]
    # New York's api calls: a row with a count per UTC day of October (Oct 1 holds ny-0
    # and ny-1, which rating reads from the hour rollups: Oct 1 is an edge day of New
    # York's window); a change to Oct 15's count changes the month
    rows = pq.read_table(october).to_pylist()
    (api,) = [r for r in rows if r["request"] == 0 and r["customer_id"] == "ny"]
    assert api["r0_0"][0] == 2 and api["r0_0"][14] == 2 and api["r0_0"][30] is None
    assert api["days"] == 1 << 0 | 1 << 14
    api["r0_0"][14] = 5
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(october)), october)
    assert usage_by_customer(lake)[("ny", "api")] == 7


def test_batches_landed_since_a_compaction_are_read_from_their_day_rollups(tmp_path):
    lake = ingested(tmp_path)
    (first,) = [p for p in compactions(lake) if "2026-10" in p.parent.name]
    # minutes later (no new compaction yet): two more calls on Oct 15 and a seat on Oct 31
    more = [event("ny-20", "api", "2026-10-15T08:00:00Z"),
            event("ny-21", "api", "2026-10-15T09:00:00Z"),
            event("ny-22", "seat", "2026-10-31T10:00:00Z", user="u3")]
    ingest_files(connect(), lake, shop(), [batch(tmp_path / "more.jsonl", *more)], NOW)
    assert compactions(lake)[1] == first
    expected = EXPECTED | {("ny", "api"): Decimal(6), ("ny", "seats"): Decimal(3)}
    assert usage_by_customer(lake) == expected

    # a compaction of both batches' rollups is read instead, to the same usage; the first
    # stays while a rating may still be reading it, and goes once superseded long enough
    spec, _ = split_requests([(m, sql, ()) for m, sql in METRICS.items()])
    with closing(connect()) as con:
        (second,) = compact_months(con, lake, spec, [OCTOBER], interval=timedelta(0))
    assert len(inputs(second)) == len(inputs(first)) + 2  # Oct 15 and Oct 31 of the new batch
    assert chosen(lake, spec, day_rollups(lake, spec, "2026-10")) == ([second], [])
    assert usage_by_customer(lake) == expected
    assert first.exists()
    settled = time.time() - RETENTION.total_seconds() - 1
    os.utime(second, (settled, settled))
    with closing(connect()) as con:
        assert compact_months(con, lake, spec, [OCTOBER], interval=timedelta(0)) == []
        ingest_files(con, lake, shop(), [batch(tmp_path / "last.jsonl", event(
            "ny-23", "api", "2026-10-16T08:00:00Z"))], NOW)
        compact_months(con, lake, spec, [OCTOBER], interval=timedelta(0))
    assert not first.exists() and second.exists()
    assert usage_by_customer(lake)[("ny", "api")] == 7


def test_rollups_missing_or_made_under_other_metrics_are_made_by_rating(tmp_path):
    lake = ingested(tmp_path, cat=shop({"api": METRICS["api"]}))
    assert usage_by_customer(lake) == EXPECTED
    spec, _ = split_requests([(m, sql, ()) for m, sql in METRICS.items()])
    for file in lake.all_files("events"):
        assert all(path.exists() for path in rollup_files(lake, spec, file))
    # a lake whose rollups are gone is rated the same, from rollups made again
    for path in (lake.table_dir(TABLE)).rglob("*.parquet"):
        path.unlink()
    assert usage_by_customer(lake) == EXPECTED
    assert any((lake.table_dir(TABLE)).rglob("*.parquet"))


def test_an_amended_window_is_read_from_events(tmp_path):
    lake = ingested(tmp_path)
    record_amendment(lake, "ny", datetime(2026, 10, 15, tzinfo=UTC),
                     datetime(2026, 10, 16, tzinfo=UTC), "resent", NOW + timedelta(hours=1))
    # the two Oct 15 calls are deprecated; nothing else changes
    assert usage_by_customer(lake) == EXPECTED | {("ny", "api"): Decimal(2)}


def test_a_replayed_batch_gets_new_rollups(tmp_path):
    lake = ingested(tmp_path, events=[*EVENTS, event("x-1", "api", "2026-10-15T13:00:00Z",
                                                      customer="later")])
    (batch_id,) = {Path(f).stem for f in lake.all_files("events")}
    cat = shop()
    cat = cat.model_copy(update={
        "customers": [*cat.customers, cat.customers[0].model_copy(update={"id": "later"})],
        "subscriptions": [*cat.subscriptions, cat.subscriptions[0].model_copy(
            update={"id": "s_later", "customer_id": "later"})]})
    replay_batch(connect(), lake, cat, batch_id, NOW)
    spec, _ = split_requests([(m, sql, ()) for m, sql in METRICS.items()])
    rollups = [p for grain in (HOUR, DAY) for p in (lake.table_dir(TABLE) / grain).rglob("*")
               if p.is_file()]
    assert len(rollups) == 2 * 10  # the old files' are gone
    # October's compaction holds the batch's file as it was: rating reads the new day files
    assert chosen(lake, spec, day_rollups(lake, spec, "2026-10"))[0] == []
    assert all(p.exists() for f in lake.all_files("events") for p in rollup_files(lake, spec, f))
    assert usage_by_customer(lake, cat)[("later", "api")] == 1


# -- parity with events, for any events and windows --------------------------------------

REQUESTS = [
    ("count", "SELECT count(*) FROM events WHERE event_name = 'a'", ()),
    ("count_by_tag", "SELECT count(*) FROM events", ("tag",)),
    ("sum", "SELECT sum(properties.n) FROM events WHERE event_name = 'b'", ()),
    ("sum_by_tag", "SELECT sum(properties.n) FROM events", ("tag", "zone")),
    ("arithmetic", "SELECT sum(properties.n) * 2 + count(properties.n) - min(properties.n) "
                   "FROM events WHERE properties.tag <> 'x' OR properties.tag IS NULL", ()),
    ("ratio", "SELECT sum(properties.n) / count(*) FROM events WHERE event_name = 'b'", ()),
    ("tags", "SELECT count(properties.tag) FROM events WHERE event_name = 'b'", ()),
    ("filtered", "SELECT max(properties.n) FROM events WHERE properties.n > 3", ()),
    ("distinct", "SELECT count(DISTINCT properties.tag) FROM events", ()),
    ("distinct_n", "SELECT count(DISTINCT properties.n) + sum(properties.n) FROM events "
                   "WHERE event_name = 'a'", ("zone",)),
    # read from events: they do not decompose
    ("latest", "SELECT latest_by(properties.n, timestamp) FROM events "
               "WHERE event_name = 'b'", ()),
    ("average", "SELECT avg(properties.n) FROM events", ()),
    ("inside", "SELECT sum(properties.n * 2) FROM events", ()),
]
START = datetime(2026, 9, 29, tzinfo=UTC)  # the events and windows span two UTC months
# instants a window starts or ends at: UTC midnights (whole days read from month
# compactions or day rollups), hours (edge hours from hour rollups), and half hours (off
# the hour: read from events)
BOUNDS = st.one_of(st.integers(0, 4).map(lambda days: START + timedelta(days=days)),
                   st.integers(0, 4 * 24).map(lambda hours: START + timedelta(hours=hours)),
                   st.integers(0, 4 * 48).map(lambda half: START + timedelta(minutes=30 * half)))
EVENT = st.fixed_dictionaries({
    "customer": st.sampled_from(["c1", "c2", "c3"]),
    "name": st.sampled_from(["a", "b"]),
    "second": st.integers(0, 4 * 86_400 - 1),
    "n": st.none() | st.integers(-50, 50) | st.decimals(-100, 100, places=3),
    "tag": st.none() | st.sampled_from(["x", "y", "z"]),
    "zone": st.none() | st.sampled_from(["eu", "us"]),
})


def parity_catalog():
    return catalog(plans=[{"id": "p", "name": "P", "currency": "USD",
                           "prices": [unit("count", "1", metric="count")]}],
                   customers=[{"id": c, "name": c} for c in ("c1", "c2", "c3")],
                   subscriptions=[], metrics={r[0]: r[1] for r in REQUESTS})


def rated_rows(lake, windows, rolled):
    engine = DuckDBEngine(connect())
    files = lake.files_in("events", "event_date", event_days(windows))
    if not files:
        return []
    # None: no window is on the hour, and rating reads events as below
    query = rolled_usage_query(engine, lake, REQUESTS, windows, files) if rolled else None
    if query is None:
        engine.register("usage_windows", windows)
        engine.register_active_events(lake, files)
        engine.run_script(load_sql("usage_events"))
        query = compile_usage_query(REQUESTS, source="period_events")
    rows = engine.query(query).to_pylist()
    return sorted((r["window_id"], r["metric_id"], tuple(map(str, r["group_values"])),
                   r["quantity"]) for r in rows)


# Each example ingests a lake (3-5 s): a failure is reported as found, not shrunk, which
# would take many minutes.
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(events=st.lists(EVENT, min_size=1, max_size=60),
       windows=st.lists(st.tuples(st.sampled_from(["c1", "c2", "c3"]), BOUNDS, BOUNDS),
                        min_size=1, max_size=6),
       batches=st.integers(1, 3),
       compacted=st.sampled_from(["every batch", "the first batch", "none"]))
def test_rollups_give_the_usage_events_give(events, windows, batches, compacted):
    with tempfile.TemporaryDirectory() as folder:
        lake = Lake(folder)
        raw = []
        for i, e in enumerate(events):
            properties = {k: (float(e[k]) if isinstance(e[k], Decimal) else e[k])
                          for k in ("n", "tag", "zone") if e[k] is not None}
            at = START + timedelta(seconds=e["second"])
            raw.append({"event_name": e["name"], "customer_id": e["customer"],
                        "timestamp": at.isoformat().replace("+00:00", "Z"),
                        "idempotency_key": f"k{i}", "properties": properties})
        files = [batch(Path(folder) / f"b{i}.jsonl", *raw[i::batches])
                 for i in range(batches) if raw[i::batches]]
        # one ingestion compacts its months; one minutes later does not
        calls = [files[:1], files[1:]] if compacted == "the first batch" else [files]
        for call in calls:
            ingest_files(connect(), lake, parity_catalog(), call, NOW)
        if compacted == "none":
            for compaction in compactions(lake):
                compaction.unlink()
        table = pa.Table.from_pylist(
            [{"window_id": f"w{i}", "customer_id": c, "period_start": min(a, b),
              "period_end": max(a, b) if a != b else a + timedelta(days=1)}
             for i, (c, a, b) in enumerate(windows)], schema=WINDOWS)
        by_rollups = rated_rows(lake, table, rolled=True)
        assert by_rollups == rated_rows(lake, table, rolled=False)
