"""The Parquet lake: where every table lives on disk, and how partitions are written.

Layout under the data directory (see docs/lake.md)::

    landing/                       raw event batches as received (never modified)
    raw/<batch_id>/<name>          committed batches' files, as received
    quarantine/raw/<batch_id>/<name>   the files of batches not committed (being
                                   ingested, or whose ingestion failed)
    lake/<table>/<key>=<value>/data.parquet
    reports/                       rendered documents
    orb.duckdb                     views over the lake for analysts

Which tables there are, their schemas, partition keys and publication: ``tables.py``.
A partition is one file, written to a temporary name in the same directory and
renamed into place, so readers see either the old or the new partition, never
half of one. The same rows in the same order give byte-identical files. A writer
killed mid-write leaves its hidden scratch file behind; ``remove_scratch`` removes
them for a caller that holds the lock every writer of the folder holds.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from storage.write_behind import WriteBehind, process_writer

PARTITION_FILE = "data.parquet"
# write_atomically's scratch names: ".<target name>.<uuid4 hex>.tmp"
SCRATCH_NAME = re.compile(r"\..+\.[0-9a-f]{32}\.tmp")

# A row of a table read into Python (``pa.Table.to_pylist()``): pyarrow ships no types,
# and each value is whatever its column holds (str, Decimal, date, a list, None...).
Row = dict[str, Any]


class Lake:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def duckdb_path(self) -> Path:
        return self.root / "orb.duckdb"

    def table_dir(self, table: str) -> Path:
        return self.root / "lake" / table

    def partition_file(self, table: str, key: str, value: object) -> Path:
        """Where a partition is on disk, once a write of it behind is there."""
        path = self._partition_path(table, key, value)
        _writer().wait(lambda pending: pending == path)
        return path

    def _partition_path(self, table: str, key: str, value: object,
                        name: str = PARTITION_FILE) -> Path:
        return self.table_dir(table) / f"{key}={value}" / name

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def uncommitted_raw(self) -> Path:
        """Where a batch's file waits until its batch commits, and stays if it never
        does: apart from the committed batches in ``raw``."""
        return self.root / "quarantine" / "raw"

    def write_partition(self, table: str, key: str, value: object, rows: pa.Table, *,
                        keep: bool = False) -> Path:
        """Atomically replace one partition with ``rows`` (``keep``: as ``write_file``)."""
        return self.write_file(table, key, value, PARTITION_FILE, rows, keep=keep)

    def write_file(self, table: str, key: str, value: object, name: str,
                   rows: pa.Table, *, keep: bool = False, **parquet_options: object) -> Path:
        """Atomically replace one file of a partition (tables written batch by batch
        keep one file per batch in each partition); with ``keep``, ``rows`` are kept in
        memory for ``read_file`` (a later step of the same run reads them back).
        ``parquet_options`` go to
        ``pyarrow.parquet.write_table``, e.g. which columns get dictionaries. Written
        after the writes handed over to ``write_behind`` before it."""
        _writer().wait()
        return self.write_file_now(table, key, value, name, rows, keep=keep,
                                   **parquet_options)

    def write_file_now(self, table: str, key: str, value: object, name: str,
                       rows: pa.Table, *, keep: bool = False,
                       **parquet_options: object) -> Path:
        """``write_file`` without waiting for the writes behind: the one place, on
        whichever thread, where a lake file reaches the disk (tests/killed_run.py kills
        runs at one)."""
        written: list[tuple[int, int, int]] = []

        def write(scratch: Path) -> None:
            # zstd at its fastest level: most of the size win of zstd for little CPU.
            pq.write_table(rows, scratch, compression="zstd", compression_level=1,
                           **parquet_options)
            if keep:
                written.append(_identity(scratch))  # the rename keeps it

        path = write_atomically(self._partition_path(table, key, value, name), write)
        if keep:
            _WRITTEN.keep(path, written[0], rows)
        return path

    def write_behind(self, table: str, key: str, value: object, rows: pa.Table, *,
                     name: str = PARTITION_FILE) -> Path:
        """``write_file`` with ``keep``, on the process's writer thread after the writes
        handed over before it, while the caller goes on (storage/write_behind.py); until
        it is on disk, ``read_partition`` and ``read_file`` give ``rows`` from memory and
        the lake's listings and ``partition_file`` wait for it."""
        path = self._partition_path(table, key, value, name)
        _writer().submit(path, rows, lambda: self.write_file_now(
            table, key, value, name, rows, keep=True))
        return path

    def wait_for_writes(self) -> None:
        """Until every write handed over to ``write_behind`` is on disk; raises the first
        one's error, if any failed."""
        _writer().wait()

    def read_partition(self, table: str, key: str, value: object) -> pa.Table:
        path = self._partition_path(table, key, value)
        if _writer().rows(path) is None and not path.exists():
            raise FileNotFoundError(f"partition {key}={value} of table {table!r} is missing: "
                                    f"{path} (materialize the upstream asset first)")
        return self.read_file(path)

    def read_file(self, path: str | Path) -> pa.Table:
        """One Parquet file of the lake: from memory if this process wrote it with
        ``keep`` and it is still the file written, else from disk."""
        pending = _writer().rows(Path(path))
        if pending is not None:
            return pending
        kept = _WRITTEN.get(Path(path))
        return kept if kept is not None else pq.read_table(path, partitioning=None)

    def all_files(self, table: str) -> list[str]:
        """Every Parquet file of a table (one per partition, or one per batch and
        partition for ``events``), as strings for DuckDB."""
        self._wait_for(table)
        return sorted(str(p) for p in self.table_dir(table).glob("*=*/*.parquet"))

    def read_all(self, table: str, schema: pa.Schema) -> pa.Table:
        """Every row of a table written a file at a time (records, ledgers), read with
        its declared ``schema``; empty when nothing is written yet."""
        files = self.all_files(table)
        if not files:
            return schema.empty_table()
        return pq.read_table(files, partitioning=None, schema=schema)

    def files_in(self, table: str, key: str, values: Iterable[object]) -> list[str]:
        """Every Parquet file in those of the given partitions that exist."""
        self._wait_for(table)
        return sorted(str(p) for value in values
                      for p in (self.table_dir(table) / f"{key}={value}").glob("*.parquet"))

    @staticmethod
    def partition_value(path: str | Path) -> str:
        """The partition value of a file: ``2026-10-01`` for ``…/event_date=2026-10-01/x``."""
        return Path(path).parent.name.split("=", 1)[1]

    def batch_files(self, table: str, batch_id: str) -> list[Path]:
        self._wait_for(table)
        return sorted(self.table_dir(table).glob(f"*=*/{batch_id}.parquet"))

    def keep_raw(self, source: Path, batch_id: str) -> Path:
        """Copy a received file, byte for byte, to quarantine/raw/<batch_id>/<name>
        (once), where it stays until ``commit_raw``."""
        target = self.uncommitted_raw / batch_id / source.name
        if not target.exists():
            write_atomically(target, lambda scratch: shutil.copyfile(source, scratch))
        return target

    def commit_raw(self, kept: Path, batch_id: str) -> Path:
        """Move a kept file to raw/<batch_id>/<name> (a committed batch's is there
        already), with any other name the same bytes were kept under."""
        target = self.raw / batch_id / kept.name
        if kept != target:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(kept, target)
            shutil.rmtree(kept.parent)
        return target

    def uncommit_raw(self, batch_id: str) -> None:
        """Move raw/<batch_id>/ back beside the uncommitted batches' files (its batch
        never committed: a crash between ``commit_raw`` and the batch record)."""
        source, target = self.raw / batch_id, self.uncommitted_raw / batch_id
        if not any(source.iterdir()):  # killed while copying, by an earlier release
            source.rmdir()
            return
        shutil.rmtree(target, ignore_errors=True)  # the same bytes, kept again
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    def raw_file(self, batch_id: str) -> Path:
        files = [p for p in (self.raw / batch_id).glob("*") if not p.name.startswith(".")]
        if len(files) != 1:
            raise FileNotFoundError(f"no raw file for batch {batch_id!r} in {self.raw}")
        return files[0]

    def remove_scratch(self, folder: Path, older_than: timedelta | None = None) -> list[Path]:
        """Remove the scratch files of writers that died mid-write (killed: an error
        removes its own) from ``folder`` and its subfolders (a table's partitions).
        The caller holds the lock every writer of ``folder`` holds, since a live
        writer's scratch file looks just the same; or, where no lock is held, gives
        ``older_than``, an age no live writer's scratch file reaches."""
        cutoff = None if older_than is None else time.time() - older_than.total_seconds()
        removed = []
        for directory in (folder, *(p for p in folder.glob("*") if p.is_dir())):
            for path in directory.glob(".*.tmp"):
                if (SCRATCH_NAME.fullmatch(path.name) and path.is_file()
                        and (cutoff is None or path.stat().st_mtime < cutoff)):
                    path.unlink()
                    removed.append(path)
        return removed

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive lock on ``.<name>.lock`` in the data folder, for work that must
        not run twice at once on this lake (ingesting, issuing numbers, collecting)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def recovering_lock(self, name: str, recover: Callable[[], None]) -> Iterator[None]:
        """``lock(name)``, calling ``recover`` first if the last holder did not finish
        (it was killed, or failed): ``.<name>.finished`` exists only between holders
        that finished, so a lake written before it existed is recovered once too."""
        with self.lock(name):
            finished = self.root / f".{name}.finished"
            if finished.exists():
                finished.unlink()
            else:
                recover()
            yield
            finished.touch()

    def _wait_for(self, table: str) -> None:
        """Until the writes behind of ``table``'s files are on disk (a listing of it)."""
        folder = self.table_dir(table)
        _writer().wait(lambda pending: pending.is_relative_to(folder))

    def landing_files(self) -> list[Path]:
        """Every file in the landing folder (hidden files, e.g. partial uploads, excepted)."""
        return sorted(p for p in self.landing.rglob("*")
                      if p.is_file() and not any(part.startswith(".") for part in
                                                 p.relative_to(self.landing).parts))


