"""Payments domain: collect issued invoices, retry failures, reconcile (docs/payments.md).

Unpartitioned: each materialization is one payment run over every issued invoice still
open. It only appends to ``payment_attempts`` and ``document_events``; nothing it writes
is ever rewritten, so materializing it again never charges twice.
"""

from datetime import UTC, datetime

import dagster as dg

from assets.resources import OrbStore, PaymentsConfig
from payments.run import run_payments
from webhooks.publish import after_lake_write


@dg.asset(group_name="payments", kinds={"parquet"})
def payments(context: dg.AssetExecutionContext, store: OrbStore,
             payment_processor: PaymentsConfig) -> dg.MaterializeResult:
    """One payment run: sync and collect each open issued invoice, retry failed payments
    whose retry is due, and reconcile the processor's state into the lake."""
    processor = payment_processor.build(store)
    summary = run_payments(store.lake, processor, datetime.now(UTC), store.current_catalog(),
                           payment_processor.key_prefix)
    after_lake_write(store, datetime.now(UTC))  # payment_succeeded, _failed (webhooks)
    for number, at in summary.retry_scheduled.items():
        context.log.info(f"{number}: payment failed, retry scheduled at {at:%Y-%m-%d %H:%M} UTC")
    for number, detail in summary.flagged.items():
        context.log.warning(f"{number}: flagged: {detail}")
    if summary.errors:
        raise dg.Failure(
            description="payment calls failed; the next run repeats them with the same "
            "idempotency keys:\n" + "\n".join(f"{n}: {e}" for n, e in summary.errors.items()),
            metadata={"paid": len(summary.paid), "errors": len(summary.errors)})
    return dg.MaterializeResult(metadata={
        "processor": processor.name,
        "paid": len(summary.paid),
        "reconciled": len(summary.reconciled),
        "retry_scheduled": len(summary.retry_scheduled),
        "waiting_for_retry": len(summary.waiting),
        "retries_exhausted": len(summary.exhausted),
        "pending": len(summary.pending),
        "flagged": len(summary.flagged),
    })
