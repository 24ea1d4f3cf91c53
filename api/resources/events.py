"""Events: Orb's ``/ingest``, ``/events/search``, single-event amendments and
deprecations, and backfills (docs/api.md#events), through the ingestion stage's own
functions: a request is one batch through ``ingest_files``
(``ingestion/event_requests.py``), an amendment or deprecation an amendment record
(``ingestion/amendments.py``, what ``orb amend`` writes), a backfill a record of
``ingestion/backfills.py``. Every write is audited and reported to Dagster (the months
it touches go stale), as ``orb ingest`` and ``orb amend`` report theirs."""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import dagster as dg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from api.access import Authorized, Caller, IdempotentRoute, audit, config, path_id, reads
from api.bodies import RawBody, declared, parsed
from api.errors import bad_request, error_body, not_found
from api.pages import Cursor, Limit, page
from api.shapes import instant
from api.views import View
from api.writes import view
from assets.events import day_materializations, materializations
from ingestion import backfills
from ingestion.amendments import FoundEvent, record_amendment, search_events, timeframe_days
from ingestion.backfills import Backfill, BackfillError
from ingestion.event_requests import (
    GRACE_PERIOD,
    IngestEvent,
    IngestRequest,
    fast_lines,
    ingest_request,
    serialized,
)
from pipelines import runner
from webhooks.alerts import after_batches

router = APIRouter(tags=["events"], route_class=IdempotentRoute)
log = logging.getLogger(__name__)
BackfillStatus = Literal["pending", "reflected", "pending_revert", "reverted"]
BUFFERED = json.dumps({"validation_failed": [], "debug": None}).encode()  # Orb's shape


def _bounded(value: datetime) -> datetime:
    # far enough from datetime's limits that a timeframe's arithmetic cannot overflow
    if not 1900 < value.year < 9000:
        raise ValueError("must be between the years 1900 and 9000")
    return value.astimezone(UTC)


Instant = Annotated[AwareDatetime, AfterValidator(_bounded)]
# how far Orb's search looks back without a timeframe_start
SEARCH_LOOKBACK = timedelta(days=7)
ONE_INSTANT = timedelta(microseconds=1)  # a single event's timeframe [t, t + 1 µs)


@functools.cache
def _instance(_home: str | None) -> dg.DagsterInstance:
    """The Dagster instance of ``DAGSTER_HOME`` (an ephemeral one without), opened once."""
    return runner.instance()


_reporting = threading.Lock()  # one Dagster instance, shared by the worker threads


def report_to_dagster(reports: list[dg.AssetMaterialization]) -> None:
    # The write is done whatever happens here: a failed report must not make the client
    # retry (a retry would change nothing, and report nothing either).
    try:
        with _reporting:  # the instance is opened even for no report (MicroBatcher.start)
            instance = _instance(os.environ.get("DAGSTER_HOME"))
            for report in reports:
                instance.report_runless_asset_event(report)
    except Exception:
        log.exception("could not report %d changes to Dagster", len(reports))


def _days_changed(days: list[date], **metadata: str) -> None:
    report_to_dagster(day_materializations(days, metadata))


# -- ingest ----------------------------------------------------------------------------

