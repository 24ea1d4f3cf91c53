"""Asset checks: what must hold of the lake before money moves.

The invoice and line item checks run in every billing run and block the assets after
them when they fail (the run's commit among them), so a run never renders or issues
invoices that do not add up; issuing runs the invoice check again on what it issues.
The lake checks (job ``check_lake``) look at the whole event lake, and recompute every
billed month's usage from it to find the months late events or amendments changed."""

import warnings

import dagster as dg

from assets.metadata import failures_table
from assets.partitions import MONTHLY, billing_month, billing_run_id
from assets.resources import OrbStore
from ingestion.checks import duplicate_keys, unknown_customers
from invoicing.checks import invoice_total_failures
from pricing_sql.checks import line_usage_failures, usage_drift
from pricing_sql.run_catalog import billing_catalog

# Partitioned asset checks are a Dagster preview feature; they work here as documented.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec",
                        category=dg.PreviewWarning)


def _result(rows: list[tuple], what: str, columns: tuple[str, ...]) -> dg.AssetCheckResult:
    """Passed when ``rows`` (the failing items, one tuple of ``columns`` each) is empty;
    the first ten are shown as a table."""
    return dg.AssetCheckResult(passed=not rows, metadata={
        "failures": len(rows), "first": failures_table(columns, rows[:10]), "checked": what})


@dg.asset_check(asset="invoices", blocking=True, partitions_def=MONTHLY,
                additional_deps=["line_items", "invoice_adjustments", "invoice_taxes"],
                description="Subtotal = sum of rounded lines; total = subtotal + adjustments "
                "- credits + tax; no negative invoice.")
def invoice_totals_add_up(context: dg.AssetCheckExecutionContext,
                          store: OrbStore) -> dg.AssetCheckResult:
    return _result(invoice_total_failures(store.lake, billing_month(context),
                                          billing_run_id(context)), "invoices",
                   ("invoice_id", "problem"))


@dg.asset_check(asset="line_items", blocking=True, partitions_def=MONTHLY,
                additional_deps=["usage"],
                description="Every usage line is priced for exactly its window's usage.")
def line_items_match_usage(context: dg.AssetCheckExecutionContext,
                           store: OrbStore) -> dg.AssetCheckResult:
    return _result(line_usage_failures(store.lake, store.billing_catalog(context),
                                       billing_month(context), billing_run_id(context)),
                   "usage line items", ("line_item_id", "quantity", "usage"))


# It checks the event lake against what was billed, so it targets `events`: a run that
# materializes `usage` (the billing job, or a launch from the UI) never runs it.
@dg.asset_check(asset="events", additional_deps=["usage"],
                description="Every billed month's usage, computed again from the event lake "
                "as it is now, equals what was billed: fails when events were ingested or "
                "amended since, naming the windows of the months to re-rate.")
def usage_matches_the_event_lake(store: OrbStore) -> dg.AssetCheckResult:
    return _result(usage_drift(store.lake, lambda month: billing_catalog(store, month)),
                   "billed months",
                   ("month", "window_id", "metric_id", "group_values", "billed", "now"))


@dg.asset_check(asset="events", description="No idempotency key counts twice for a "
                "customer among the events that count.")
def event_keys_unique(store: OrbStore) -> dg.AssetCheckResult:
    return _result(duplicate_keys(store.lake), f"{len(store.lake.all_files('events'))} files",
                   ("customer_id", "idempotency_key", "events"))


@dg.asset_check(asset="events", description="Every event's customer is in the state store.")
def event_customers_known(store: OrbStore) -> dg.AssetCheckResult:
    return _result(unknown_customers(store.lake, store.current_catalog()),
                   f"{len(store.lake.all_files('events'))} files", ("customer_id", "events"))


BILLING_CHECKS = [invoice_totals_add_up, line_items_match_usage]
# The whole-lake checks (job check_lake). The usage reconciliation is not part of
# billing runs, which would recompute what they have just computed.
LAKE_CHECKS = [event_keys_unique, event_customers_known, usage_matches_the_event_lake]
