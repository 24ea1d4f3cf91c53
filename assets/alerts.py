"""Alerts after ingestion and after the daily running-invoice refresh (docs/webhooks.md#alerts):
thin ops over ``webhooks.alerts``. An evaluation that fails is logged and reported as the
op's metadata, never raised: the batches it follows are committed already, and an alert
must not fail an ingestion."""

from datetime import UTC, datetime

import dagster as dg

from assets.resources import OrbStore
from webhooks.alerts import Evaluation, after_batches, evaluate_logged


def _reported(context: dg.OpExecutionContext, done: Evaluation) -> dg.Output[None]:
    for customer, why in done.failures.items():
        context.log.warning(f"alerts of customer {customer} not evaluated: {why}")
    return dg.Output(None, metadata={"alerts": done.alerts, "events": done.events,
                                     "failures": len(done.failures)})


@dg.op(description="Evaluate the alerts of the customers the ingested batches touched.")
def batch_alerts(context: dg.OpExecutionContext, store: OrbStore,
                 batch_ids: list[str]) -> dg.Output[None]:
    done = after_batches(store, batch_ids, datetime.now(UTC)) if batch_ids else Evaluation()
    return _reported(context, done)


@dg.op(description="Evaluate every enabled alert.")
def all_alerts(context: dg.OpExecutionContext, store: OrbStore) -> dg.Output[None]:
    return _reported(context, evaluate_logged(store, datetime.now(UTC)))
