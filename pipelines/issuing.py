"""The issuing job: number and freeze a month's drafts from the Dagster UI, as
``orb invoices issue`` does from the shell. An op job, not an asset: issued documents
are records that no re-materialization may rewrite."""

from datetime import UTC, date, datetime

import dagster as dg

from assets.resources import OrbStore
from invoicing.auto_issue import auto_issue
from reports.documents import issue_and_render, render_months
from storage.duck import connect
from storage.settings import Settings
from webhooks.publish import after_lake_write


class IssueConfig(dg.Config):
    month: str  # YYYY-MM, the billing run whose drafts to issue
    customers: list[str] = []  # empty: every customer


@dg.op(description="Issue the month's drafts dated up to today: numbers, frozen lines, "
       "HTML and PDF.")
def issue(context: dg.OpExecutionContext, config: IssueConfig, store: OrbStore) -> None:
    issued, folder = issue_and_render(store, date.fromisoformat(f"{config.month}-01"),
                                      set(config.customers) or None)
    after_lake_write(store, datetime.now(UTC))  # invoice.issued (webhooks)
    for number, draft in issued:
        head = draft.head
        context.log.info(f"{number}: {head.document_type} {head.reference} {head.total} "
                         f"{head.currency}")
    context.log.info(f"issued {len(issued)} documents into {folder}")


@dg.job(description="Issue a billing month's draft invoices and corrections.",
        tags={"orb/lake_writer": "issue"})
def issue_invoices():
    issue()


class AutoIssueConfig(dg.Config):
    grace_days: int | None = None  # None: ORB_AUTO_ISSUE_GRACE_DAYS (unset: off)


@dg.op(description="Issue the draft invoices whose date is at least the grace period "
       "ago (off unless ORB_AUTO_ISSUE_GRACE_DAYS or grace_days is set).")
def auto_issue_drafts(context: dg.OpExecutionContext, config: AutoIssueConfig,
                      store: OrbStore) -> None:
    grace = config.grace_days
    if grace is None:
        grace = Settings.from_env(store.data_dir).auto_issue_grace_days
    if grace is None:
        context.log.info("auto-issue is off: ORB_AUTO_ISSUE_GRACE_DAYS is not set")
        return
    now = datetime.now(UTC)
    done = auto_issue(connect(), store.lake, grace, now)
    for month, why in done.skipped.items():
        context.log.warning(f"{month:%Y-%m} not auto-issued: {why}")
    if done.issued:
        after_lake_write(store, now)  # invoice.issued (webhooks)
        render_months(store, {draft.head.billing_month for _, draft in done.issued})
    context.log.info(f"auto-issued {len(done.issued)} draft invoices {grace} days or more "
                     f"after their date")


@dg.job(description="Issue draft invoices once their grace period is over.",
        tags={"orb/lake_writer": "issue"})
def auto_issue_invoices():
    auto_issue_drafts()


auto_issue_schedule = dg.ScheduleDefinition(
    name="auto_issue_drafts", job=auto_issue_invoices, cron_schedule="0 6 * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every day at 06:00 UTC, after the billing runs: issue the drafts whose "
    "grace period is over (ORB_AUTO_ISSUE_GRACE_DAYS; unset: nothing).")
