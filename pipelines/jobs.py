"""Asset jobs: bill a month (monthly partitions) and refresh the DuckDB views.
Ingestion is an op job: pipelines/ingestion.py."""

from __future__ import annotations

import dagster as dg

from assets.checks import usage_matches_the_event_lake
from assets.revenue import REVENUE_ASSETS

monthly_billing_job = dg.define_asset_job(
    "monthly_billing",
    selection=(dg.AssetSelection.groups("rating", "invoicing")
               | dg.AssetSelection.assets(*REVENUE_ASSETS))
    - dg.AssetSelection.checks(usage_matches_the_event_lake),
    description="Rate usage, price line items, draft invoices, corrections and documents, "
    "and build the revenue tables and report for one billing month.",
    # One process for every step: a step costs its work, not a Python start-up that
    # imports the project (8-11 s each under load), and the parsed catalog is reused.
    executor_def=dg.in_process_executor,
)

refresh_views_job = dg.define_asset_job(
    "refresh_lake_views",
    selection=dg.AssetSelection.assets("lake_views"),
    description="Recreate the DuckDB views over every lake table in data/orb.duckdb.",
)

check_lake_job = dg.define_asset_job(
    "check_lake",
    selection=dg.AssetSelection.checks_for_assets("events")
    | dg.AssetSelection.checks(usage_matches_the_event_lake),
    description="Check the whole event lake: unique idempotency keys among the events "
    "that count, every event's customer in the catalog, and every billed month's usage "
    "still what the lake gives.",
)