@router.post("/ingest", openapi_extra=declared(IngestRequest))
def ingest(data: RawBody, request: Request, caller: Authorized, debug: bool = False,
           backfill_id: str | None = None) -> Response:
    """Orb's ingestion (the body is an ``IngestRequest``). Under ``orb serve``, buffered
    and landed by the micro-batcher (``api/ingest_batcher.py``); with ``debug`` or a
    backfill (their answers need the batch's outcome), or without a batcher, one batch
    per request: 200 when no event failed validation; 400 with ``validation_failed`` when
    some did (the others are ingested all the same)."""
    settings, now = caller.deployment, config(request).clock()
    batcher = config(request).batcher
    if batcher is not None and backfill_id is None and not debug:
        # the fast path: acknowledged once durable in the ingest buffer, landed within
        # about ORB_INGEST_FLUSH_SECONDS; content is checked at landing (docs/api.md)
        lines = fast_lines(data)
        if lines is None:  # msgspec refused it: pydantic words the error (or takes it)
            events = parsed(IngestRequest, data).events
            lines = serialized(events), len(events)
        batcher.append(caller.tenant_id, settings, *lines)
        return Response(BUFFERED, media_type="application/json")
    body = parsed(IngestRequest, data)
    if backfill_id is None:
        done = ingest_request(settings, body.events, now)
    else:
        try:
            with backfills.ingesting(settings.lake, backfill_id, now) as backfill:
                done = ingest_request(settings, body.events, now, backfill)
        except LookupError:
            raise not_found("backfill", backfill_id) from None
        except BackfillError as exc:
            raise bad_request([f"query.{exc}"]) from exc
    result = done.result
    if result.status == "ingested":
        report_to_dagster(materializations([result]))
        audit(request, caller, "event_batch", result.batch_id, None, {
            "batch_id": result.batch_id, "backfill_id": backfill_id,
            "ingested": done.ingested, "duplicate": done.duplicate,
            "validation_failed": done.validation_failed})
    answer = done.body(debug)
    headers = {"X-Orb-Batch-Id": result.batch_id}
    # the batch's alerts, evaluated after the answer is sent (docs/webhooks.md#alerts); a
    # backfill's events count only once it closes
    after = (BackgroundTask(after_batches, settings, [result.batch_id], now)
             if result.status == "ingested" and backfill_id is None else None)
    if not done.validation_failed:
        return JSONResponse(answer, headers=headers, background=after)
    # Orb answers 200 only when nothing failed validation. The events that passed are
    # ingested all the same, and re-sending the request is harmless.
    failed = len(done.validation_failed)
    return JSONResponse({**error_body(400, f"{failed} of {len(body.events)} events failed "
                                      "validation and were quarantined; the others were "
                                      "ingested (or already had been)"), **answer},
                        status_code=400, headers=headers, background=after)


# -- search, amend, deprecate ----------------------------------------------------------

class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_ids: list[str] = Field(min_length=1, max_length=500)
    timeframe_start: Instant | None = None
    timeframe_end: Instant | None = None


def _shaped_event(current: View, event: FoundEvent) -> dict[str, Any]:
    customer = current.customer(event.customer_id)
    return {"id": event.id, "customer_id": event.customer_id,
            "external_customer_id": customer.external_customer_id if customer else None,
            "event_name": event.event_name, "timestamp": instant(event.timestamp),
            "properties": json.loads(event.properties), "deprecated": event.deprecated}


@router.post("/events/search")
@reads
def search(body: SearchRequest, request: Request, caller: Authorized) -> dict[str, Any]:
    """The events with these ids (idempotency keys) in the timeframe, deprecated ones
    included, oldest first."""
    now = config(request).clock()
    end = body.timeframe_end or now
    start = body.timeframe_start or end - SEARCH_LOOKBACK
    if not start < end:
        raise bad_request(["body.timeframe_end: must be after timeframe_start"])
    current = view(request, caller)
    found = search_events(caller.deployment.lake, body.event_ids, start, end)
    return {"data": [_shaped_event(current, e) for e in found]}


def _active(request: Request, caller: Caller, event_id: str) -> list[FoundEvent]:
    """The events counting now with this id, within the grace period (Orb amends and
    deprecates only those: older ones go through a backfill)."""
    now = config(request).clock()
    found = search_events(caller.deployment.lake, [event_id], now - GRACE_PERIOD,
                          now + timedelta(hours=1))
    return [e for e in found if not e.deprecated]


@path_id("event_id")
def _tenants_event(request: Request, caller: Caller, event_id: str) -> list[FoundEvent]:
    found = _active(request, caller, event_id)
    if not found:
        raise not_found("event", event_id)
    return found


class Amendment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_name: str
    properties: dict[str, Any]
    timestamp: Instant
    customer_id: str | None = None
    external_customer_id: str | None = None


