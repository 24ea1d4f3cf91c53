"""Rating domain: usage per subscription and metric, then priced line items."""

import dagster as dg

from assets.partitions import MONTHLY, billing_month
from pipelines.resources import OrbStore
from pricing_sql.rating import compute_usage, price_line_items
from storage.duck import connect


@dg.asset(partitions_def=MONTHLY, deps=["events"], group_name="rating",
          kinds={"duckdb", "parquet"})
def usage(context: dg.AssetExecutionContext, store: OrbStore) -> dg.MaterializeResult:
    """Each billable metric per subscription over the customer's local billing month."""
    month = billing_month(context)
    table = compute_usage(connect(), store.lake, store.catalog(), month)
    path = store.lake.write_partition("usage", "billing_month", month, table)
    return dg.MaterializeResult(metadata={"rows": table.num_rows,
                                          "path": dg.MetadataValue.path(str(path))})


@dg.asset(partitions_def=MONTHLY, deps=[usage], group_name="rating", kinds={"duckdb", "parquet"})
def line_items(context: dg.AssetExecutionContext, store: OrbStore) -> dg.MaterializeResult:
    """Every price of every active subscription, priced by tier and rounded once."""
    month = billing_month(context)
    usage_rows = store.lake.read_partition("usage", "billing_month", month)
    table = price_line_items(connect(), store.catalog(), month, usage_rows)
    path = store.lake.write_partition("line_items", "billing_month", month, table)
    return dg.MaterializeResult(metadata={"rows": table.num_rows,
                                          "path": dg.MetadataValue.path(str(path))})
