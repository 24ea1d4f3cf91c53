"""Files that cannot be read, or only in part: each is quarantined with its reason and
its batch recorded, and the file after it is still ingested."""

import gzip
import json
import zlib
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from assets.resources import OrbStore
from cli.main import main
from ingestion.batches import ingest_files
from pipelines import runner
from pipelines.definitions import build_definitions
from storage.duck import connect
from storage.lake import Lake
from tests.catalogs import one_plan, unit

NOW = datetime(2026, 10, 5, tzinfo=UTC)
NO_MAGIC = ("cannot read file: Parquet magic bytes not found in footer. Either the file is "
            "corrupted or this is not a parquet file.")
EMPTY = "cannot read file: the file is empty"
TRUNCATED = ("cannot read file: truncated gzip stream (it ends before its end marker); every "
             "complete row before this one was read")
FIELDS = "event_name, timestamp, customer_id, external_customer_id, idempotency_key, properties"


def event(key, name="api"):
    return {"event_name": name, "timestamp": "2026-10-01T10:00:00Z", "customer_id": "c0",
            "idempotency_key": key, "properties": {"n": 1}}


def line(key, name="api"):
    return json.dumps(event(key, name)).encode() + b"\n"


def parquet_bytes(tmp_path, table):
    path = tmp_path / "scratch.parquet"
    pq.write_table(table, path, compression="none", use_dictionary=False)
    data = path.read_bytes()
    path.unlink()
    return data


def events_table(*keys):
    rows = [{**event(k), "properties": "{}"} for k in keys]
    return pa.Table.from_pylist(rows)