def _customer_of(request: Request, caller: Caller, customer_id: str | None,
                 external_customer_id: str | None) -> str | None:
    """The customer a body names by either id (both: the same one); None: neither."""
    current = view(request, caller)
    by_id = current.customer(customer_id) if customer_id else None
    by_external = (current.customer_by_external_id(external_customer_id)
                   if external_customer_id else None)
    if customer_id and by_id is None:
        raise bad_request([f"body.customer_id: unknown customer {customer_id!r}"])
    if external_customer_id and by_external is None:
        raise bad_request([f"body.external_customer_id: unknown customer "
                           f"{external_customer_id!r}"])
    if by_id and by_external and by_id.id != by_external.id:
        raise bad_request(["body.external_customer_id: names another customer than "
                           "customer_id"])
    chosen = by_id or by_external
    return chosen.id if chosen else None


@router.put("/events/{event_id}")
def amend_event(event_id: str, body: Amendment, request: Request, caller: Authorized,
                ) -> dict[str, Any]:
    """Replace an event with the body's: the old one is deprecated by an amendment
    record, the new one ingested with the same id, as ``orb amend --event KEY
    --replace-with`` does."""
    found = _active(request, caller, event_id)
    if not found:
        raise not_found("event", event_id)
    customer_id = _customer_of(request, caller, body.customer_id, body.external_customer_id)
    if customer_id is None:
        raise bad_request(["body.customer_id: give customer_id or external_customer_id"])
    current = next((e for e in found if e.customer_id == customer_id), None)
    if current is None:
        raise bad_request([f"body.customer_id: event {event_id!r} is not {customer_id}'s; "
                           "an amendment cannot move an event to another customer"])
    if current.timestamp != body.timestamp:
        raise bad_request([f"body.timestamp: must be the event's, "
                           f"{instant(current.timestamp)}"])
    now, lake = config(request).clock(), caller.deployment.lake
    before = _shaped_event(view(request, caller), current)
    amendment = record_amendment(lake, customer_id, current.timestamp,
                                 current.timestamp + ONE_INSTANT,
                                 f"amended through the API by {caller.actor}", now, event_id)
    done = ingest_request(caller.deployment, [IngestEvent(
        event_name=body.event_name, timestamp=instant(body.timestamp) or "",
        properties=body.properties, idempotency_key=event_id, customer_id=customer_id)], now)
    _days_changed(timeframe_days(current.timestamp, current.timestamp + ONE_INSTANT),
                  amendment=amendment.amendment_id, reason="amended through the API")
    audit(request, caller, "event", event_id, before,
          {**before, "event_name": body.event_name, "properties": body.properties,
           "amendment_id": amendment.amendment_id, "batch_id": done.result.batch_id})
    if done.validation_failed:
        (failed,) = done.validation_failed
        raise bad_request([f"body: {reason} (the event stays deprecated: amend it again)"
                           for reason in failed["validation_errors"]])
    return {"amended": event_id}


@router.put("/events/{event_id}/deprecate")
def deprecate_event(event_id: str, request: Request, caller: Authorized) -> dict[str, Any]:
    """Stop counting an event: an amendment record for its customer, instant and id."""
    found = _active(request, caller, event_id)
    if not found:
        raise not_found("event", event_id)
    if len({e.customer_id for e in found}) > 1:
        raise bad_request([f"path.event_id: {event_id!r} is the id of events of several "
                           "customers; amend them with `orb amend --customer`"])
    (event,) = found
    now = config(request).clock()
    before = _shaped_event(view(request, caller), event)
    amendment = record_amendment(caller.deployment.lake, event.customer_id, event.timestamp,
                                 event.timestamp + ONE_INSTANT,
                                 f"deprecated through the API by {caller.actor}", now,
                                 event_id)
    _days_changed(timeframe_days(event.timestamp, event.timestamp + ONE_INSTANT),
                  amendment=amendment.amendment_id, reason="deprecated through the API")
    audit(request, caller, "event", event_id, before,
          {**before, "deprecated": True, "amendment_id": amendment.amendment_id})
    return {"deprecated": event_id}


# -- backfills -------------------------------------------------------------------------

