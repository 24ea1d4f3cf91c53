"""Lake files written while their writer goes on: a billing run's rating tables are
encoded and written by one thread, in the order they were handed over, while the run's
next step computes. Their Parquet encoding took 0.12 s of the rating steps' 1.4 s at
10,000 customers, and it runs beside pricing and invoicing, which leave the second core
idle (docs/lake.md, "Written behind").

Until a file is on disk its rows are read from memory (``rows``); whoever would look at
the file on disk waits for it first (``wait``), and every other write of the process
waits for all of them (``Lake.write_file``), so files reach the disk in the order they
were written, one at a time, as without this.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pyarrow as pa

# While a write runs beside Python code, the writer takes the interpreter's lock back
# after at most this long (the default is 5 ms): pyarrow's encoder takes it often, and
# at 5 ms the encoding and the code around it took as long together as one after the
# other (docs/capacity.md).
SWITCH_INTERVAL = 0.0005


class WriteBehind:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-writer")
        self._lock = threading.Lock()
        # the newest rows handed over for each file, and the write that puts them there
        self._pending: dict[Path, tuple[pa.Table, Future[object]]] = {}
        self._writes: list[Future[object]] = []  # in the order handed over, not yet waited on
        self._running = 0  # writes handed over and not finished
        self._switch_interval: float | None = None  # the interval to restore when idle
        self._writer_thread: threading.Thread | None = None

    def submit(self, path: Path, rows: pa.Table, write: Callable[[], object]) -> None:
        """Run ``write`` (which writes ``rows`` to ``path``) on the writer thread, after
        the writes handed over before it."""
        with self._lock:
            future = self._executor.submit(self._run, write)
            self._running += 1
            self._pending[path] = (rows, future)
            self._writes.append(future)
            future.add_done_callback(lambda done: self._written(path, done))

    def rows(self, path: Path) -> pa.Table | None:
        """The rows handed over for ``path`` while they are not on disk yet; if their
        write failed, its error (until it is waited for), not a missing file."""
        with self._lock:
            pending = self._pending.get(path)
        if pending is None:
            return None
        rows, future = pending
        error = future.exception() if future.done() else None
        if error is not None:
            raise error
        return rows

    def wait(self, wanted: Callable[[Path], bool] | None = None) -> None:
        """Wait for the pending writes of the files ``wanted`` picks (None: every one)
        and those handed over before them; raise the first one's error, if any failed.
        On the writer thread (a write waiting for others) it returns at once."""
        if threading.current_thread() is self._writer_thread:
            return
        with self._lock:
            if wanted is None:
                last = len(self._writes)
            else:
                mine = {future for path, (_, future) in self._pending.items() if wanted(path)}
                last = max((i + 1 for i, f in enumerate(self._writes) if f in mine), default=0)
            waited, self._writes = self._writes[:last], self._writes[last:]
        errors = [error for error in (future.exception() for future in waited) if error]
        if errors:
            with self._lock:  # told once: a failed write's file is missing from now on
                told = set(waited)
                self._pending = {path: pending for path, pending in self._pending.items()
                                 if pending[1] not in told}
            raise errors[0]

    def _run(self, write: Callable[[], object]) -> object:
        with self._lock:
            self._writer_thread = threading.current_thread()
            if self._switch_interval is None:
                self._switch_interval = sys.getswitchinterval()
                sys.setswitchinterval(SWITCH_INTERVAL)
        return write()

    def _written(self, path: Path, done: Future[object]) -> None:
        with self._lock:
            pending = self._pending.get(path)
            if pending is not None and pending[1] is done and done.exception() is None:
                del self._pending[path]  # a failed one stays, for ``rows`` to tell
            self._running -= 1
            if not self._running and self._switch_interval is not None:
                sys.setswitchinterval(self._switch_interval)
                self._switch_interval = None


@cache
def process_writer(pid: int) -> WriteBehind:
    """Process ``pid``'s writer: a child forked after its parent wrote behind has its own
    (a thread does not survive a fork)."""
    return WriteBehind()
