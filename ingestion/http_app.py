"""An HTTP ingestion endpoint in the shape of Orb's ``POST /v1/ingest`` (docs/ingestion.md).

Each request is one batch. Its events are written as JSON Lines, serialized the same way
every time, so a re-sent identical request has the same bytes, hence the same batch id,
and adds nothing ("already ingested"). The file goes through the ordinary
``ingest_files``, synchronously and under the lake's ingest lock, so concurrent requests
take turns with each other and with file ingestion. The answer is read back from the
batch's quarantine partition: rejected for a duplicate key is Orb's ``duplicate``, any
other reason is a validation failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import uvicorn
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from ingestion.batches import DUPLICATE_REASON, BatchResult, Window, ingest_files
from pricing_sql.run_catalog import current_catalog
from storage.duck import connect
from storage.lake import Lake
from storage.settings import Settings

TOKEN_VARIABLE = "ORB_INGEST_TOKEN"
MAX_EVENTS = 500  # Orb's limit per request
# Far above 500 ordinary events; without a cap a client could make the server buffer
# any amount before validation runs.
MAX_BODY_BYTES = 5 << 20
ORB_ERRORS = "https://docs.withorb.com/reference/error-responses"
log = logging.getLogger(__name__)


class IngestEvent(BaseModel):
    """One event as Orb takes it. Only the shape is checked here; the content (timestamp,
    customer, numbers) is checked by check_batch.sql, as for a file, so a bad event is
    quarantined and reported rather than failing the whole request."""

    model_config = ConfigDict(extra="forbid")

    event_name: str
    timestamp: str
    properties: dict[str, Any]
    idempotency_key: str
    customer_id: str | None = None
    external_customer_id: str | None = None

    @field_validator("properties")
    @classmethod
    def _finite(cls, value: dict[str, Any]) -> dict[str, Any]:
        # The JSON parser accepts NaN and Infinity, which JSON Lines cannot carry.
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            raise ValueError("numbers must be finite (no NaN or Infinity)") from None
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


Report = Callable[[list[BatchResult]], None]


def create_app(data_dir: str | Path, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
               report: Report | None = None) -> Starlette:
    """The app. ``ORB_INGEST_TOKEN``, when set, is the bearer token every request needs;
    ``report`` is told of each ingested batch (the CLI reports it to Dagster)."""
    settings = Settings.from_env(data_dir)
    token = os.environ.get(TOKEN_VARIABLE) or None
    report_lock = threading.Lock()  # one Dagster instance, shared by the worker threads

    async def ingest(request: Request) -> JSONResponse:
        if token and not _authorized(request, token):
            return _problem(401, "Authentication failure",
                            f"expected the header 'Authorization: Bearer <{TOKEN_VARIABLE}>'",
                            "#401-authentication-error", headers={"WWW-Authenticate": "Bearer"})
        try:
            async with asyncio.timeout(settings.ingest_body_timeout):
                body = await _read_body(request)
        except TimeoutError:
            # A body sent slowly, or never finished, would hold the connection (and
            # its buffer) for good: answered, and the connection closed.
            return _problem(408, "Request timeout", "the body did not arrive within "
                            f"{settings.ingest_body_timeout} s", headers={"Connection": "close"})
        if body is None:
            return _problem(413, "Request too large",
                            f"the body is over {MAX_BODY_BYTES} bytes")
        try:
            events = IngestRequest.model_validate_json(body).events
        except ValidationError as exc:
            return _problem(400, "Request validation error", "the body is not an ingest "
                            "request", "#400-request-validation-errors",
                            validation_errors=[_describe(e) for e in exc.errors()])
        result, reasons = await run_in_threadpool(_ingest, settings, events, clock())
        if report and result.status != "already ingested":
            await run_in_threadpool(_report, report, report_lock, result)
        return _answer(events, result, reasons,
                       request.query_params.get("debug", "").lower() in ("true", "1"))

    return Starlette(routes=[Route("/v1/ingest", ingest, methods=["POST"])],
                     exception_handlers={Exception: _failed})


def serve(data_dir: str | Path, host: str, port: int, report: Report | None = None) -> None:
    """Run the endpoint with uvicorn until interrupted."""
    if not os.environ.get(TOKEN_VARIABLE) and not _loopback(host):
        raise ValueError(f"without {TOKEN_VARIABLE} anyone who can reach {host} could add "
                         f"events: listen on 127.0.0.1 or ::1, or set {TOKEN_VARIABLE}")
    uvicorn.run(create_app(data_dir, report=report), host=host, port=port, http=IdleDeadline,
                timeout_keep_alive=Settings.from_env(data_dir).ingest_idle_timeout)


class IdleDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with its keep-alive timeout also bounding the wait for
    a request's headers.

    uvicorn times out only the wait after a response, and stops the timer at the first
    byte received: a connection that sends nothing, or its headers a byte at a time,
    stays open for good. Here a connection must have a whole request head within
    ``timeout_keep_alive`` seconds of opening or of its previous response; the body's
    time is the app's (``ingest_body_timeout``)."""

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_head()

    def _await_head(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        self._head_deadline = self.loop.call_later(self.timeout_keep_alive, self._head_overdue)

    def _head_overdue(self) -> None:
        # A request under way has had its whole head (uvicorn starts it only then).
        if self.cycle is None or self.cycle.response_complete:
            self.timeout_keep_alive_handler()


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _authorized(request: Request, token: str) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    # compare_digest: the time taken says nothing about how much of the token matched.
    return scheme.lower() == "bearer" and secrets.compare_digest(
        credentials.strip().encode(), token.encode())


async def _read_body(request: Request) -> bytes | None:
    """The body, or None past MAX_BODY_BYTES (counted while reading: a chunked request
    has no Content-Length)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _describe(error: ErrorDetails) -> str:
    """pydantic's error as 'events.3.timestamp: Field required' (never the input value)."""
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"


def _ingest(settings: Settings, events: list[IngestEvent],
            now: datetime) -> tuple[BatchResult, dict[int, str]]:
    """Ingest the events as one batch; its result, and the reason of each rejected line."""
    data = "".join(json.dumps(e.model_dump(exclude_none=True), sort_keys=True,
                              separators=(",", ":")) + "\n" for e in events).encode()
    # Named by its content: a request retried after a crash finds the same kept file.
    name = f"api-{hashlib.sha256(data).hexdigest()[:24]}.jsonl"
    with tempfile.TemporaryDirectory(prefix="orb-ingest-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        # The state store is asked per request whether anything changed, so a customer
        # just added is known at once (current_catalog reads it again only then).
        with closing(connect()) as con:
            (result,) = ingest_files(con, settings.lake, current_catalog(settings), [path],
                                     now, Window.of(settings))
    return result, _rejections(settings.lake, result.batch_id)


def _rejections(lake: Lake, batch_id: str) -> dict[int, str]:
    """Line -> reason for the batch's quarantined events. Reads only the batch's own
    partition (list_quarantine scans every batch's, which grows with each request)."""
    path = lake.partition_file("quarantine", "batch_id", batch_id)
    rows = pq.read_table(path, columns=["source_row", "reject_reason"], partitioning=None)
    return dict(zip(rows["source_row"].to_pylist(), rows["reject_reason"].to_pylist(),
                    strict=True))


def _report(report: Report, lock: threading.Lock, result: BatchResult) -> None:
    # The batch is committed whatever happens here: a failed report must not make the
    # client retry (the retry would be "already ingested" and report nothing either).
    try:
        with lock:
            report([result])
    except Exception:
        log.exception("could not report batch %s", result.batch_id)


def _answer(events: list[IngestEvent], result: BatchResult, reasons: dict[int, str],
            debug: bool) -> JSONResponse:
    """Orb's response. Line n of the batch is the request's event n. In a batch already
    ingested, every event that passed is now a duplicate of itself."""
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
    body = {"validation_failed": failed,
            "debug": {"duplicate": duplicate, "ingested": ingested} if debug else None}
    headers = {"X-Orb-Batch-Id": result.batch_id}
    if not failed:
        return JSONResponse(body, headers=headers)
    # Orb answers 200 only when nothing failed validation. The events that passed are
    # ingested all the same, and re-sending the request is harmless.
    return _problem(400, "Request validation error",
                    f"{len(failed)} of {len(events)} events failed validation and were "
                    "quarantined; the others were ingested (or already had been)",
                    "#400-request-validation-errors", headers=headers, **body)


async def _failed(_request: Request, _exc: Exception) -> JSONResponse:
    # The cause (say, a broken catalog) goes to the server log, not to the client.
    return _problem(500, "Internal server error",
                    "ingestion failed; the server log has the cause")


def _problem(status: int, title: str, detail: str, orb_type: str | None = None,
             headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """An error in Orb's format (RFC 7807), typed with Orb's URIs where Orb has one."""
    kind = f"{ORB_ERRORS}{orb_type}" if orb_type else "about:blank"
    return JSONResponse({"type": kind, "status": status, "title": title, "detail": detail,
                         **extra}, status_code=status, headers=headers)
