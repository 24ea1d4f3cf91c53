"""A two-customer October 2026, small enough to bill by hand (see test_pipeline.py)."""

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.catalogs import tiered, unit, write_data_dir

CATALOG = {
    "metrics": [
        {"id": "calls", "name": "API calls",
         "sql": "SELECT count(*) FROM events WHERE event_name = 'api_request'"},
        {"id": "tokens", "name": "Tokens",
         "sql": "SELECT sum(properties.tokens) FROM events WHERE event_name = 'completion'"},
    ],
    "plans": [
        {"id": "pro", "name": "Pro", "currency": "USD", "prices": [
            unit("pro_platform", "20.00", fixed_quantity=1),
            tiered("pro_calls", "calls", [(0, 10, "0.50"), (10, None, "0.10")]),
            unit("pro_tokens", "0.001", metric="tokens"),
        ]},
        {"id": "jp", "name": "JP", "currency": "JPY", "prices": [
            unit("jp_platform", "1000", fixed_quantity=1),
            unit("jp_calls", "0.25", metric="calls"),
        ]},
    ],
    "customers": [
        {"id": "ny", "name": "New York Co", "external_customer_id": "acme",
         "timezone": "America/New_York"},
        {"id": "tokyo", "name": "Tokyo KK", "timezone": "Asia/Tokyo"},
    ],
    "subscriptions": [
        {"id": "sub_ny", "customer_id": "ny", "plan_id": "pro", "start_date": "2026-01-01"},
        # Starts mid-month in Tokyo: usage counts from 2026-10-15 00:00 JST.
        {"id": "sub_tokyo", "customer_id": "tokyo", "plan_id": "jp", "start_date": "2026-10-15"},
    ],
}

OCTOBER = date(2026, 10, 1)
COLUMNS = ["event_name", "timestamp", "customer_id", "external_customer_id", "idempotency_key",
           "properties"]


def event(key, name, ts, customer=None, external=None, properties="{}"):
    return dict(zip(COLUMNS, [name, ts, customer, external, key, properties], strict=True))


def ny_events():
    # New York's October is [2026-10-01T04:00Z, 2026-11-01T04:00Z) (EDT, UTC-4).
    calls = [event(f"ny-call-{i}", "api_request", f"2026-10-10T12:{i:02d}:00Z", "ny")
             for i in range(15)]
    return calls + [
        event("ny-sept", "api_request", "2026-10-01T03:59:59Z", "ny"),  # Sept 30, 23:59:59 EDT
        event("ny-late", "api_request", "2026-11-01T03:30:00Z", "ny"),  # Oct 31, 23:30 EDT
        event("ny-tok-1", "completion", "2026-10-05T00:00:00Z", "ny",
              properties='{"tokens": 1200}'),
        event("ny-tok-2", "completion", "2026-10-06T00:00:00Z", external="acme",
              properties='{"tokens": 25}'),
    ]


def tokyo_events():
    # Tokyo's October is [2026-09-30T15:00Z, 2026-10-31T15:00Z) (JST, UTC+9), and the
    # subscription starts at 2026-10-15 00:00 JST = 2026-10-14T15:00Z.
    inside = [event(f"tk-{i}", "api_request", "2026-10-20T00:00:00Z", "tokyo") for i in range(8)]
    return inside + [
        event("tk-before-start", "api_request", "2026-10-14T14:59:59Z", "tokyo"),
        event("tk-last-1", "api_request", "2026-10-31T14:59:59Z", "tokyo"),
        event("tk-last-2", "api_request", "2026-10-31T14:59:59Z", "tokyo"),
        event("tk-november", "api_request", "2026-10-31T15:00:00Z", "tokyo"),
    ]


def bad_events():
    return [
        event("ny-call-3", "api_request", "2026-10-12T00:00:00Z", "ny"),  # re-sent key
        event("ghost-1", "api_request", "2026-10-12T00:00:00Z", "nobody"),
        event("bad-ts", "api_request", "last tuesday", "ny"),
    ]


def scenario_bytes() -> dict[str, bytes]:
    """The two landing batches, as bytes."""
    schema = pa.schema([(name, pa.string()) for name in COLUMNS])
    batches = {"batch-1.parquet": ny_events() + tokyo_events(), "batch-2.parquet": bad_events()}
    files = {}
    for name, rows in batches.items():
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink)
        files[name] = sink.getvalue().to_pybytes()
    return files


def write_scenario(data_dir: Path, catalog: bool = True) -> None:
    if catalog:
        write_data_dir(data_dir, CATALOG)
    landing = data_dir / "landing"
    landing.mkdir(exist_ok=True)
    for name, data in scenario_bytes().items():
        (landing / name).write_bytes(data)
