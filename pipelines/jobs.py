"""Asset jobs: bill a month (monthly partitions) and refresh the DuckDB views.
Ingestion is an op job: pipelines/ingestion.py."""

from __future__ import annotations

import dagster as dg

from assets.revenue import REVENUE_ASSETS

# The billing checks target its assets; the whole-lake usage reconciliation targets
# `events`, so neither this job nor a launch of its assets from the UI runs it.
monthly_billing_job = dg.define_asset_job(
    "monthly_billing",
    selection=dg.AssetSelection.groups("rating", "invoicing")
    | dg.AssetSelection.assets(*REVENUE_ASSETS),
    description="Rate usage, price line items, draft invoices, corrections and documents, "
    "and build the revenue tables and report for one billing month.",
    # One billing run at a time (the run queue's limit): a month starts from the credit
    # balances the month before closed with (assets/billing_order.py).
    tags={"orb/lake_writer": "billing"},
)

refresh_views_job = dg.define_asset_job(
    "refresh_lake_views",
    selection=dg.AssetSelection.assets("lake_views"),
    description="Recreate the DuckDB views over every lake table in data/orb.duckdb.",
)

check_lake_job = dg.define_asset_job(
    "check_lake",
    selection=dg.AssetSelection.checks_for_assets("events"),
    description="Check the whole event lake: unique idempotency keys among the events "
    "that count, every event's customer in the catalog, and every billed month's usage "
    "still what the lake gives.",
)
