"""Payment attempt records: ``payment_attempts/record_id=<id>/data.parquet``, append-only.

Each step of a payment run that talks to a processor leaves two records: its *intent*,
written before the call with the idempotency key the call will carry, and its
*outcome*, written after. Each is written once (atomically, by ``Lake.write_partition``)
and never replaced, so a crash between the call and its outcome leaves an intent
without outcome: the next run repeats the call with the same key (docs/payments.md).

``record_id`` is ``<subject>~<step>~<attempt>~<phase>``; the subject is an invoice
number (``INV-000001``) or ``customer:<customer id>``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import pyarrow as pa

from storage.lake import Lake
from storage.tables import PAYMENT_ATTEMPTS as SCHEMA
from storage.tables import TABLES

TABLE = "payment_attempts"
KEY = TABLES[TABLE].key


@dataclass
class Attempt:
    intent: dict | None = None
    outcome: dict | None = None


@dataclass
class Ledger:
    """The attempt records of one processor, read once per run and appended to."""

    lake: Lake
    processor: str
    records: list[dict] = field(default_factory=list)
    _index: dict = field(default_factory=lambda: defaultdict(dict))

    @classmethod
    def read(cls, lake: Lake, processor: str) -> Ledger:
        ledger = cls(lake, processor)
        for record in read_all(lake).to_pylist():
            if record["processor"] == processor:
                ledger._add(record)
        return ledger

    def _add(self, record: dict) -> None:
        self.records.append(record)
        attempts = self._index[(record["subject"], record["step"])]
        setattr(attempts.setdefault(record["attempt"], Attempt()), record["phase"], record)

    def attempts(self, subject: str, step: str) -> dict[int, Attempt]:
        """``{attempt: Attempt}`` of a subject's step, in attempt order."""
        return dict(sorted(self._index.get((subject, step), {}).items()))

    def write(self, subject: str, step: str, attempt: int, phase: str, at: datetime,
              key: str = "", status: str = "", reference: str = "",
              amount: Decimal | None = None, currency: str | None = None, detail: str = "",
              next_retry_at: datetime | None = None) -> dict:
        """Append one record; a record that exists already is never replaced."""
        record_id = f"{subject}~{step}~{attempt}~{phase}"
        if self.lake.partition_file(TABLE, KEY, record_id).exists():
            raise RuntimeError(f"payment record {record_id} already exists")
        record = {"record_id": record_id, "subject": subject, "processor": self.processor,
                  "step": step, "attempt": attempt, "phase": phase, "idempotency_key": key,
                  "recorded_at": at, "status": status, "reference": reference,
                  "amount": amount, "currency": currency, "detail": detail,
                  "next_retry_at": next_retry_at}
        self.lake.write_partition(TABLE, KEY, record_id,
                                  pa.Table.from_pylist([record], schema=SCHEMA))
        self._add(record)
        return record


def read_all(lake: Lake) -> pa.Table:
    """Every payment record in the lake (all processors), in record order."""
    return lake.read_all(TABLE, SCHEMA).sort_by(
        [("recorded_at", "ascending"), ("record_id", "ascending")])
