"""Dunning notice records: ``dunning_notices/record_id=<id>/data.parquet``, append-only.

Each notice leaves an *intent*, written before the mail is sent, with the Message-ID the
mail carries, and a *sent* record once the SMTP server has accepted it. Each is written
once and never replaced. An intent without its sent record is a notice whose fate a
crash hid: the next run sends it again with the same Message-ID (docs/payments.md#dunning).
The payment run reads the past-due intents' ``retry_at``: the retries the notices
announce (``payments/run.py``).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa

from storage.lake import Lake
from storage.tables import DUNNING_NOTICES as SCHEMA
from storage.tables import TABLES

TABLE = "dunning_notices"
KEY = TABLES[TABLE].key


def record_id(number: str, step: str, phase: str) -> str:
    return f"{number}~{step}~{phase}"


def read_all(lake: Lake) -> pa.Table:
    """Every notice record, in the order they were written."""
    return lake.read_all(TABLE, SCHEMA).sort_by(
        [("recorded_at", "ascending"), ("record_id", "ascending")])


def by_invoice(lake: Lake) -> dict[str, dict[tuple[str, str], dict]]:
    """``{number: {(step, phase): record}}``."""
    found: defaultdict[str, dict[tuple[str, str], dict]] = defaultdict(dict)
    for record in read_all(lake).to_pylist():
        found[record["number"]][(record["step"], record["phase"])] = record
    return dict(found)


def requested_retries(lake: Lake) -> dict[str, list[datetime]]:
    """The payment retries past-due notices announced, per invoice, in time order."""
    found: defaultdict[str, list[datetime]] = defaultdict(list)
    for record in read_all(lake).to_pylist():
        if record["phase"] == "intent" and record["retry_at"] is not None:
            found[record["number"]].append(record["retry_at"])
    return {number: sorted(times) for number, times in found.items()}


def write(lake: Lake, *, number: str, customer_id: str, step: str, days_from_due: int,
          kind: str, phase: str, message_id: str, at: datetime, recipient: str, subject: str,
          currency: str, remaining: Decimal, due_date: date,
          retry_at: datetime | None) -> dict:
    """Append one record; one that exists already is never replaced."""
    rid = record_id(number, step, phase)
    if lake.partition_file(TABLE, KEY, rid).exists():
        raise RuntimeError(f"dunning notice record {rid} already exists")
    record = {"record_id": rid, "number": number, "customer_id": customer_id, "step": step,
              "days_from_due": days_from_due, "kind": kind, "phase": phase,
              "message_id": message_id, "recorded_at": at, "recipient": recipient,
              "subject": subject, "currency": currency, "remaining": remaining,
              "due_date": due_date, "retry_at": retry_at}
    lake.write_partition(TABLE, KEY, rid, pa.Table.from_pylist([record], schema=SCHEMA))
    return record


def listing(lake: Lake) -> list[dict]:
    """One row per notice (invoice and step), in invoice and step order: its intent's
    fields, ``state`` ``sent`` or ``unconfirmed`` (an intent a crash left without sent
    record, sent again by the next run) and ``sent_at``."""
    rows = []
    for _, records in sorted(by_invoice(lake).items()):
        for (step, phase), intent in sorted(records.items(),
                                            key=lambda item: item[1]["days_from_due"]):
            if phase != "intent":
                continue
            sent = records.get((step, "sent"))
            rows.append({**intent, "state": "sent" if sent else "unconfirmed",
                         "sent_at": sent["recorded_at"] if sent else None})
    return rows
