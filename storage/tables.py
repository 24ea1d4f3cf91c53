"""Every lake table's Arrow schema, declared once for its writers, views, exports and checks."""

from __future__ import annotations

import pyarrow as pa

AMENDMENTS = pa.schema([
    ("amendment_id", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
    ("customer_id", pa.string()),
    ("timeframe_start", pa.timestamp("us", tz="UTC")),
    ("timeframe_end", pa.timestamp("us", tz="UTC")),
    ("idempotency_key", pa.string()),
    ("reason", pa.string()),
])
BATCHES = pa.schema([("batch_id", pa.string()), ("committed_at", pa.timestamp("us", tz="UTC"))])
