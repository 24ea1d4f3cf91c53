"""Landing batches in every format, good and bad, with the exact place of each problem."""

import gzip
import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.batches import ingest_files
from storage.duck import connect
from storage.lake import Lake
from tests.catalogs import one_plan, unit

NOW = datetime(2026, 10, 5, tzinfo=UTC)


def event(key, ts="2026-10-01T10:00:00Z", customer="c0", **extra):
    return {"event_name": "api", "timestamp": ts, "customer_id": customer,
            "idempotency_key": key, "properties": {"n": 1}, **extra}


def landing(tmp_path):
    folder = tmp_path / "landing"
    folder.mkdir()
    good = [json.dumps(event("j1")), "", json.dumps(event("j2", ts="2026-10-02T00:00:00+02:00"))]
    (folder / "good.jsonl").write_text("\n".join(good) + "\n")
    bad = [
        '{"event_name": "api", "timestamp": ',  # truncated
        "[1, 2]",
        json.dumps({k: v for k, v in event("x").items() if k != "idempotency_key"}),
        json.dumps(event("j3", properties="not an object")),
        json.dumps(event("j4", ts="2026-13-45T00:00:00Z")),
        json.dumps(event("j5", customer="nobody")),
    ]
    (folder / "bad.jsonl.gz").write_bytes(gzip.compress("\n".join(bad).encode()))
    (folder / "events.csv").write_text(
        "idempotency_key,event_name,timestamp,customer_id,properties\n"
        'c1,api,2026-10-01T12:00:00Z,c0,"{""n"": 2}"\n'
        "j1,api,2026-10-01T12:00:00Z,c0,{}\n"  # j1 again: a duplicate
        "c2,api,,c0,{}\n")
    (folder / "notes.txt").write_text("hello")
    (folder / "broken.csv.gz").write_bytes(b"this is not gzip")
    (folder / ".partial-upload.jsonl").write_text("ignored until renamed")
    pq.write_table(pa.table({"event_name": ["api"], "timestamp": ["2026-10-02T09:00:00Z"],
                             "customer_id": ["c0"], "idempotency_key": ["p1"],
                             "properties": ['{"n": 3}']}), folder / "batch.parquet")
    return Lake(tmp_path)


def test_every_format_lands_and_every_problem_is_placed(tmp_path):
    lake = landing(tmp_path)
    catalog = one_plan([unit("fee", "1.00", fixed_quantity=1)])
    # one batch per file, in name order: events.csv comes before good.jsonl
    results = ingest_files(connect(), lake, catalog, lake.landing_files(), NOW)
    assert [(r.file, r.rows, r.accepted, r.rejected) for r in results] == [
        ("bad.jsonl.gz", 6, 0, 6),
        ("batch.parquet", 1, 1, 0),
        ("broken.csv.gz", 1, 0, 1),
        ("events.csv", 3, 2, 1),
        ("good.jsonl", 2, 1, 1),
        ("notes.txt", 1, 0, 1),
    ]
    events = pq.read_table(lake.files_in("events", "event_date", ["2026-10-01", "2026-10-02"]),
                           partitioning=None).to_pylist()
    assert sorted((e["idempotency_key"], e["source_file"], e["source_row"]) for e in events) == [
        ("c1", "events.csv", 1),
        ("j1", "events.csv", 2),
        ("j2", "good.jsonl", 3),  # line 2 is blank
        ("p1", "batch.parquet", 1),
    ]
    # 2026-10-02T00:00:00+02:00 is 2026-10-01T22:00Z: October 1st in UTC
    assert next(e for e in events if e["idempotency_key"] == "j2")["timestamp"] == datetime(
        2026, 10, 1, 22, tzinfo=UTC)
    rejects = pq.read_table(lake.all_files("quarantine"), partitioning=None).to_pylist()
    found = sorted((r["source_file"], r["source_row"], r["reject_reason"]) for r in rejects)
    assert found == [
        ("bad.jsonl.gz", 1, "line is not valid JSON"),
        ("bad.jsonl.gz", 2, "line is not a JSON object"),
        ("bad.jsonl.gz", 3, "missing idempotency_key"),
        ("bad.jsonl.gz", 4, "properties is not a JSON object"),
        ("bad.jsonl.gz", 5, "timestamp is not an ISO 8601 instant"),
        ("bad.jsonl.gz", 6, "unknown customer_id"),
        ("broken.csv.gz", 0, "cannot read file: Not a gzipped file (b'th')"),
        ("events.csv", 3, "missing timestamp"),
        ("good.jsonl", 1, "duplicate idempotency_key"),
        ("notes.txt", 0, "unsupported file type (expected .parquet, .jsonl, .ndjson or .csv; "
                         "text formats may be .gz)"),
    ]
    csv_batch = results[3].batch_id
    duplicate = next(r for r in rejects if r["reject_reason"] == "duplicate idempotency_key")
    assert duplicate["reject_detail"] == f"already ingested in batch {csv_batch}"
    # the hidden upload was left alone, everything else moved to raw/
    assert [p.name for p in lake.landing.iterdir()] == [".partial-upload.jsonl"]


def test_each_json_line_that_is_not_an_object_is_named_so(tmp_path):
    """A line is parsed once: what is valid JSON but no object (null among them) and what
    is no JSON are told apart; an object after white space is an event."""
    folder = tmp_path / "landing"
    folder.mkdir()
    lines = ["null", '"text"', "5", "true", " \t[1]", "{} x", "{", " \t" + json.dumps(event("k1"))]
    (folder / "lines.jsonl").write_text("\n".join(lines) + "\n")
    lake = Lake(tmp_path)
    (result,) = ingest_files(connect(), lake, one_plan([unit("fee", "1.00", fixed_quantity=1)]),
                             lake.landing_files(), NOW)
    assert (result.accepted, result.rejected) == (1, 7)
    rejects = pq.read_table(lake.all_files("quarantine"), partitioning=None).to_pylist()
    assert sorted((r["source_row"], r["reject_reason"]) for r in rejects) == [
        (1, "line is not a JSON object"),
        (2, "line is not a JSON object"),
        (3, "line is not a JSON object"),
        (4, "line is not a JSON object"),
        (5, "line is not a JSON object"),
        (6, "line is not valid JSON"),
        (7, "line is not valid JSON"),
    ]
