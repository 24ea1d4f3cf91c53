"""Reading the quarantine: rejected events, kept with their reason, file and row until a
replay (``orb quarantine replay``, ``batches.replay_batch``) lets them in."""

from __future__ import annotations

from typing import Any

import duckdb

from ingestion.sql import load_sql
from storage.lake import Lake


def list_quarantine(con: duckdb.DuckDBPyConnection, lake: Lake, batch_id: str | None,
                    reason: str | None, limit: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Quarantined events (at most ``limit``) and the count of each reason."""
    files = lake.all_files("quarantine")
    if not files:
        return [], {}
    con.execute(load_sql("list_quarantine"),
                {"files": files, "batch_id": batch_id, "reason": reason})
    rows = con.sql("SELECT * FROM picked ORDER BY batch_id, source_file, source_row "
                   "LIMIT $limit", params={"limit": limit}).to_arrow_table().to_pylist()
    counts = dict(con.sql("SELECT reject_reason, count(*) FROM picked GROUP BY 1 "
                          "ORDER BY 2 DESC, 1").fetchall())
    return rows, counts
