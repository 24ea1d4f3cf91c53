"""Rating domain: usage per subscription and metric, then priced line items."""

from datetime import date

import dagster as dg
import pyarrow as pa

from assets.metadata import table_metadata
from assets.partitions import MONTHLY, billing_month, billing_run_id, goes_on_to
from assets.resources import OrbStore
from billing.gc_pause import gc_paused
from invoicing.thresholds import with_threshold_lines
from pricing_sql.engine import engine_from_env
from pricing_sql.isolation import customers_of, usage_step
from pricing_sql.rating import compute_usage, price_line_items, pricing_exclusions
from storage import billing_runs


@dg.asset(partitions_def=MONTHLY, deps=["events", "state_snapshot"], group_name="rating",
          kinds={"duckdb", "parquet"})
def usage(context: dg.AssetExecutionContext, store: OrbStore) -> dg.MaterializeResult:
    """Each billable metric per subscription over the customer's local billing month."""
    month, run_id = billing_month(context), billing_run_id(context)
    # Without collections: each would walk the process's millions of objects (Dagster's,
    # the run's catalog) to free the few cycles a step makes (docs/capacity.md).
    with gc_paused():
        rated = compute_usage(engine_from_env(store.engine), store.lake,
                              store.billing_catalog(context), month)
    # written behind (storage/write_behind.py) if the invoices step, whose writes wait for
    # them, follows in this process; else on disk when the step ends
    table, behind = rated.usage, goes_on_to(context, "invoices")
    path = billing_runs.write(store.lake, "usage", month, run_id, table, behind=behind)
    billing_runs.write(store.lake, "rating_exclusions", month, run_id, rated.exclusions,
                       behind=behind)
    return dg.MaterializeResult(metadata={**table_metadata("usage", table, path),
                                          **_report(context, month, rated.exclusions)})


@dg.multi_asset(
    specs=[
        dg.AssetSpec("line_items", deps=[usage], partitions_def=MONTHLY, group_name="rating",
                     kinds={"duckdb", "parquet"},
                     description="Every price of every active subscription, priced and "
                     "rounded once."),
        dg.AssetSpec("sub_line_items", deps=[usage], partitions_def=MONTHLY,
                     group_name="rating", kinds={"duckdb", "parquet"},
                     description="Each line item's breakdown by usage group and tier."),
    ],
    partitions_def=MONTHLY,
)
def price(context: dg.AssetExecutionContext, store: OrbStore):
    month, run_id = billing_month(context), billing_run_id(context)
    run = billing_runs.read_month(store.lake, month, ["usage", "rating_exclusions"], run_id)
    engine, catalog = engine_from_env(store.engine), store.billing_catalog(context)
    left_out = usage_step(run["rating_exclusions"])
    with gc_paused():  # as in usage
        priced = price_line_items(engine, catalog, month, run["usage"], customers_of(left_out))
        failed = pricing_exclusions(engine, store.lake, catalog, month, priced.failures)
    behind = goes_on_to(context, "invoices")  # as in usage
    billing_runs.write(store.lake, "rating_exclusions", month, run_id,
                       pa.concat_tables([left_out, failed]), behind=behind)
    if priced.usage is not None:
        billing_runs.write(store.lake, "usage", month, run_id, priced.usage, behind=behind)
    report = _report(context, month, failed)
    # the month's issued threshold invoices, recomputed (docs/invoicing.md#threshold-invoices)
    priced_tables = dict(zip(("line_items", "sub_line_items"), with_threshold_lines(
        store.lake, catalog, month, priced.line_items, priced.sub_line_items,
        customers_of(left_out) | set(priced.failures)), strict=True))
    for table, rows in priced_tables.items():
        path = billing_runs.write(store.lake, table, month, run_id, rows, behind=behind)
        yield dg.MaterializeResult(asset_key=table, metadata={
            **table_metadata(table, rows, path), **report})


def _report(context: dg.AssetExecutionContext, month: date,
            exclusions: pa.Table) -> dict[str, dg.MetadataValue]:
    """A warning in the run's log per customer left out of the month (the lake's
    rating_exclusions keeps them), and the customers as metadata."""
    for row in exclusions.to_pylist():
        context.log.warning(
            f"customer {row['customer_id']} is left out of {month:%Y-%m}: rating its "
            f"{row['step']} raised {row['error']!r}; events: "
            f"{', '.join(row['idempotency_keys']) or 'no single one (they overflow together)'}"
            "; amend or fix them, then bill the month again")
    return {"excluded_customers": dg.MetadataValue.json(
        sorted(customers_of(exclusions)))} if exclusions.num_rows else {}
