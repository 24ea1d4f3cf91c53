"""Batch ingestion: nothing lost, nothing counted twice."""

import json
import multiprocessing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion import batches as ingest_module
from ingestion.batches import Window, ingest_files, replay_batch
from storage.duck import connect
from storage.lake import Lake
from tests.batches import batch, ev
from tests.catalogs import catalog as make_catalog
from tests.catalogs import unit

NOW = datetime(2026, 11, 10, tzinfo=UTC)


def shop(*customers):
    """Customers on a plan that sums the ``tokens`` property, so it must be a number."""
    return make_catalog(
        plans=[{"id": "p", "name": "P", "currency": "USD",
                "prices": [unit("tokens", "0.01", metric="tokens")]}],
        customers=[{"id": c, "name": c} for c in customers],
        subscriptions=[],
        metrics={"tokens": "SELECT sum(properties.tokens) FROM events "
                           "WHERE event_name = 'completion'"},
    )


def events_of(lake):
    files = lake.all_files("events")
    return pq.read_table(files, partitioning=None).to_pylist() if files else []


def quarantined(lake):
    files = lake.all_files("quarantine")
    rows = pq.read_table(files, partitioning=None).to_pylist() if files else []
    return sorted((r["idempotency_key"], r["reject_reason"]) for r in rows)


def run(lake, catalog, *files, now=NOW):
    return ingest_files(connect(), lake, catalog, list(files), now)


def fingerprint(lake):
    return {str(p): p.read_bytes() for p in (lake.root / "lake" / "events").rglob("*.parquet")}


def test_sending_a_file_again_adds_nothing(tmp_path):
    lake, catalog = Lake(tmp_path), shop("c1")
    first = batch(tmp_path / "a.jsonl", ev("k1"), ev("k2"))
    (result,) = run(lake, catalog, first)
    assert (result.status, result.accepted) == ("ingested", 2)
    before = fingerprint(lake)
    (again,) = run(lake, catalog, first)
    assert again.status == "already ingested" and again.batch_id == result.batch_id
    assert fingerprint(lake) == before
    # the same keys in a different file are duplicates of the first batch
    (other,) = run(lake, catalog, batch(tmp_path / "b.jsonl", ev("k2"), ev("k3")))
    assert (other.accepted, other.duplicates) == (1, 1)
    assert sorted(e["idempotency_key"] for e in events_of(lake)) == ["k1", "k2", "k3"]


def test_a_duplicate_is_quarantined_with_its_fields_as_sent(tmp_path):
    lake, catalog = Lake(tmp_path), shop("c1")
    (first,) = run(lake, catalog, batch(tmp_path / "a.jsonl", ev("k1")))
    # the same key later, written differently: another offset, and within the file too
    (second,) = run(lake, catalog, batch(tmp_path / "b.jsonl", ev("k2"),
                                         ev("k1", ts="2026-11-09T13:00:00+01:00"),
                                         ev("k2", ts="2026-11-09T08:00:00-05:00")))
    assert (second.accepted, second.duplicates) == (1, 2)
    rows = lake.read_partition("quarantine", "batch_id", second.batch_id).to_pylist()
    assert [(r["source_row"], r["idempotency_key"], r["raw_timestamp"], r["raw_customer_id"],
             r["reject_detail"]) for r in rows] == [
        (2, "k1", "2026-11-09T13:00:00+01:00", "c1",
         f"already ingested in batch {first.batch_id}"),
        (3, "k2", "2026-11-09T08:00:00-05:00", "c1", "first seen at b.jsonl:1"),
    ]


def test_a_rejected_event_is_quarantined_with_its_fields_as_sent(tmp_path):
    lake, catalog = Lake(tmp_path), shop("c1")
    path = tmp_path / "e.csv"
    path.write_text(
        "event_name,timestamp,customer_id,external_customer_id,idempotency_key,properties\n"
        'completion,not a time,c1,,k1,"{""tokens"": ""lots""}"\n'
        'completion,2026-11-09T12:00:00Z,"zoë ""x""",ext\\1,k2,{}\n'
        "completion,2026-11-09T12:00:00Z,c1,,k3,\n")
    (result,) = run(lake, catalog, path)
    assert (result.accepted, result.rejected) == (1, 2)
    rows = lake.read_partition("quarantine", "batch_id", result.batch_id).to_pylist()
    assert [{k: r[k] for k in ("source_file", "source_row", "reject_reason", "reject_detail",
                               "event_date", "raw_timestamp", "raw_customer_id",
                               "raw_external_customer_id", "raw_properties")}
            for r in rows] == [
        {"source_file": "e.csv", "source_row": 1,
         "reject_reason": "timestamp is not an ISO 8601 instant", "reject_detail": None,
         "event_date": None, "raw_timestamp": "not a time", "raw_customer_id": "c1",
         "raw_external_customer_id": None, "raw_properties": '{"tokens": "lots"}'},
        {"source_file": "e.csv", "source_row": 2, "reject_reason": "unknown customer_id",
         "reject_detail": None, "event_date": date(2026, 11, 9),
         "raw_timestamp": "2026-11-09T12:00:00Z", "raw_customer_id": 'zoë "x"',
         "raw_external_customer_id": "ext\\1", "raw_properties": "{}"},
    ]


