"""The append-only ingest buffer of ``orb serve`` (docs/ingestion.md#http-ingestion).

A request's events are appended to the tenant's open segment, ``ingest_buffer/
api-<stamp>.jsonl.open`` in its data folder, as ``event_requests.serialized`` writes
them, and the request is answered only once an fsync covering its bytes has returned.
Concurrent requests share an fsync (group commit): while one thread syncs, the others
append, and the next sync covers them all.

A segment is sealed (fsynced, closed, renamed ``api-<stamp>.jsonl``) once it holds
``max_events`` events or is ``ORB_INGEST_FLUSH_SECONDS`` old, and the micro-batcher
(``api/ingest_batcher.py``) lands each sealed segment as one batch through
``ingest_files``, then deletes it. The batch id is the segment's content hash, so a
segment landed again after a crash is "already ingested": nothing is doubled.

At start, ``IngestBuffer.open`` seals the open segments a killed server left, each cut
after its last complete line: a torn last line was never acknowledged (its fsync had not
returned), and a whole line not yet acknowledged is landed all the same, harmlessly (a
retry of its request is a duplicate). One server buffers into a folder at a time (a lock
held while it runs).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from ingestion.batches import BatchResult, ingest_files
from ingestion.event_requests import grace_window
from ingestion.key_index import HeldKeys
from pricing_sql.run_catalog import current_catalog
from storage.duck import connect
from storage.lake import fsync_path
from storage.settings import Settings

FOLDER = "ingest_buffer"
OPEN_SUFFIX = ".open"


def buffer_folder(settings: Settings) -> Path:
    return Path(settings.data_dir).resolve() / FOLDER


@dataclass(eq=False)
class _Segment:
    path: Path
    fd: int
    opened: float  # time.monotonic()
    events: int = 0
    written: int = 0  # bytes appended
    synced: int = 0  # bytes an fsync has covered
    syncing: bool = False  # a thread is syncing (or sealing) it, without the lock
    failed: OSError | None = field(default=None)


class BufferBusy(RuntimeError):
    pass


class IngestBuffer:
    """One tenant's buffer; thread-safe. ``append`` returns once the bytes are durable."""

    def __init__(self, folder: Path, max_events: int, lock_fd: int):
        self.folder, self.max_events, self._lock_fd = folder, max_events, lock_fd
        self._cond = threading.Condition()
        self._current: _Segment | None = None
        self._full: list[_Segment] = []
        self._sequence = 0

    @classmethod
    def open(cls, folder: Path, max_events: int) -> IngestBuffer:
        """Take the folder (BufferBusy if another server has it) and seal what a killed
        server left open."""
        folder.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise BufferBusy(f"another orb serve buffers ingestion into {folder}") from None
        for left in sorted(folder.glob(f"*{OPEN_SUFFIX}")):
            recover_segment(left)
        return cls(folder, max_events, lock_fd)

    def close(self) -> None:
        """Seal what is open (acknowledged events stay for the next start to land)."""
        self.seal_due(0.0)
        os.close(self._lock_fd)

    # -- appending --------------------------------------------------------------------

    def append(self, data: bytes, events: int) -> None:
        """Append whole lines and return once an fsync covering them returned (OSError:
        they are not acknowledged, and cut off the segment)."""
        with self._cond:
            segment = self._current or self._start()
            try:
                # a regular file takes the whole write (or raises, e.g. disk full)
                if os.write(segment.fd, data) != len(data):
                    raise OSError(f"short write to {segment.path}")
            except OSError:
                os.ftruncate(segment.fd, segment.written)  # no torn line left behind
                raise
            segment.written += len(data)
            segment.events += events
            end = segment.written
            if segment.events >= self.max_events:
                self._full.append(segment)
                self._current = None
            self._sync(segment, end)

    def _start(self) -> _Segment:
        self._sequence += 1
        path = self.folder / f"api-{time.time_ns():020d}-{self._sequence:06d}.jsonl{OPEN_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fsync_path(self.folder)  # the file's name is durable before its first ack
        self._current = _Segment(path, fd, time.monotonic())
        return self._current

    def _sync(self, segment: _Segment, end: int) -> None:
        """Holding the condition: wait until an fsync covered ``end``, leading one if
        none is under way (it covers every byte appended before it started)."""
        while segment.synced < end:
            if segment.failed:
                raise segment.failed
            if segment.syncing:
                self._cond.wait()
                continue
            segment.syncing, target = True, segment.written
            self._cond.release()
            try:
                os.fsync(segment.fd)
            except OSError as exc:
                segment.failed = exc
                raise
            finally:
                self._cond.acquire()
                segment.syncing = False
                self._cond.notify_all()
            segment.synced = max(segment.synced, target)

    # -- sealing ----------------------------------------------------------------------

    def has_full(self) -> bool:
        with self._cond:
            return bool(self._full)

    def seal_due(self, max_age: float) -> list[Path]:
        """Seal the full segments, and the open one if it is ``max_age`` seconds old."""
        with self._cond:
            due, self._full = self._full, []
            current = self._current
            if current is not None and time.monotonic() - current.opened >= max_age:
                due.append(current)
                self._current = None
            for segment in due:  # nobody appends to them now; wait for their syncs
                while segment.syncing:
                    self._cond.wait()
                segment.syncing = True
        sealed = []
        for segment in due:
            error = None
            try:
                os.fsync(segment.fd)
            except OSError as exc:
                error = exc
            os.close(segment.fd)
            # a failed sync leaves the segment open-named, for the next start to cut
            if error is None:
                sealed.append(segment.path.with_suffix(""))
                segment.path.rename(sealed[-1])
            with self._cond:
                segment.failed = error
                segment.synced = segment.written if error is None else segment.synced
                segment.syncing = False
                self._cond.notify_all()
        if sealed:
            fsync_path(self.folder)
        return sealed

    def sealed(self) -> list[Path]:
        """The sealed segments, oldest first."""
        return sorted(self.folder.glob("api-*.jsonl"))


def recover_segment(path: Path) -> None:
    """Seal a segment a killed server left open, cut after its last complete line."""
    data = path.read_bytes()
    whole = data[:data.rfind(b"\n") + 1]
    if not whole:
        path.unlink()
        return
    if len(whole) != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(len(whole))
            os.fsync(handle.fileno())
    path.rename(path.with_suffix(""))
    fsync_path(path.parent)


def land_segment(settings: Settings, segment: Path, now: datetime,
                 con: duckdb.DuckDBPyConnection | None = None,
                 held: HeldKeys | None = None) -> BatchResult | None:
    """Land a sealed segment as one batch, as a file is (the API's grace period), then
    delete it: landed again after a crash, it is "already ingested". None: it is gone
    (the landing of a killed server finished it meanwhile). ``con`` and ``held``: the
    landing process's own DuckDB connection and key set (else a new connection, and the
    key index's runs are searched)."""
    with settings.lake.lock("ingest_segments"):  # one lander of a segment at a time
        if not segment.exists():
            return None
        with closing(connect()) if con is None else nullcontext(con) as using:
            (result,) = ingest_files(using, settings.lake, current_catalog(settings),
                                     [segment], now, grace_window(settings), held=held)
        segment.unlink()
    return result

