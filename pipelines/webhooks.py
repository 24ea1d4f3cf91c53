"""Webhooks in Dagster: the job that runs one dispatcher pass (catch-up, delivery, the
lake mirror; ``webhooks.runs.run_once``, as ``orb webhooks deliver`` does), and the
sensor that starts it when there is work (docs/webhooks.md#delivery).

The sensor runs by default: events are meant to flow without anyone switching them on,
and a tick with nothing to do costs a few queries and starts no run. It starts no run
while one is queued or under way, so passes never pile up; the job's tag lets one run at a
time (dagster.yaml)."""

from datetime import UTC, datetime

import dagster as dg

from assets.resources import OrbStore
from state import StateStore
from webhooks import runs


@dg.op(description="Append the events time and the lake have made true, post what is due "
       "to the webhook endpoints, mirror the outbox to the lake.")
def deliver(context: dg.OpExecutionContext, store: OrbStore) -> None:
    with StateStore.open(store.state_store_url) as state:
        result = runs.run_once(store.lake, state.engine)
    summary = result.delivery
    context.log.info(f"{result.appended} new events; {summary.delivered} delivered, "
                     f"{summary.retrying} to retry, {summary.failed} failed; "
                     f"{result.mirrored} mirrored to the lake")


@dg.job(description="One webhook dispatcher pass.", tags={"orb/lake_writer": "webhooks"})
def deliver_webhooks():
    deliver()


ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
          dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


@dg.sensor(job=deliver_webhooks, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Starts a webhook dispatcher pass when an event is due or not yet "
           "mirrored to the lake.")
def webhooks_sensor(context: dg.SensorEvaluationContext, store: OrbStore):
    if context.instance.get_runs(dg.RunsFilter(job_name=deliver_webhooks.name,
                                               statuses=ACTIVE), limit=1):
        return dg.SkipReason("a dispatcher pass is queued or running")
    with StateStore.open(store.state_store_url) as state:
        if not runs.work_waiting(store.lake, state.engine):
            return dg.SkipReason("no event is due and the lake has every event")
    return dg.RunRequest(run_key=f"webhooks-{datetime.now(UTC):%Y%m%dT%H%M%S}")