class NewBackfill(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeframe_start: Instant
    timeframe_end: Instant
    close_time: Instant | None = None
    customer_id: str | None = None
    external_customer_id: str | None = None
    replace_existing_events: bool = False
    # the events of the timeframe it replaces, in a price filter's syntax (docs/api.md)
    deprecation_filter: str | None = None


def _shaped_backfill(backfill: Backfill, now: datetime, counts: dict[str, int],
                     ) -> dict[str, Any]:
    return {"id": backfill.backfill_id, "status": backfill.status(now),
            "created_at": instant(backfill.created_at),
            "customer_id": backfill.customer_id,
            "timeframe_start": instant(backfill.timeframe_start),
            "timeframe_end": instant(backfill.timeframe_end),
            "replace_existing_events": backfill.replace_existing_events,
            "close_time": instant(backfill.close_time),
            "reverted_at": instant(backfill.reverted_at),
            "events_ingested": counts.get(backfill.backfill_id, 0),
            "deprecation_filter": backfill.deprecation_filter}


def _shown(request: Request, caller: Caller, backfill: Backfill) -> dict[str, Any]:
    return _shaped_backfill(backfill, config(request).clock(),
                            backfills.events_ingested(caller.deployment.lake))


@router.post("/events/backfills")
def create_backfill(body: NewBackfill, request: Request, caller: Authorized,
                    ) -> dict[str, Any]:
    customer_id = _customer_of(request, caller, body.customer_id, body.external_customer_id)
    settings = caller.deployment
    try:
        backfill = backfills.create_backfill(
            settings.lake, customer_id, body.timeframe_start, body.timeframe_end,
            body.replace_existing_events, body.close_time, config(request).clock(),
            timedelta(days=settings.max_event_age_days), body.deprecation_filter)
    except BackfillError as exc:
        raise bad_request([f"body.{exc}"]) from exc
    shown = _shown(request, caller, backfill)
    audit(request, caller, "backfill", backfill.backfill_id, None, shown)
    return shown


@router.get("/events/backfills")
def list_backfills(request: Request, caller: Authorized, cursor: Cursor = None,
                   limit: Limit = 20, customer_id: str | None = None,
                   status: BackfillStatus | None = None) -> dict[str, Any]:
    """Newest first."""
    now = config(request).clock()
    counts = backfills.events_ingested(caller.deployment.lake)
    chosen = [b for b in backfills.list_backfills(caller.deployment.lake)
              if (customer_id is None or b.customer_id == customer_id)
              and (status is None or b.status(now) == status)]
    return page(chosen, cursor, limit, lambda b: b.backfill_id,
                lambda b: _shaped_backfill(b, now, counts))


def _found(caller: Caller, backfill_id: str) -> Backfill:
    backfill = backfills.read_backfill(caller.deployment.lake, backfill_id)
    if backfill is None:
        raise not_found("backfill", backfill_id)
    return backfill


@path_id("backfill_id")
def _tenants_backfill(request: Request, caller: Caller, backfill_id: str) -> Backfill:
    return _found(caller, backfill_id)


@router.get("/events/backfills/{backfill_id}")
def fetch_backfill(backfill_id: str, request: Request, caller: Authorized) -> dict[str, Any]:
    return _shown(request, caller, _found(caller, backfill_id))


def _change(request: Request, caller: Caller, backfill_id: str, verb: str) -> dict[str, Any]:
    """Close or revert: one record rewritten; audited, and its days reported stale."""
    before = _shown(request, caller, _found(caller, backfill_id))
    change = backfills.close_backfill if verb == "close" else backfills.revert_backfill
    try:
        backfill = change(caller.deployment.lake, backfill_id, config(request).clock())
    except BackfillError as exc:
        raise bad_request([f"path.{exc}"]) from exc
    after = _shown(request, caller, backfill)
    _days_changed(timeframe_days(backfill.timeframe_start, backfill.timeframe_end),
                  backfill=backfill_id, change=verb)
    audit(request, caller, "backfill", backfill_id, before, after)
    return after


@router.post("/events/backfills/{backfill_id}/close")
def close_backfill(backfill_id: str, request: Request, caller: Authorized) -> dict[str, Any]:
    return _change(request, caller, backfill_id, "close")


@router.post("/events/backfills/{backfill_id}/revert")
def revert_backfill(backfill_id: str, request: Request, caller: Authorized,
                    ) -> dict[str, Any]:
    return _change(request, caller, backfill_id, "revert")
