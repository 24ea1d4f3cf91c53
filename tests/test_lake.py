import os
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage import lake as lake_module
from storage.lake import Lake, _WrittenFiles, write_atomically


def rows(values):
    return pa.table({"x": values})


def test_partition_write_is_byte_identical_for_the_same_rows(tmp_path):
    lake = Lake(tmp_path)
    first = lake.write_partition("t", "day", "2026-10-01", rows([1, 2, 3])).read_bytes()
    second = lake.write_partition("t", "day", "2026-10-01", rows([1, 2, 3])).read_bytes()
    assert first == second


def test_crash_mid_write_keeps_the_old_partition(tmp_path, monkeypatch):
    lake = Lake(tmp_path)
    path = lake.write_partition("t", "day", "2026-10-01", rows([1, 2, 3]))

    def crash(table, where, **kwargs):
        with open(where, "wb") as handle:
            handle.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        lake.write_partition("t", "day", "2026-10-01", rows([4, 5]))
    monkeypatch.undo()
    assert pq.read_table(path)["x"].to_pylist() == [1, 2, 3]
    assert [p.name for p in path.parent.iterdir()] == ["data.parquet"]


def test_missing_upstream_partition_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="billing_month=2026-10-01 of table 'usage'"):
        Lake(tmp_path).read_partition("usage", "billing_month", "2026-10-01")


def test_a_partition_this_process_wrote_is_read_without_reading_its_file(tmp_path, monkeypatch):
    lake = Lake(tmp_path)
    lake.write_partition("t", "day", "2026-10-01", rows([1, 2, 3]), keep=True)

    def unread(*args, **kwargs):
        raise AssertionError("read from the file")

    monkeypatch.setattr(pq, "read_table", unread)
    assert lake.read_partition("t", "day", "2026-10-01")["x"].to_pylist() == [1, 2, 3]


def test_a_partition_another_writer_replaced_is_read_from_its_file(tmp_path):
    lake = Lake(tmp_path)
    path = lake.write_partition("t", "day", "2026-10-01", rows([1, 2, 3]), keep=True)
    # as another process replaces it: a new file renamed over this one
    write_atomically(path, lambda scratch: pq.write_table(rows([7]), scratch))
    assert lake.read_partition("t", "day", "2026-10-01")["x"].to_pylist() == [7]


def test_written_partitions_kept_are_bounded_oldest_dropped_first(tmp_path, monkeypatch):
    lake = Lake(tmp_path)
    kept = _WrittenFiles(limit=rows(list(range(100))).nbytes * 2)
    monkeypatch.setattr(lake_module, "_WRITTEN", kept)
    for day in ("01", "02", "03"):
        lake.write_partition("t", "day", f"2026-10-{day}", rows(list(range(100))), keep=True)
    assert [path.parent.name for path in kept.tables] == ["day=2026-10-02", "day=2026-10-03"]
    # over the limit
    lake.write_partition("t", "day", "2026-10-04", rows(list(range(300))), keep=True)
    assert [path.parent.name for path in kept.tables] == ["day=2026-10-02", "day=2026-10-03"]
    assert lake.read_partition("t", "day", "2026-10-04")["x"].to_pylist() == list(range(300))


def test_a_partition_replaced_as_soon_as_this_process_wrote_it_is_read_from_its_file(
        tmp_path, monkeypatch):
    lake = Lake(tmp_path)
    rename = os.replace

    def renamed_then_replaced(source, target):
        rename(source, target)
        # another writer's file, renamed over it before this process looks at it
        other = Path(target).with_name(".other.tmp")
        pq.write_table(rows([9]), other)
        rename(other, target)

    monkeypatch.setattr(os, "replace", renamed_then_replaced)
    lake.write_partition("t", "day", "2026-10-01", rows([1, 2, 3]), keep=True)
    monkeypatch.undo()
    assert lake.read_partition("t", "day", "2026-10-01")["x"].to_pylist() == [9]


class GatedWrites:
    """Lake.write_file_now held until ``open()``: the writes a test hands over stay pending.
    Records each write's table and the thread that wrote it."""

    def __init__(self, monkeypatch, fail: str | None = None):
        self.gate, self.done = threading.Event(), []
        write_file = Lake.write_file_now

        def gated(lake, table, *args, **kwargs):
            if threading.current_thread() is not threading.main_thread():
                assert self.gate.wait(10)
            if table == fail:
                raise OSError(28, "No space left on device")
            path = write_file(lake, table, *args, **kwargs)
            self.done.append((table, threading.current_thread().name))
            return path

        monkeypatch.setattr(Lake, "write_file_now", gated)

    def open(self):
        self.gate.set()