def truncated_parquet(tmp_path):
    data = parquet_bytes(tmp_path, events_table("p1", "p2", "p3"))
    return data[:len(data) // 2]


def wrong_schema(tmp_path):
    return parquet_bytes(tmp_path, pa.table({"a": [1, 2], "b": ["x", "y"]}))


def corrupt_pages(tmp_path):
    """A sound footer over a first data page whose header is overwritten."""
    data = bytearray(parquet_bytes(tmp_path, events_table("p1", "p2", "p3")))
    (tmp_path / "scratch.parquet").write_bytes(data)
    offset = pq.ParquetFile(tmp_path / "scratch.parquet").metadata.row_group(0).column(0) \
        .data_page_offset
    (tmp_path / "scratch.parquet").unlink()
    data[offset:offset + 8] = b"\xff" * 8
    return bytes(data)


def bad_utf8_line(_tmp_path):
    """Ten events; the fourth's name holds a byte that is not UTF-8."""
    lines = [line(f"u{i}") for i in range(1, 11)]
    lines[3] = line("u4", name="a\udcffi").replace(b"\\udcff", b"\xff")
    return b"".join(lines)


def truncated_gzip(_tmp_path):
    """Ten events, each flushed whole into the gzip stream, cut three bytes into the
    eighth: seven complete lines before the cut."""
    packer = zlib.compressobj(wbits=31)
    data, ends = b"", []
    for i in range(1, 11):
        data += packer.compress(line(f"z{i}")) + packer.flush(zlib.Z_FULL_FLUSH)
        ends.append(len(data))
    return data[:ends[6] + 3]


def bad_csv_records(_tmp_path):
    return (b"idempotency_key,event_name,timestamp,customer_id,properties\n"
            b"r1,api,2026-10-01T10:00:00Z,c0,{}\n"
            b"r2,api\n"  # too few fields
            b"r3,a\xffi,2026-10-01T10:00:00Z,c0,{}\n"  # not UTF-8
            b"r4,api,2026-10-01T10:00:00Z,c0,{},extra\n"  # too many
            b"r5,api,2026-10-01T10:00:00Z,c0,{}\n")


# name -> (its bytes, (rows, accepted, rejected) of its batch, its quarantine rows)
CORPUS = {
    "truncated.parquet": (truncated_parquet, (1, 0, 1), [(0, NO_MAGIC)]),
    "zero.parquet": (lambda _: b"", (1, 0, 1), [(0, EMPTY)]),
    "magic.parquet": (lambda _: b"this is not parquet, whatever its name says",
                      (1, 0, 1), [(0, NO_MAGIC)]),
    "tiny.parquet": (lambda _: b"PAR1", (1, 0, 1), [
        (0, "cannot read file: Parquet file size is 4 bytes, smaller than the minimum file "
            "footer (8 bytes)")]),
    "schema.parquet": (wrong_schema, (1, 0, 1), [
        (0, f"cannot read file: none of its columns (a, b) is an event field ({FIELDS})")]),
    "zero.csv": (lambda _: b"", (1, 0, 1), [(0, EMPTY)]),
    "zero.jsonl": (lambda _: b"", (1, 0, 1), [(0, EMPTY)]),
    "utf8.jsonl": (bad_utf8_line, (10, 9, 1), [(4, "line is not valid UTF-8")]),
    "cut.jsonl.gz": (truncated_gzip, (8, 7, 1), [(8, TRUNCATED)]),
    "records.csv": (bad_csv_records, (5, 2, 3), [
        (2, "record does not have as many fields as the header"),
        (3, "record is not valid UTF-8"),
        (4, "record does not have as many fields as the header")]),
}


def good_file(folder):
    path = folder / "next.jsonl"
    path.write_bytes(line("g1") + line("g2") + line("g3"))
    return path


def quarantine_of(lake, batch_id):
    rows = pq.read_table(lake.partition_file("quarantine", "batch_id", batch_id),
                         partitioning=None).to_pylist()
    return [(r["source_file"], r["source_row"], r["reject_reason"]) for r in rows]


def record_of(lake, batch_id):
    (record,) = pq.read_table(lake.partition_file("batches", "batch_id", batch_id),
                              partitioning=None).to_pylist()
    return record["status"], record["rows"], record["accepted"], record["rejected"]


def events_of(lake):
    return sorted(e["idempotency_key"] for e in pq.read_table(
        lake.all_files("events"), partitioning=None).to_pylist())


@pytest.mark.parametrize("name", CORPUS)
def test_a_bad_file_is_quarantined_and_the_next_file_still_ingested(tmp_path, name):
    make, (rows, accepted, rejected), reasons = CORPUS[name]
    lake, catalog = Lake(tmp_path / "data"), one_plan([unit("fee", "1.00", fixed_quantity=1)])
    bad = tmp_path / name
    bad.write_bytes(make(tmp_path))
    first, second = ingest_files(connect(), lake, catalog, [bad, good_file(tmp_path)], NOW)
    assert (first.file, first.rows, first.accepted, first.rejected) == (
        name, rows, accepted, rejected)
    assert record_of(lake, first.batch_id) == ("ingested", rows, accepted, rejected)
    assert quarantine_of(lake, first.batch_id) == [(name, row, why) for row, why in reasons]
    assert (second.file, second.accepted, second.rejected) == ("next.jsonl", 3, 0)
    # the bad file's batch is committed: its copy is kept in raw/ for a replay
    assert lake.raw_file(first.batch_id).read_bytes() == bad.read_bytes()


def test_the_readable_lines_of_a_partly_bad_file_are_ingested(tmp_path):
    lake, catalog = Lake(tmp_path / "data"), one_plan([unit("fee", "1.00", fixed_quantity=1)])
    files = []
    for name in ("utf8.jsonl", "cut.jsonl.gz", "records.csv"):
        files.append(tmp_path / name)
        files[-1].write_bytes(CORPUS[name][0](tmp_path))
    ingest_files(connect(), lake, catalog, files, NOW)
    assert events_of(lake) == sorted(
        [f"u{i}" for i in (1, 2, 3, 5, 6, 7, 8, 9, 10)] + [f"z{i}" for i in range(1, 8)]
        + ["r1", "r5"])
    # the line that is not UTF-8 keeps its fields, the bad byte shown as U+FFFD
    (row,) = [r for r in pq.read_table(lake.all_files("quarantine"), partitioning=None)
              .to_pylist() if r["source_file"] == "utf8.jsonl"]
    assert (row["idempotency_key"], row["event_name"]) == ("u4", "a\ufffdi")


def test_corrupt_data_behind_a_sound_footer_is_found_while_checking(tmp_path):
    lake, catalog = Lake(tmp_path / "data"), one_plan([unit("fee", "1.00", fixed_quantity=1)])
    bad = tmp_path / "pages.parquet"
    bad.write_bytes(corrupt_pages(tmp_path))
    first, second = ingest_files(connect(), lake, catalog, [bad, good_file(tmp_path)], NOW)
    assert (first.rows, first.accepted, first.rejected) == (1, 0, 1)
    ((source, row, reason),) = quarantine_of(lake, first.batch_id)
    assert (source, row) == ("pages.parquet", 0)
    assert reason.startswith("cannot read file: corrupt Parquet data (")
    assert second.accepted == 3


def test_a_multi_file_orb_ingest_goes_on_past_bad_files(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("ORB_STATE_URL", raising=False)
    monkeypatch.setenv("ORB_MAX_EVENT_AGE_DAYS", "36500")
    data = tmp_path / "data"
    (data / "catalog").mkdir(parents=True)
    (data / "catalog" / "c.yaml").write_text(
        "metrics: [{id: calls, name: Calls, sql: \"SELECT count(*) FROM events\"}]\n")
    added = CliRunner().invoke(main, ["customers", "add", "c0", "--name", "Zero",
                                      "--data-dir", str(data)], catch_exceptions=False)
    assert added.exit_code == 0
    files = []
    for name in ("zero.parquet", "truncated.parquet", "cut.jsonl.gz"):
        files.append(tmp_path / name)
        files[-1].write_bytes(CORPUS[name][0](tmp_path))
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        main, ["ingest", *map(str, files), str(good_file(tmp_path)), "--data-dir", str(data)],
        catch_exceptions=False)
    assert result.exit_code == 0
    table = [[cell.strip() for cell in row.split("│")[1:-1]]
             for row in result.output.splitlines() if row.startswith("│")]
    # file, then rows, accepted, rejected, duplicates, late (the batch id is a hash)
    assert [[r[0], *r[3:]] for r in table] == [
        ["zero.parquet", "1", "0", "1", "0", "0"],
        ["truncated.parquet", "1", "0", "1", "0", "0"],
        ["cut.jsonl.gz", "8", "7", "1", "0", "0"],
        ["next.jsonl", "3", "3", "0", "0", "0"],
    ]


def test_bad_files_in_the_landing_folder_never_block_it(tmp_path, monkeypatch):
    """The landing sensor's job (which orb bill runs first) takes every file out of the
    landing folder, bad ones included, so none blocks the next run."""
    monkeypatch.delenv("ORB_STATE_URL", raising=False)
    store = OrbStore(data_dir=str(tmp_path), max_event_age_days=36500)
    landing = store.lake.landing
    landing.mkdir(parents=True)
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "c.yaml").write_text(
        "metrics: [{id: calls, name: Calls, sql: \"SELECT count(*) FROM events\"}]\n")
    CliRunner().invoke(main, ["customers", "add", "c0", "--name", "Zero",
                              "--data-dir", str(tmp_path)], catch_exceptions=False)
    (landing / "a-broken.parquet").write_bytes(b"PAR1 and then nothing")
    (landing / "b-empty.csv").write_bytes(b"")
    good_file(landing)
    runner.ingest_landing(build_definitions(store), dg.DagsterInstance.ephemeral())
    assert list(landing.iterdir()) == []
    assert events_of(store.lake) == ["g1", "g2", "g3"]
    reasons = sorted(r["reject_reason"] for r in pq.read_table(
        store.lake.all_files("quarantine"), partitioning=None).to_pylist())
    assert reasons == [NO_MAGIC, EMPTY]


def test_a_gzip_stream_cut_at_a_line_end_keeps_every_line(tmp_path):
    lake, catalog = Lake(tmp_path / "data"), one_plan([unit("fee", "1.00", fixed_quantity=1)])
    whole = gzip.compress(line("a1") + line("a2"))
    path = tmp_path / "two.jsonl.gz"
    path.write_bytes(whole[:-8])  # no trailer (CRC and size): the data itself is complete
    (result,) = ingest_files(connect(), lake, catalog, [path], NOW)
    assert (result.rows, result.accepted, result.rejected) == (3, 2, 1)
    assert quarantine_of(lake, result.batch_id) == [("two.jsonl.gz", 3, TRUNCATED)]
