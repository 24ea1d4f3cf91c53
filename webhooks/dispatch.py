"""Posting the outbox's events to the webhook endpoints (docs/webhooks.md#delivery).

A pass reads, for every enabled endpoint, the events it receives (after its
``after_sequence``, of its types) that it has not settled (delivered, or failed for
good) and the last attempt of each, and splits them into lanes: one endpoint's events
of one customer, in sequence. A lane's events are posted
one after the other; the lane stops at the first that is not delivered, and a later pass
takes it up when that one's retry is due, so a customer's events reach an endpoint in
order. An event that has failed for good (3 days of retries) no longer holds its lane.

Lanes are taken by claims (``webhook_claims``, a lease) in a write transaction, a chunk
at a time, by a pool of threads: two dispatchers, in one process or two, never post one
lane at once. A chunk's attempts are recorded together, and its claims released, once
its lanes are done. Should the process die between a POST and its record, the lease
runs out and the event is posted again with the same ``webhook-id``: delivery is at
least once, the event id being the receiver's idempotency key.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from state import schema
from state.database import reading, writing
from webhooks import endpoints, retries, signing

Clock = Callable[[], datetime]
Lane = tuple[str, str]  # (endpoint id, customer id; "" for an event of no customer)
ACTOR = "webhooks-dispatcher"
# An event an endpoint has got, or has failed for good: never posted to it again but by a
# replay.
SETTLED = ("delivered", "failed")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DeliveryOptions:
    timeout: float = 10.0  # seconds for one POST: connecting, sending and the answer
    concurrency: int = 8  # threads, each posting its own lanes
    lanes_per_claim: int = 64
    lease: timedelta = timedelta(minutes=15)  # a dead dispatcher's lanes wait this long
    window: timedelta = retries.WINDOW


DEFAULTS = DeliveryOptions()


@dataclass(frozen=True)
class Replay:
    """Events created in [since, until) posted again, to one endpoint or all."""

    since: datetime
    until: datetime | None = None
    endpoint_id: str | None = None


@dataclass
class Summary:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    lanes: int = 0  # lanes posted to
    skipped_lanes: int = 0  # held by another dispatcher
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False,
                                  compare=False)

    def add(self, outcomes: Sequence[str], lanes: int, skipped: int) -> None:
        with self._lock:
            self.delivered += outcomes.count("delivered")
            self.retrying += outcomes.count("retrying")
            self.failed += outcomes.count("failed")
            self.lanes += lanes
            self.skipped_lanes += skipped


@dataclass(frozen=True)
class Last:
    """The newest attempt of one event to one endpoint."""

    attempt: int
    outcome: str
    next_attempt_at: datetime | None
    first_at: datetime  # when its first attempt started: the retry window's start


@dataclass(frozen=True)
class Routed:
    sequence: int
    event_id: str


def deliver(engine: sa.Engine, clock: Clock = utc_now,
            options: DeliveryOptions = DEFAULTS,
            client: httpx.Client | None = None, replay: Replay | None = None) -> Summary:
    """One pass: every lane with an event due, posted until it is done or blocked; with
    ``replay``, the range's events posted again (a failure is recorded ``failed`` and
    stops its lane; nothing is retried on a schedule)."""
    targets, due = _plan(engine, clock(), replay)
    summary = Summary()
    if not due:
        return summary
    by_id = {e.id: e for e in targets}
    size = options.lanes_per_claim
    chunks = [dict(due[i:i + size]) for i in range(0, len(due), size)]
    holder = f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    with _client(client, options) as http:
        run = _Pass(engine, clock, options, http, by_id, holder, replay is not None,
                    summary)
        with ThreadPoolExecutor(max(1, options.concurrency)) as pool:
            for future in [pool.submit(run.chunk, chunk) for chunk in chunks]:
                future.result()
    return summary


def due_lanes(engine: sa.Engine, clock: Clock = utc_now) -> int:
    """How many lanes have an event to post now (the sensor starts a pass when any do)."""
    return len(_plan(engine, clock(), None)[1])


def _plan(engine: sa.Engine, now: datetime, replay: Replay | None
          ) -> tuple[list[endpoints.Endpoint], list[tuple[Lane, list[Routed]]]]:
    """The endpoints posted to, and the lanes with an event due, oldest first."""
    with reading(engine) as connection:
        targets = [e for e in endpoints.read_all(connection)
                   if e.enabled or (replay is not None and replay.endpoint_id == e.id)]
        if replay is not None and replay.endpoint_id is not None:
            targets = [e for e in targets if e.id == replay.endpoint_id]
            if not targets:
                raise endpoints.UnknownEndpoint(replay.endpoint_id)
        lanes = _lanes(connection, targets, replay)
        waiting: defaultdict[str, list[str]] = defaultdict(list)
        for (endpoint_id, _), routed in lanes.items():
            waiting[endpoint_id] += [r.event_id for r in routed]
        lasts = {e.id: _last_attempts(connection, e.id, waiting[e.id]) for e in targets}
    due = [(lane, routed) for lane, routed in lanes.items()
           if _todo(routed, lasts[lane[0]], now, replay is not None)]
    due.sort(key=lambda item: item[1][0].sequence)  # the oldest waiting first
    return targets, due


@contextmanager
def _client(client: httpx.Client | None, options: DeliveryOptions) -> Iterator[httpx.Client]:
    if client is not None:
        yield client
        return
    limits = httpx.Limits(max_connections=options.concurrency,
                          max_keepalive_connections=options.concurrency)
    with httpx.Client(timeout=options.timeout, limits=limits) as made:
        yield made


def _lanes(connection: sa.Connection, targets: list[endpoints.Endpoint],
           replay: Replay | None) -> dict[Lane, list[Routed]]:
    """Each endpoint's events still to settle, by customer, in sequence: a pass reads
    only the events an endpoint has neither delivered nor given up on (the database
    leaves the rest out through ``webhook_attempts_by_event``), so the sensor's check
    costs what is waiting, not the outbox's whole history. A replay reads its range
    whole."""
    outbox, attempts = schema.outbox_events, schema.webhook_attempts
    lanes: defaultdict[Lane, list[Routed]] = defaultdict(list)
    for endpoint in targets:
        query = (sa.select(outbox.c.sequence, outbox.c.event_id, outbox.c.type,
                           outbox.c.customer_id)
                 .where(outbox.c.sequence > endpoint.after_sequence)
                 .order_by(outbox.c.sequence))
        if replay is None:
            settled = (sa.select(attempts.c.attempt_id)
                       .where(attempts.c.endpoint_id == endpoint.id,
                              attempts.c.event_id == outbox.c.event_id,
                              attempts.c.outcome.in_(SETTLED)))
            query = query.where(~sa.exists(settled))
        else:
            query = query.where(outbox.c.created_at >= replay.since)
            if replay.until is not None:
                query = query.where(outbox.c.created_at < replay.until)
        for row in connection.execute(query):
            if endpoint.receives(row.type):
                lanes[(endpoint.id, row.customer_id or "")].append(
                    Routed(row.sequence, row.event_id))
    return lanes


def _last_attempts(connection: sa.Connection, endpoint_id: str,
                   event_ids: Sequence[str]) -> dict[str, Last]:
    table = schema.webhook_attempts
    query = (sa.select(table.c.event_id, table.c.attempt, table.c.outcome,
                       table.c.next_attempt_at, table.c.started_at)
             .where(table.c.endpoint_id == endpoint_id).order_by(table.c.attempt))
    found: list[sa.Row[Any]] = []
    for start in range(0, len(event_ids), 500):
        found += connection.execute(
            query.where(table.c.event_id.in_(event_ids[start:start + 500])))
    last: dict[str, Last] = {}
    for row in found:
        first = last[row.event_id].first_at if row.event_id in last else row.started_at
        last[row.event_id] = Last(row.attempt, row.outcome, row.next_attempt_at, first)
    return last


def _todo(routed: list[Routed], last: dict[str, Last], now: datetime,
          replaying: bool) -> list[str]:
    """The lane's events to post now, in sequence: none past one whose retry is not due
    (it holds the rest of its customer's events back)."""
    if replaying:
        return [r.event_id for r in routed]
    todo: list[str] = []
    for r in routed:
        state = last.get(r.event_id)
        if state is None:
            todo.append(r.event_id)
        elif state.outcome == "retrying":
            if state.next_attempt_at is not None and state.next_attempt_at > now:
                break
            todo.append(r.event_id)
    return todo


def body(payload: str, payload_style: str) -> str:
    """What is posted: the outbox's payload with the endpoint's ``payload_style``."""
    return json.dumps(json.loads(payload) | {"payload_style": payload_style},
                      sort_keys=True, separators=(",", ":"))


@dataclass
class _Pass:
    engine: sa.Engine
    clock: Clock
    options: DeliveryOptions
    http: httpx.Client
    targets: dict[str, endpoints.Endpoint]
    holder: str
    replaying: bool
    summary: Summary

    def chunk(self, lanes: dict[Lane, list[Routed]]) -> None:
        claimed = _claim(self.engine, list(lanes), self.holder, self.clock(),
                         self.options.lease)
        if not claimed:
            self.summary.add([], 0, len(lanes))
            return
        rows: list[dict[str, object]] = []
        try:
            with reading(self.engine) as connection:
                by_endpoint: defaultdict[str, list[str]] = defaultdict(list)
                for lane in claimed:
                    by_endpoint[lane[0]] += [r.event_id for r in lanes[lane]]
                # read again under the claim: another dispatcher may have posted since
                lasts = {endpoint_id: _last_attempts(connection, endpoint_id, ids)
                         for endpoint_id, ids in by_endpoint.items()}
                todo = {lane: _todo(lanes[lane], lasts[lane[0]], self.clock(),
                                    self.replaying) for lane in claimed}
                payloads = _payloads(connection, sorted({e for ids in todo.values()
                                                         for e in ids}))
            for lane, event_ids in todo.items():
                rows += self._lane(self.targets[lane[0]], event_ids, lasts[lane[0]],
                                   payloads)
        finally:
            _record(self.engine, rows, claimed, self.holder)
        self.summary.add([str(r["outcome"]) for r in rows], len(claimed),
                         len(lanes) - len(claimed))

    def _lane(self, endpoint: endpoints.Endpoint, event_ids: list[str],
              last: dict[str, Last], payloads: dict[str, str]) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for event_id in event_ids:
            previous = last.get(event_id)
            attempt = 1 if previous is None else previous.attempt + 1
            started = self.clock()
            status, error = self._post(endpoint, event_id,
                                       body(payloads[event_id], endpoint.payload_style))
            ended = self.clock()
            next_at = None
            if status is not None and 200 <= status < 300:
                outcome = "delivered"
            elif self.replaying:
                outcome = "failed"
            else:
                first = started if previous is None else previous.first_at
                next_at = retries.next_attempt_at(attempt, ended, first, self.options.window)
                outcome = "failed" if next_at is None else "retrying"
            rows.append({"endpoint_id": endpoint.id, "event_id": event_id,
                         "attempt": attempt, "started_at": started, "status_code": status,
                         "error": error, "outcome": outcome, "next_attempt_at": next_at,
                         "recorded_at": ended, "actor": ACTOR})
            if outcome != "delivered":
                break  # the customer's later events wait for this one
        return rows

    def _post(self, endpoint: endpoints.Endpoint, event_id: str,
              text: str) -> tuple[int | None, str | None]:
        # the signature's timestamp is the wall clock's: receivers check it against theirs
        signed = signing.headers(endpoint.signature_style, endpoint.secret, event_id, text,
                                 datetime.now(UTC))
        try:
            response = self.http.post(endpoint.url, content=text.encode(), headers=signed)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}: {response.text[:200]}"


