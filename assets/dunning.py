"""Dunning: reminders and past-due notices by mail (docs/payments.md#dunning).

Unpartitioned: each materialization is one dunning run at the current time. It only
appends to ``dunning_notices``; a notice sent is never sent again, so materializing it
twice the same day sends nothing more. The SMTP server and its credentials come from
``ORB_SMTP_*`` variables when it runs, never from Dagster config; the schedule from
``ORB_DUNNING_STEPS``."""

from datetime import UTC, datetime

import dagster as dg

from assets.resources import OrbStore, PaymentsConfig
from payments.dunning import run_dunning
from payments.dunning_schedule import steps_from_env
from payments.smtp import SmtpSettings
from reports.documents import seller_of
from reports.notices import render_notice
from webhooks.publish import after_lake_write


@dg.asset(group_name="payments", kinds={"parquet"})
def dunning_notices(context: dg.AssetExecutionContext, store: OrbStore,
                    payment_processor: PaymentsConfig) -> dg.MaterializeResult:
    """Send each open invoice's due reminder or past-due notice (a past-due notice also
    brings the invoice's payment retry forward to now)."""
    catalog = store.current_catalog()
    summary = run_dunning(store.lake, datetime.now(UTC), catalog,
                          seller_of(catalog, store.issuer), SmtpSettings.from_env(),
                          render_notice, processor=payment_processor.processor,
                          steps=steps_from_env(), key_prefix=payment_processor.key_prefix)
    after_lake_write(store, datetime.now(UTC))  # invoice.dunning_schedule_step_executed
    for number in summary.no_recipient:
        context.log.warning(f"{number}: its customer has no email address; no notice sent")
    if summary.errors:
        raise dg.Failure(
            description="notices not sent; the next run sends them:\n"
            + "\n".join(f"{n}: {e}" for n, e in summary.errors.items()),
            metadata={"sent": len(summary.sent), "errors": len(summary.errors)})
    return dg.MaterializeResult(metadata={
        "sent": len(summary.sent),
        "resent_after_crash": len(summary.resent),
        "retries_announced": len(summary.retries),
        "no_recipient": len(summary.no_recipient),
    })
