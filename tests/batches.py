"""Event batches written as JSON Lines files for ingestion tests."""

import json


def batch(path, *events):
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def ev(key, ts="2026-11-09T12:00:00Z", customer="c1", **properties):
    return {"event_name": "completion", "timestamp": ts, "customer_id": customer,
            "idempotency_key": key, "properties": properties or {"tokens": 1}}


def calls(prefix, count, day, customer="acme"):
    """``count`` 'call' events of ``customer`` at noon UTC on October ``day``, 2026."""
    return [{"event_name": "call", "timestamp": f"2026-10-{day:02d}T12:00:00Z",
             "customer_id": customer, "idempotency_key": f"{prefix}-{i}", "properties": {}}
            for i in range(count)]
