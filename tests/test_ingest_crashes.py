"""Ingestions killed or failed mid-way: the next one leaves no scratch file behind, and
raw/ only ever holds the files of committed batches."""

import itertools
import multiprocessing
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ingestion.batches import ingest_files
from storage.duck import connect
from storage.lake import Lake
from tests.batches import batch, ev
from tests.catalogs import catalog as make_catalog

NOW = datetime(2026, 11, 10, tzinfo=UTC)
SCRATCH = "{}.0123456789abcdef0123456789abcdef.tmp"
COMMITTED_AT = 12  # the write that commits the batch: its record


def shop():
    return make_catalog(plans=[], customers=[{"id": "c1", "name": "c1"}], subscriptions=[])


def source(folder, name="a.jsonl"):
    """Three events over two days and one of an unknown customer: 4 rows, 3 accepted."""
    return batch(folder / name, ev("k1"), ev("k2"), ev("k3", ts="2026-11-08T12:00:00Z"),
                 ev("k4", customer="nobody"))


def _ingest_killed(root: str, path: str, point: int) -> None:
    """Ingest ``path``, killed with SIGKILL (as ``kill -9`` does) just before the
    ``point``-th written file would have been renamed into place."""
    renames, real = itertools.count(1), os.replace

    def replace(scratch, target):
        if next(renames) == point:
            os.kill(os.getpid(), signal.SIGKILL)
        real(scratch, target)

    os.replace = replace
    ingest_files(connect(), Lake(root), shop(), [Path(path)], NOW)


def leftovers(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(".tmp"))


def committed_raw(lake):
    return sorted(str(p.relative_to(lake.raw)) for p in lake.raw.rglob("*") if p.is_file())


def uncommitted_raw(lake):
    folder = lake.uncommitted_raw
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) \
        if folder.exists() else []


def keys(lake):
    return sorted(e["idempotency_key"] for e in pq.read_table(
        lake.all_files("events"), partitioning=None).to_pylist())


def test_killed_at_every_write_the_next_ingestion_tidies_up_and_ingests_once(tmp_path):
    # forked from a server that imported ingestion, not this process with its DuckDB
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["ingestion.batches", "tests.test_ingest_crashes"])
    killed = 0
    for point in itertools.count(1):
        root = tmp_path / f"kill-{point}"
        path = source(tmp_path)
        worker = context.Process(target=_ingest_killed, args=(str(root), str(path), point))
        worker.start()
        worker.join(timeout=120)
        if worker.exitcode == 0:
            break  # the ingestion wrote fewer files than this: every point was tried
        assert worker.exitcode == -signal.SIGKILL
        killed += 1
        lake = Lake(root)
        (result,) = ingest_files(connect(), lake, shop(), [path], NOW)
        if point <= COMMITTED_AT:
            assert (result.status, result.rows, result.accepted, result.rejected) == (
                "ingested", 4, 3, 1), point
        else:  # killed compacting the month's rollups: the batch had committed
            assert result.status == "already ingested", point
        assert leftovers(root) == [], point
        assert committed_raw(lake) == [f"{result.batch_id}/a.jsonl"], point
        assert uncommitted_raw(lake) == [], point
        assert keys(lake) == ["k1", "k2", "k3"], point
    # the key index's manifest (twice), the raw copy, two day files and their hour and
    # day rollups, the quarantine, the raw copy's move to raw/, the batch record, then
    # November's rollup compaction
    assert killed == COMMITTED_AT + 1


def test_a_failed_batch_keeps_its_file_in_quarantine_not_beside_committed_ones(
        tmp_path, monkeypatch):
    lake = Lake(tmp_path / "data")
    failing = source(tmp_path)
    real_write = Lake.write_partition

    def fail_on_commit(self, table, key, value, rows):
        if table == "batches":
            raise OSError("disk full")
        return real_write(self, table, key, value, rows)

    monkeypatch.setattr(Lake, "write_partition", fail_on_commit)
    with pytest.raises(OSError, match="disk full"):
        ingest_files(connect(), lake, shop(), [failing], NOW)
    monkeypatch.undo()
    (other,) = ingest_files(connect(), lake, shop(), [batch(tmp_path / "b.jsonl", ev("b1"))],
                            NOW)
    assert committed_raw(lake) == [f"{other.batch_id}/b.jsonl"]
    (kept,) = uncommitted_raw(lake)
    assert kept.endswith("/a.jsonl")
    assert (lake.uncommitted_raw / kept).read_bytes() == failing.read_bytes()
    # sent again, it is ingested, and its copy moves to raw/
    (again,) = ingest_files(connect(), lake, shop(), [failing], NOW)
    assert (again.status, again.accepted) == ("ingested", 3)
    assert committed_raw(lake) == sorted([f"{other.batch_id}/b.jsonl",
                                          f"{again.batch_id}/a.jsonl"])
    assert uncommitted_raw(lake) == []


def test_scratch_files_a_crash_left_are_removed_by_the_next_ingestion(tmp_path):
    """A lake that an earlier release's ingestion was killed in: only the scratch files
    of the folders ingestion writes under its lock go, nothing else."""
    root = tmp_path / "data"
    lake = Lake(root)
    planted = {
        "events": lake.table_dir("events") / "event_date=2026-11-09" / SCRATCH.format(
            ".9f0e1d2c3b4a596877665544.parquet"),
        "quarantine": lake.table_dir("quarantine") / "batch_id=x" / SCRATCH.format(
            ".data.parquet"),
        "batches": lake.table_dir("batches") / "batch_id=x" / SCRATCH.format(".data.parquet"),
        "raw": lake.raw / "x" / SCRATCH.format(".a.jsonl"),
    }
    kept = {
        # amendments are written without the ingest lock: a live writer's, maybe
        "amendments": lake.table_dir("amendments") / "amendment_id=y" / SCRATCH.format(
            ".data.parquet"),
        "not a scratch name": lake.table_dir("events") / "event_date=2026-11-09" / ".notes.tmp",
    }
    for path in [*planted.values(), *kept.values()]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1 half a file")
    (result,) = ingest_files(connect(), lake, shop(), [source(tmp_path)], NOW)
    assert result.accepted == 3
    assert [name for name, path in planted.items() if path.exists()] == []
    assert [name for name, path in kept.items() if path.exists()] == list(kept)
    # the folder of a copy killed before it was made (batch x) goes too
    assert [p.name for p in lake.raw.iterdir()] == [result.batch_id]
