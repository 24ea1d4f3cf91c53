"""Threshold invoices (docs/invoicing.md#threshold-invoices): after a run's drafts, the
threshold invoices due now on the month's open periods are issued and rendered, and
their events appended to the outbox. ``orb invoices threshold-run`` calls the same."""

from datetime import UTC, date, datetime

import dagster as dg

from assets.partitions import MONTHLY, billing_month, billing_run_id
from assets.resources import OrbStore
from invoicing.thresholds import Issued, issue_due
from pricing_sql.run_catalog import billing_catalog
from reports.documents import write_issued
from state import StateStore, lake_snapshot
from storage.settings import Deployment
from webhooks import lake_facts


def run_thresholds(deployment: Deployment, month: date, as_of: datetime,
                   run_id: str | None = None) -> list[Issued]:
    """Issue the threshold invoices due at ``as_of`` on ``month``'s periods, with the
    customers, subscriptions and thresholds of ``run_id``'s state snapshot (else the
    month's newest); render them and tell the outbox (threshold and ``invoice.issued``
    events, ids made from the invoices, so a second run adds nothing)."""
    lake, now = deployment.lake, datetime.now(UTC)
    catalog = billing_catalog(deployment, month, run_id)
    rows = lake_snapshot.invoicing_thresholds(lake, month,
                                              lake_snapshot.find(lake, month, run_id))
    with StateStore.open(deployment.state_store_url) as state:
        issued = issue_due(lake, state.engine, catalog, month, rows, as_of, now)
        if issued:
            lake_facts.publish(lake, state.engine, now)
    if issued:
        write_issued(lake, catalog, deployment.issuer, month,
                     [(i.number, i.draft) for i in issued], now)
    return issued


@dg.asset(partitions_def=MONTHLY, deps=["invoice_documents"], group_name="invoicing",
          kinds={"parquet", "html"})
def threshold_invoices(context: dg.AssetExecutionContext,
                       store: OrbStore) -> dg.MaterializeResult:
    """Threshold invoices due now: a subscription whose open period's usage not yet
    invoiced reaches its invoicing threshold is invoiced for it mid-period (the month's
    next run takes it off the period's final invoice)."""
    issued = run_thresholds(store, billing_month(context), datetime.now(UTC),
                            billing_run_id(context))
    return dg.MaterializeResult(metadata={
        "issued": len(issued), "invoices": dg.MetadataValue.json(
            {i.number: str(i.draft.head.total) for i in issued})})