@pytest.mark.parametrize("key_set_bytes", ["0", str(4 << 30)])
def test_keys_are_found_with_or_without_the_in_memory_set(tmp_path, monkeypatch,
                                                         key_set_bytes):
    # 0 bytes: no in-memory set, every batch is looked up in the index's runs
    monkeypatch.setenv("ORB_KEY_SET_MAX_BYTES", key_set_bytes)
    lake, catalog = Lake(tmp_path), shop("c1", "c2")
    run(lake, catalog, batch(tmp_path / "a.jsonl", ev("k1"), ev("k2", customer="c2")))
    (second,) = run(lake, catalog, batch(tmp_path / "b.jsonl", ev("k2"), ev("k3"),
                                         ev("k2", customer="c2", ts="2026-11-02T00:00:00Z")))
    # k2 is new for c1, a duplicate for c2
    assert (second.accepted, second.duplicates) == (2, 1)
    assert sorted((e["customer_id"], e["idempotency_key"]) for e in events_of(lake)) == [
        ("c1", "k1"), ("c1", "k2"), ("c1", "k3"), ("c2", "k2")]


def test_keys_are_unique_per_customer(tmp_path):
    lake, catalog = Lake(tmp_path), shop("c1", "c2")
    run(lake, catalog, batch(tmp_path / "a.jsonl", ev("k1", customer="c1"),
                             ev("k1", customer="c2"), ev("k1", customer="c1")))
    assert sorted(e["customer_id"] for e in events_of(lake)) == ["c1", "c2"]
    assert quarantined(lake) == [("k1", "duplicate idempotency_key")]


def test_a_crash_before_the_commit_is_redone_without_duplicates(tmp_path, monkeypatch):
    lake, catalog = Lake(tmp_path), shop("c1")
    source = batch(tmp_path / "a.jsonl", ev("k1"), ev("k2", ts="2026-11-08T00:00:00Z"))
    real_write = Lake.write_partition

    def crash_on_commit(self, table, key, value, rows):
        if table == "batches":
            raise OSError("power cut")
        return real_write(self, table, key, value, rows)

    monkeypatch.setattr(Lake, "write_partition", crash_on_commit)
    with pytest.raises(OSError, match="power cut"):
        run(lake, catalog, source)
    half_done = fingerprint(lake)
    assert len(half_done) == 2  # both days written, batch not committed
    monkeypatch.undo()
    (result,) = run(lake, catalog, source)
    assert (result.status, result.accepted, result.duplicates) == ("ingested", 2, 0)
    assert fingerprint(lake) == half_done


def test_late_events_are_accepted_and_flagged(tmp_path):
    lake, catalog = Lake(tmp_path), shop("c1")
    # October has been invoiced: its period is closed.
    lake.write_partition("invoices", "billing_month", date(2026, 10, 1),
                         pa.table({"invoice_id": ["x"]}))
    (result,) = run(lake, catalog, batch(tmp_path / "a.jsonl",
                                         ev("old", ts="2026-10-31T23:00:00Z"), ev("new")))
    assert (result.accepted, result.late) == (2, 1)
    assert {e["idempotency_key"]: e["late"] for e in events_of(lake)} == {"old": True,
                                                                           "new": False}
    assert result.days == [date(2026, 10, 31), date(2026, 11, 9)]


def test_timestamps_outside_the_window_and_bad_numbers_are_quarantined(tmp_path):
    lake, catalog = Lake(tmp_path), shop("c1")
    window = Window(max_age=timedelta(days=30), max_future=timedelta(hours=1))
    source = batch(
        tmp_path / "a.jsonl",
        ev("too-old", ts="2026-10-10T23:59:59Z"),
        ev("oldest-ok", ts="2026-10-11T00:00:00Z"),
        ev("soon", ts="2026-11-10T01:00:00Z"),
        ev("future", ts="2026-11-10T01:00:01Z"),
        ev("words", tokens="lots"),
        ev("huge", tokens=1e300),
        ev("fraction", tokens=12.5),
        ev("no-tokens", other="x"),
    )
    ingest_files(connect(), lake, catalog, [source], NOW, window)
    assert quarantined(lake) == [
        ("future", "timestamp is in the future"),
        ("huge", "property tokens is out of range: its absolute value must be below 10^18"),
        ("too-old", "timestamp is before the accepted window"),
        ("words", "property tokens is not a number"),
    ]
    assert sorted(e["idempotency_key"] for e in events_of(lake)) == [
        "fraction", "no-tokens", "oldest-ok", "soon"]


