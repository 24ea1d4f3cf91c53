"""Rating domain: usage per subscription and metric, then priced line items."""

import dagster as dg

from assets.partitions import MONTHLY, billing_month
from assets.resources import OrbStore
from pricing_sql.engine import engine_from_env
from pricing_sql.rating import compute_usage, price_line_items
from storage.tables import TABLES


@dg.asset(partitions_def=MONTHLY, deps=["events", "state_snapshot"], group_name="rating",
          kinds={"duckdb", "parquet"})
def usage(context: dg.AssetExecutionContext, store: OrbStore) -> dg.MaterializeResult:
    """Each billable metric per subscription over the customer's local billing month."""
    month = billing_month(context)
    table = compute_usage(engine_from_env(store.engine), store.lake,
                          store.billing_catalog(context), month)
    path = store.lake.write_partition("usage", TABLES["usage"].key, month, table)
    return dg.MaterializeResult(metadata={"rows": table.num_rows,
                                          "path": dg.MetadataValue.path(str(path))})


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
    month = billing_month(context)
    usage_rows = store.lake.read_partition("usage", "billing_month", month)
    priced = price_line_items(engine_from_env(store.engine), store.billing_catalog(context), month,
                              usage_rows)
    for table in ("line_items", "sub_line_items"):
        rows = getattr(priced, table)
        path = store.lake.write_partition(table, TABLES[table].key, month, rows)
        yield dg.MaterializeResult(asset_key=table, metadata={
            "rows": rows.num_rows, "path": dg.MetadataValue.path(str(path))})