def test_a_partition_written_behind_is_read_from_memory_until_it_is_on_disk(
        tmp_path, monkeypatch):
    lake, writes = Lake(tmp_path), GatedWrites(monkeypatch)
    path = lake.write_behind("t", "day", "2026-10-01", rows([1, 2, 3]))
    assert not path.exists() and writes.done == []
    assert lake.read_partition("t", "day", "2026-10-01")["x"].to_pylist() == [1, 2, 3]
    assert lake.read_file(path)["x"].to_pylist() == [1, 2, 3]
    writes.open()
    # a listing of the table waits for it
    assert lake.files_in("t", "day", ["2026-10-01"]) == [str(path)]
    assert pq.read_table(path)["x"].to_pylist() == [1, 2, 3]
    assert [table for table, _ in writes.done] == ["t"]
    assert writes.done[0][1].startswith("lake-writer")


def test_writes_behind_reach_the_disk_in_order_before_any_later_write(tmp_path, monkeypatch):
    lake, writes = Lake(tmp_path), GatedWrites(monkeypatch)
    lake.write_behind("a", "day", "2026-10-01", rows([1]))
    lake.write_behind("b", "day", "2026-10-01", rows([2]))
    # replaced while pending: the newest rows are read, and the last write leaves them
    lake.write_behind("a", "day", "2026-10-01", rows([3]))
    assert lake.read_partition("a", "day", "2026-10-01")["x"].to_pylist() == [3]
    opener = threading.Timer(0.2, writes.open)
    opener.start()
    lake.write_partition("c", "day", "2026-10-01", rows([4]))  # waits for the three
    assert [table for table, _ in writes.done] == ["a", "b", "a", "c"]
    assert pq.read_table(lake.partition_file("a", "day", "2026-10-01"))["x"].to_pylist() == [3]


def test_a_write_behind_that_failed_fails_who_waits_for_it(tmp_path, monkeypatch):
    lake, writes = Lake(tmp_path), GatedWrites(monkeypatch, fail="usage")
    lake.write_behind("usage", "billing_month", "2026-10-01", rows([1]))
    lake.write_behind("line_items", "billing_month", "2026-10-01", rows([2]))
    writes.open()
    with pytest.raises(OSError, match="No space left"):
        lake.write_partition("invoices", "billing_month", "2026-10-01", rows([3]))
    # the writes after it went on; the failed one is not there, nor read from memory
    assert [table for table, _ in writes.done] == ["line_items"]
    with pytest.raises(FileNotFoundError, match="usage"):
        lake.read_partition("usage", "billing_month", "2026-10-01")
    lake.write_partition("invoices", "billing_month", "2026-10-01", rows([3]))  # told once


def test_a_failed_write_behind_is_its_readers_error_until_it_is_waited_for(
        tmp_path, monkeypatch):
    lake, writes = Lake(tmp_path), GatedWrites(monkeypatch, fail="usage")
    lake.write_behind("usage", "billing_month", "2026-10-01", rows([1]))
    lake.write_behind("line_items", "billing_month", "2026-10-01", rows([2]))
    writes.open()
    # the writer's writes run one after the other: once line_items is written, usage failed
    give_up = time.monotonic() + 10
    while not writes.done and time.monotonic() < give_up:
        time.sleep(0.01)
    assert [table for table, _ in writes.done] == ["line_items"]
    # a reader of the failed file is told why it is missing: by the read, by a listing
    # of its table, by partition_file
    for read in (lambda: lake.read_partition("usage", "billing_month", "2026-10-01"),
                 lambda: lake.read_file(lake.table_dir("usage") / "billing_month=2026-10-01"
                                        / "data.parquet"),
                 lambda: lake.all_files("usage")):
        with pytest.raises(OSError, match="No space left"):
            read()
    # the listing waited for it, and so told the error: the file is missing from now on
    assert not lake.partition_file("usage", "billing_month", "2026-10-01").exists()
    with pytest.raises(FileNotFoundError, match="usage"):
        lake.read_partition("usage", "billing_month", "2026-10-01")
    lake.wait_for_writes()  # nothing more to tell
    assert lake.read_partition("line_items", "billing_month", "2026-10-01")[
        "x"].to_pylist() == [2]