def test_replay_after_fixing_the_catalog(tmp_path):
    lake = Lake(tmp_path)
    (result,) = run(lake, shop("c1"), batch(tmp_path / "a.jsonl", ev("k1"),
                                            ev("k2", customer="c9")))
    assert quarantined(lake) == [("k2", "unknown customer_id")]
    replayed = replay_batch(connect(), lake, shop("c1", "c9"), result.batch_id, NOW)
    assert (replayed.status, replayed.accepted, replayed.rejected) == ("replayed", 2, 0)
    assert quarantined(lake) == []
    assert sorted((e["idempotency_key"], e["customer_id"]) for e in events_of(lake)) == [
        ("k1", "c1"), ("k2", "c9")]
    # replaying again changes nothing
    before = fingerprint(lake)
    replay_batch(connect(), lake, shop("c1", "c9"), result.batch_id, NOW)
    assert fingerprint(lake) == before


def _ingest_in_process(root, path):
    ingest_files(connect(), Lake(root), shop("c1"), [path], NOW)


def test_a_timestamp_without_an_offset_is_utc_whatever_the_machine_zone(tmp_path,
                                                                        monkeypatch):
    # 23:30 with no offset is 23:30Z on October 1st; read in New York's zone (the
    # machine's, in a fresh process) it would be 03:30Z on October 2nd
    path = batch(tmp_path / "naive.jsonl", ev("k1", ts="2026-10-01T23:30:00"))
    monkeypatch.setenv("TZ", "America/New_York")
    worker = multiprocessing.get_context("spawn").Process(
        target=_ingest_in_process, args=(str(tmp_path), path))
    worker.start()
    worker.join(timeout=120)
    assert worker.exitcode == 0
    lake = Lake(tmp_path)
    assert [Path(p).parent.name for p in lake.all_files("events")] == ["event_date=2026-10-01"]
    (event,) = events_of(lake)
    assert event["timestamp"] == datetime(2026, 10, 1, 23, 30, tzinfo=UTC)


def test_concurrent_ingestions_do_not_count_a_key_twice(tmp_path):
    lake = Lake(tmp_path)
    keys = [ev(f"k{i}") for i in range(2000)]
    files = [batch(tmp_path / "a.jsonl", *keys), batch(tmp_path / "b.jsonl", *reversed(keys))]
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_ingest_in_process, args=(str(tmp_path), f))
               for f in files]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    events = events_of(lake)
    assert len(events) == 2000
    assert len({e["idempotency_key"] for e in events}) == 2000
    assert len(quarantined(lake)) == 2000  # the second batch is all duplicates


def test_batch_ids_are_content_hashes(tmp_path):
    one = batch(tmp_path / "one.jsonl", ev("k1"))
    same = batch(tmp_path / "same.jsonl", ev("k1"))
    assert ingest_module.batch_id_of(one) == ingest_module.batch_id_of(same)


def test_a_key_seen_for_another_customer_in_an_earlier_batch_is_not_a_duplicate(tmp_path):
    lake, catalog = Lake(tmp_path), shop("c1", "c2")
    run(lake, catalog, batch(tmp_path / "a.jsonl", ev("k1", customer="c1")))
    # the key index finds batch a as a candidate; the exact check sees another customer
    (second,) = run(lake, catalog, batch(tmp_path / "b.jsonl", ev("k1", customer="c2")))
    (third,) = run(lake, catalog, batch(tmp_path / "c.jsonl", ev("k1", customer="c1",
                                                                  ts="2026-11-01T00:00:00Z")))
    assert (second.accepted, third.duplicates) == (1, 1)
    assert sorted(e["customer_id"] for e in events_of(lake)) == ["c1", "c2"]


def test_key_index_written_by_another_duckdb_version_is_rebuilt(tmp_path):
    lake, catalog = Lake(tmp_path), shop("c1")
    (first,) = run(lake, catalog, batch(tmp_path / "a.jsonl", ev("k1")))
    # as if another DuckDB version, with another hash(), had written the index
    keys = lake.table_dir("keys")
    manifest = json.loads((keys / "manifest.json").read_text())
    (run_dir,) = [keys / r["name"] for r in manifest["runs"]]
    np.save(run_dir / "hashes.npy", np.array([1], np.uint64))
    (keys / "manifest.json").write_text(json.dumps({**manifest, "duckdb_version": "0.0.0"}))
    (second,) = run(lake, catalog, batch(tmp_path / "b.jsonl",
                                         ev("k1", ts="2026-11-01T00:00:00Z")))
    assert (second.status, second.duplicates) == ("ingested", 1)