def _payloads(connection: sa.Connection, event_ids: list[str]) -> dict[str, str]:
    table = schema.outbox_events
    found: dict[str, str] = {}
    for start in range(0, len(event_ids), 500):
        found.update((row.event_id, row.payload) for row in connection.execute(
            sa.select(table.c.event_id, table.c.payload)
            .where(table.c.event_id.in_(event_ids[start:start + 500]))))
    return found


def _claim(engine: sa.Engine, lanes: list[Lane], holder: str, now: datetime,
           lease: timedelta) -> list[Lane]:
    """The lanes taken for ``holder``: free ones, or those whose lease has run out."""
    table = schema.webhook_claims
    with writing(engine) as connection:
        held = {(row.endpoint_id, row.lane): row.lease_until
                for row in connection.execute(sa.select(table))}
        taken = [lane for lane in lanes if lane not in held or held[lane] <= now]
        stale = [lane for lane in taken if lane in held]
        for endpoint_id, lane in stale:
            connection.execute(sa.delete(table).where(table.c.endpoint_id == endpoint_id,
                                                      table.c.lane == lane))
        if taken:
            connection.execute(sa.insert(table), [
                {"endpoint_id": endpoint_id, "lane": lane, "holder": holder,
                 "lease_until": now + lease} for endpoint_id, lane in taken])
    return taken


def _record(engine: sa.Engine, rows: list[dict[str, object]], lanes: list[Lane],
            holder: str) -> None:
    """The chunk's attempts, and its claims released, in one transaction."""
    table = schema.webhook_claims
    with writing(engine) as connection:
        if rows:
            connection.execute(sa.insert(schema.webhook_attempts), rows)
        for endpoint_id, lane in lanes:
            connection.execute(sa.delete(table).where(
                table.c.endpoint_id == endpoint_id, table.c.lane == lane,
                table.c.holder == holder))
