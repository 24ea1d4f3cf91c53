"""The outbox mirrored to the lake's ``webhook_events`` table, so that the DuckDB views
and the exports show the business events like any other table (docs/webhooks.md).

Each run appends the events after the newest sequence the lake has, as one file in a
partition named by its first sequence, under the lake's ``webhook_events`` lock. A run
that dies before its file is renamed into place leaves nothing; the next one writes the
same events.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from state import schema
from state.database import reading
from storage.lake import PARTITION_FILE, Lake
from storage.tables import TABLES, WEBHOOK_EVENTS

TABLE = "webhook_events"
KEY = TABLES[TABLE].key
COLUMNS = [field.name for field in WEBHOOK_EVENTS]


def mirrored_through(lake: Lake) -> int:
    """The newest sequence in the lake (0: none)."""
    folder = lake.table_dir(TABLE)
    firsts = sorted(int(path.name.split("=", 1)[1]) for path in folder.glob(f"{KEY}=*")
                    if (path / PARTITION_FILE).exists()) if folder.is_dir() else []
    if not firsts:
        return 0
    newest = pq.read_table(lake.partition_file(TABLE, KEY, firsts[-1]), columns=["sequence"])
    return int(pc.max(newest["sequence"]).as_py())


def mirror(lake: Lake, engine: sa.Engine) -> int:
    """Append the outbox's events the lake does not have yet; how many."""
    with lake.lock(TABLE):
        after = mirrored_through(lake)
        table = schema.outbox_events
        with reading(engine) as connection:
            found = connection.execute(
                sa.select(*(table.c[name] for name in COLUMNS))
                .where(table.c.sequence > after).order_by(table.c.sequence)).all()
        if not found:
            return 0
        rows = pa.Table.from_pylist([row._asdict() for row in found], schema=WEBHOOK_EVENTS)
        lake.write_partition(TABLE, KEY, found[0].sequence, rows)
        return len(found)
