"""One run of the dispatcher (the ``deliver_webhooks`` job, ``orb webhooks deliver``):
catch up on the events time and the lake have made true, post what is due, mirror the
outbox to the lake (docs/webhooks.md#delivery)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import sqlalchemy as sa

from state import outbox
from state.database import reading, writing
from state.events import due_events
from storage.lake import Lake
from webhooks import lake_facts, mirror
from webhooks.dispatch import (
    ACTOR,
    DEFAULTS,
    Clock,
    DeliveryOptions,
    Summary,
    deliver,
    due_lanes,
    utc_now,
)


@dataclass(frozen=True)
class RunSummary:
    appended: int  # events the catch-up found missing
    delivery: Summary
    mirrored: int


def catch_up(lake: Lake, engine: sa.Engine, clock: Clock = utc_now) -> int:
    """Append the subscription starts, plan changes and ends that have taken effect, and
    the lake's facts, that the outbox does not have yet."""
    now = clock()
    with writing(engine) as connection:
        appended = outbox.append(connection, due_events(connection, now), now, ACTOR)
    return appended + lake_facts.publish(lake, engine, now)


def run_once(lake: Lake, engine: sa.Engine, clock: Clock = utc_now,
             options: DeliveryOptions = DEFAULTS,
             client: httpx.Client | None = None) -> RunSummary:
    appended = catch_up(lake, engine, clock)
    delivery = deliver(engine, clock, options, client)
    return RunSummary(appended, delivery, mirror.mirror(lake, engine))


def work_waiting(lake: Lake, engine: sa.Engine, clock: Clock = utc_now) -> bool:
    """Whether a run would do anything: after a catch-up, an event due to an endpoint or
    not yet in the lake."""
    catch_up(lake, engine, clock)
    with reading(engine) as connection:
        newest = outbox.newest_sequence(connection)
    return newest > mirror.mirrored_through(lake) or due_lanes(engine, clock) > 0
