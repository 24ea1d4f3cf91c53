"""The Dagster code location: every asset, job, schedule and resource of the pipeline.

Data flow: landing_files -> events / rejected_events (daily) -> usage -> line_items /
sub_line_items -> invoices -> invoice_documents / revenue_summary (monthly) -> lake_views.
"""

from __future__ import annotations

import dagster as dg

from assets.events import land, landing_files
from assets.invoicing import invoice_documents, invoices
from assets.rating import price, usage
from assets.reporting import lake_views, revenue_summary
from pipelines.jobs import ingest_events_job, monthly_billing_job, refresh_views_job
from pipelines.resources import OrbStore
from pipelines.schedules import ingest_events_schedule, monthly_billing_schedule


def build_definitions(store: OrbStore) -> dg.Definitions:
    return dg.Definitions(
        assets=[landing_files, land, usage, price, invoices, invoice_documents,
                revenue_summary, lake_views],
        jobs=[ingest_events_job, monthly_billing_job, refresh_views_job],
        schedules=[ingest_events_schedule, monthly_billing_schedule],
        resources={"store": store},
    )


defs = build_definitions(OrbStore.from_env())
