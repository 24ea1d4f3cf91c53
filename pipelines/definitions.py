"""The Dagster code location: every asset, job, schedule and resource of the pipeline.

Data flow: landing folder -> ingest_events job -> events (daily) / quarantine / batches
-> usage -> line_items / sub_line_items -> invoices / invoice_adjustments / credit_ledger
-> invoice_corrections -> invoice_documents, and revenue_summary (monthly) -> lake_views.
Issuing, payment and voiding are commands (orb invoices): issued documents are records,
not assets a run may rewrite.
"""

from __future__ import annotations

import dagster as dg

from assets.checks import BILLING_CHECKS, LAKE_CHECKS
from assets.events import amendments, batches, events, quarantine
from assets.invoicing import invoice_corrections, invoice_documents, invoices
from assets.rating import price, usage
from assets.reporting import lake_views, revenue_summary
from pipelines.ingestion import ingest_events, landing_sensor
from pipelines.issuing import issue_invoices
from pipelines.jobs import check_lake_job, monthly_billing_job, refresh_views_job
from pipelines.resources import OrbStore
from pipelines.schedules import monthly_billing_schedule


def build_definitions(store: OrbStore) -> dg.Definitions:
    return dg.Definitions(
        assets=[events, quarantine, batches, amendments, usage, price, invoices,
                invoice_corrections, invoice_documents, revenue_summary, lake_views],
        asset_checks=[*BILLING_CHECKS, *LAKE_CHECKS],
        jobs=[ingest_events, monthly_billing_job, refresh_views_job, issue_invoices,
              check_lake_job],
        schedules=[monthly_billing_schedule],
        sensors=[landing_sensor],
        resources={"store": store},
    )


defs = build_definitions(OrbStore.from_env())
