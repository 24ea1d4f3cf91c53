"""The landing process of ``orb serve``'s micro-batcher (``api/ingest_batcher.py``): its
initializer, warm-up and landing function live here, beside the ingestion stage, because
a spawned process imports the module of each function it is given. Given the batcher's
own, it imported the whole API, Dagster and the report renderers, 12 s of a core while
the first requests waited (docs/capacity.md#http-ingestion); here it imports what
landing needs."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from pathlib import Path

import duckdb

from ingestion.batches import BatchResult
from ingestion.ingest_buffer import land_segment
from ingestion.key_index import HeldKeys
from storage.duck import connect
from storage.settings import Settings

_connection: duckdb.DuckDBPyConnection | None = None
_held: dict[Path, HeldKeys] = {}  # a key set per lake (tenant) landed into


def warm_up() -> None:
    """Submitted first, so that the imports above are done before the first segment."""


def land(settings: Settings, segment: Path, now: datetime) -> BatchResult | None:
    """``land_segment`` on the process's one DuckDB connection (a new one per segment
    cost 8 % of landing: ingest_files replaces what it registers, batch after batch), with
    the lake's key set kept from segment to segment (ingestion/key_index.py)."""
    global _connection
    if _connection is None:
        _connection = connect()
    held = _held.setdefault(settings.lake.root, HeldKeys())
    return land_segment(settings, segment, now, _connection, held)


# Below the server in the scheduler's eyes: landing is what may wait (it catches up
# between bursts), answering is not. At the server's own priority its Parquet writes took
# both cores for a moment each second, and requests waited (docs/capacity.md).
NICENESS = 5


def start_lander(server: int) -> None:
    """Lower the process's priority, and exit when the server is gone (killed -9, it
    cannot say so), even mid-landing, which the next server's start finishes."""
    os.nice(NICENESS)

    def watch() -> None:
        while os.getppid() == server:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="server-watch", daemon=True).start()
