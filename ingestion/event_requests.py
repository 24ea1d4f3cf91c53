"""An ingestion request in the shape of Orb's ``POST /v1/ingest``, ingested as one batch
through the ordinary ``ingest_files`` (docs/ingestion.md#http-ingestion); the API
(``api/resources/events.py``) serves it.

The request's events are written as JSON Lines, serialized the same way every time, so
a re-sent identical request has the same bytes, hence the same batch id, and adds nothing
("already ingested"). The answer is read back from the batch's quarantine partition:
rejected for a duplicate key is Orb's ``duplicate``, any other reason is a validation
failure.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ingestion.backfills import Backfill, enroll
from ingestion.batches import DUPLICATE_REASON, BatchResult, Window, batch_id_of, ingest_files
from pricing_sql.run_catalog import current_catalog
from storage.duck import connect
from storage.lake import Lake
from storage.settings import Settings

MAX_EVENTS = 500  # Orb's limit per request
# Orb's grace period, past which an event goes through a backfill
GRACE_PERIOD = timedelta(days=31)
TOO_OLD = (f"timestamp is older than the {GRACE_PERIOD.days}-day grace period: ingest it "
           "through a backfill (POST /v1/events/backfills)")


class IngestEvent(BaseModel):
    """One event as Orb takes it. Only the shape is checked here; the content (timestamp,
    customer, numbers) is checked by check_batch.sql, as for a file, so a bad event is
    quarantined and reported rather than failing the whole request."""

    model_config = ConfigDict(extra="forbid")

    # in the order of their names: ``serialized`` writes them in this order
    customer_id: str | None = None
    event_name: str
    external_customer_id: str | None = None
    idempotency_key: str
    properties: dict[str, Any]
    timestamp: str

    @field_validator("properties")
    @classmethod
    def _canonical(cls, value: dict[str, Any]) -> dict[str, Any]:
        # The JSON parser accepts NaN and Infinity, which JSON Lines cannot carry.
        return _sorted_finite(value)


def _sorted_finite(value: Any) -> Any:
    """``value`` with every object's keys sorted (as ``serialized`` writes them); a
    ValueError for a number that is not finite."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite (no NaN or Infinity)")
    if isinstance(value, dict):
        return {key: _sorted_finite(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_finite(item) for item in value]
    return value


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[IngestEvent] = Field(min_length=1)

    @field_validator("events", mode="before")
    @classmethod
    def _at_most(cls, value: Any) -> Any:
        # Before the events are validated: one clear message rather than 501 checks.
        if isinstance(value, list) and len(value) > MAX_EVENTS:
            raise ValueError(f"at most {MAX_EVENTS} events per request, got {len(value)}: "
                             "split the request, or land a file instead")
        return value


# The same request decoded by msgspec, for the buffered fast path of ``orb serve``: the
# fields of IngestEvent, written back in ``serialized``'s form (keys sorted at every level,
# no spaces, no nulls) in a tenth of pydantic's time (docs/capacity.md#http-ingestion).
_FastEvent = msgspec.defstruct(
    "FastEvent", [(name, field.annotation) if field.is_required()
                  else (name, field.annotation, field.default)
                  for name, field in IngestEvent.model_fields.items()],
    kw_only=True, forbid_unknown_fields=True, omit_defaults=True)
_FastRequest = msgspec.defstruct("FastRequest", [(
    "events", Annotated[list[_FastEvent],  # type: ignore[valid-type]
                        msgspec.Meta(min_length=1, max_length=MAX_EVENTS)])],
    forbid_unknown_fields=True)
_FAST_DECODER = msgspec.json.Decoder(_FastRequest)
_LINES = msgspec.json.Encoder(order="sorted")


def fast_lines(body: bytes) -> tuple[bytes, int] | None:
    """A request body's events as ``serialized`` writes them (a float may be spelled
    otherwise: 1e16 for 1e+16), and how many; None when msgspec refuses the body, and
    ``IngestRequest`` then words the error. Like the model, msgspec refuses NaN and
    numbers beyond a float's range, which JSON Lines cannot carry."""
    try:
        events = _FAST_DECODER.decode(body).events  # type: ignore[attr-defined]
    except msgspec.MsgspecError:
        return None
    return _LINES.encode_lines(events), len(events)


@dataclass(frozen=True)
class Ingested:
    """A request's batch and Orb's answer: ``validation_failed`` and ``debug``."""

    result: BatchResult
    validation_failed: list[dict[str, Any]]
    ingested: list[str]
    duplicate: list[str]

    def body(self, debug: bool) -> dict[str, Any]:
        return {"validation_failed": self.validation_failed,
                "debug": {"duplicate": self.duplicate, "ingested": self.ingested}
                if debug else None}


def grace_window(settings: Settings) -> Window:
    """What ordinary ingestion through the API accepts: Orb's grace period (or the
    deployment's shorter ORB_MAX_EVENT_AGE_DAYS)."""
    return Window(max_age=min(GRACE_PERIOD, timedelta(days=settings.max_event_age_days)),
                  too_old=TOO_OLD)


def serialized(events: list[IngestEvent], backfill_id: str | None = None) -> bytes:
    """The events as JSON Lines, the same bytes every time: keys sorted at every level
    (fields declared in that order, properties sorted when validated), no spaces, in
    pydantic's serializer (a third of json.dumps's time: docs/capacity.md)."""
    if backfill_id is None:
        return b"".join(e.model_dump_json(exclude_none=True).encode() + b"\n" for e in events)
    # The file names its backfill (check_batch.sql reads only the event fields), so
    # the same events sent ordinarily, or to another backfill, are another batch.
    return b"".join(json.dumps({**e.model_dump(exclude_none=True), "backfill_id": backfill_id},
                               sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode() + b"\n" for e in events)


def ingest_request(settings: Settings, events: list[IngestEvent], now: datetime,
                   backfill: Backfill | None = None) -> Ingested:
    """Ingest the events as one batch, ordinarily (within the grace period) or into a
    pending ``backfill`` (held by ``backfills.ingesting``: within its timeframe and
    scope, and as old as the deployment keeps events)."""
    data = serialized(events, backfill.backfill_id if backfill else None)
    # Named by its content: a request retried after a crash finds the same kept file.
    name = f"api-{hashlib.sha256(data).hexdigest()[:24]}.jsonl"
    with tempfile.TemporaryDirectory(prefix="orb-ingest-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        if backfill is not None:
            enroll(settings.lake, backfill, batch_id_of(path))
        # The state store is asked per request whether anything changed, so a customer
        # just added is known at once (current_catalog reads it again only then).
        with closing(connect()) as con:
            (result,) = ingest_files(
                con, settings.lake, current_catalog(settings), [path], now,
                Window.of(settings) if backfill else grace_window(settings),
                scope=backfill.scope if backfill else None)
    return _answer(events, result, _rejections(settings.lake, result.batch_id))


def _rejections(lake: Lake, batch_id: str) -> dict[int, str]:
    """Line -> reason for the batch's quarantined events. Reads only the batch's own
    partition (list_quarantine scans every batch's, which grows with each request)."""
    path = lake.partition_file("quarantine", "batch_id", batch_id)
    rows = pq.read_table(path, columns=["source_row", "reject_reason"], partitioning=None)
    return dict(zip(rows["source_row"].to_pylist(), rows["reject_reason"].to_pylist(),
                    strict=True))


def _answer(events: list[IngestEvent], result: BatchResult,
            reasons: dict[int, str]) -> Ingested:
    """Line n of the batch is the request's event n. In a batch already ingested, every
    event that passed is now a duplicate of itself."""
    failed, ingested, duplicate = [], [], []
    again = result.status == "already ingested"
    for line, event in enumerate(events, start=1):
        reason, key = reasons.get(line), event.idempotency_key
        if reason == DUPLICATE_REASON or (reason is None and again):
            duplicate.append(key)
        elif reason is None:
            ingested.append(key)
        else:
            failed.append({"idempotency_key": key, "validation_errors": [reason]})
    return Ingested(result, failed, ingested, duplicate)
