"""The Dagster code location: every asset, job, schedule and resource of the pipeline.

Data flow: landing folder -> ingest_events job -> events (daily) / quarantine / batches
-> state_snapshot (the state store, read once per run) -> usage -> line_items /
sub_line_items -> invoices / invoice_adjustments / credit_ledger / invoice_taxes
-> invoice_corrections -> billing_run (the run's commit) -> invoice_documents (then
threshold_invoices: those due now, issued mid-period), and the
revenue tables and report (monthly, assets/revenue.py) -> lake_views. Issuing and voiding
are commands (orb invoices) and the issue_invoices job: issued documents are records, not
assets a run may rewrite. The payments asset collects issued invoices through the
configured processor. The webhooks sensor starts a dispatcher pass (pipelines/webhooks.py)
when an outbox event is due to an endpoint.
"""

from __future__ import annotations

import warnings

import dagster as dg

from assets.checks import BILLING_CHECKS, LAKE_CHECKS
from assets.dunning import dunning_notices
from assets.events import amendments, batches, events, quarantine
from assets.invoicing import billing_run, invoice_corrections, invoice_documents, invoices
from assets.metadata import OWNERS
from assets.payments import payments
from assets.rating import price, usage
from assets.reporting import lake_views
from assets.resources import OrbStore, PaymentsConfig
from assets.revenue import REVENUE_ASSETS
from assets.state import state_snapshot
from assets.thresholds import threshold_invoices
from pipelines.alerts import alerts_after_billing, evaluate_alerts
from pipelines.ingestion import ingest_events, landing_sensor
from pipelines.issuing import auto_issue_invoices, auto_issue_schedule, issue_invoices
from pipelines.jobs import check_lake_job, monthly_billing_job, refresh_views_job
from pipelines.payments import dunning_job, dunning_schedule, payments_job, payments_schedule
from pipelines.schedules import (
    daily_checks_schedule,
    daily_ingestion_schedule,
    daily_running_invoices,
    monthly_billing_schedule,
)
from pipelines.webhooks import deliver_webhooks, webhooks_sensor

# Code references are a Dagster beta feature; they work here as documented.
warnings.filterwarnings("ignore", message="(Function `with_source_code_references`|Class "
                        "`(LocalFileCodeReference|CodeReferencesMetadataValue)`)",
                        category=dg.BetaWarning)


def build_definitions(store: OrbStore) -> dg.Definitions:
    assets: list[dg.AssetsDefinition | dg.AssetSpec] = [
        events, quarantine, batches, amendments, state_snapshot, usage, price, invoices,
        invoice_corrections, billing_run, invoice_documents, threshold_invoices,
        *REVENUE_ASSETS, lake_views,
        payments, dunning_notices]
    # A team owner on every asset, and a link from each to the code that computes it.
    owned = dg.map_asset_specs(lambda spec: spec.replace_attributes(owners=OWNERS), assets)
    return dg.Definitions(
        assets=dg.with_source_code_references(owned),
        asset_checks=[*BILLING_CHECKS, *LAKE_CHECKS],
        jobs=[ingest_events, monthly_billing_job, refresh_views_job, issue_invoices,
              auto_issue_invoices,
              check_lake_job, payments_job, dunning_job, deliver_webhooks, evaluate_alerts],
        schedules=[monthly_billing_schedule, daily_running_invoices, daily_ingestion_schedule,
                   daily_checks_schedule, payments_schedule, dunning_schedule,
                   auto_issue_schedule],
        sensors=[landing_sensor, webhooks_sensor, alerts_after_billing],
        resources={"store": store, "payment_processor": PaymentsConfig.from_env()},
        # Every job, a launch from the UI and an asset backfill run all their steps in one
        # process: a step costs its work, not a Python start-up that imports the project
        # (8-11 s each under load), and the parsed catalog is reused.
        executor=dg.in_process_executor,
    )


defs = build_definitions(OrbStore.from_env())