class _WrittenFiles:
    """The files this process wrote with ``keep`` last, while each is still the one
    written (the same inode, size and modification time): a billing run's month tables
    and state snapshot, which its later steps read back (0.05-0.08 s a run at 10,000
    customers, docs/capacity.md). Bounded by ``limit`` bytes, the oldest dropped first."""

    def __init__(self, limit: int):
        self.limit = limit
        self.tables: OrderedDict[Path, tuple[tuple[int, int, int], pa.Table]] = OrderedDict()
        self.size = 0  # the bytes of ``tables``
        self.lock = threading.Lock()  # the API serves requests on threads

    def keep(self, path: Path, identity: tuple[int, int, int], rows: pa.Table) -> None:
        with self.lock:
            self._drop(path)
            if rows.nbytes <= self.limit:
                self.tables[path] = (identity, rows)
                self.size += rows.nbytes
            while self.size > self.limit:
                self._drop(next(iter(self.tables)))

    def get(self, path: Path) -> pa.Table | None:
        with self.lock:
            kept = self.tables.get(path)
        try:
            return kept[1] if kept is not None and kept[0] == _identity(path) else None
        except FileNotFoundError:
            return None

    def _drop(self, path: Path) -> None:
        dropped = self.tables.pop(path, None)
        if dropped is not None:
            self.size -= dropped[1].nbytes


def _writer() -> WriteBehind:
    return process_writer(os.getpid())


def _identity(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


_WRITTEN = _WrittenFiles(limit=256 * 2**20)


def write_atomically(target: Path, write: Callable[[Path], object]) -> Path:
    """``write`` a hidden scratch file beside ``target``, flush it to disk and rename it
    over ``target``: readers see the old file or the new one, never part of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(scratch)
        with open(scratch, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)
    return target


def fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync a file or a folder by its path (a folder's: the names in it are durable)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
