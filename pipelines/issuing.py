"""The issuing job: number and freeze a month's drafts from the Dagster UI, as
``orb invoices issue`` does from the shell. An op job, not an asset: issued documents
are records that no re-materialization may rewrite."""

from datetime import UTC, date, datetime

import dagster as dg

from assets.resources import OrbStore
from reports.documents import issue_and_render
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
