"""Events domain: raw batches in the landing folder become clean day partitions."""

import dagster as dg

from assets.partitions import DAILY
from pipelines.resources import OrbStore
from storage.duck import connect
from storage.landing import land_events

landing_files = dg.AssetSpec(
    "landing_files",
    description="Raw event batches as producers sent them (data/landing/: Parquet, JSON "
    "Lines or CSV, gzip accepted); never modified by the pipeline.",
    group_name="events",
    kinds={"parquet"},
)


@dg.multi_asset(
    specs=[
        dg.AssetSpec("events", deps=[landing_files], partitions_def=DAILY, group_name="events",
                     kinds={"duckdb", "parquet"},
                     description="Clean usage events, one partition per UTC day, unique per "
                     "(customer_id, idempotency_key)."),
        dg.AssetSpec("rejected_events", deps=[landing_files], partitions_def=DAILY,
                     group_name="events", kinds={"parquet"},
                     description="Raw events that failed a check, with reason and source "
                     "file and row. Nothing is dropped silently."),
    ],
    partitions_def=DAILY,
    # A backfill of many days is one run that reads the landing folder once.
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def land(context: dg.AssetExecutionContext, store: OrbStore):
    window = context.partition_time_window
    result = land_events(connect(), store.lake, store.catalog(), window.start, window.end)
    context.log.info(f"landed {result.events} events, rejected {result.rejected}: "
                     f"{result.rejects_by_reason}")
    yield dg.MaterializeResult(asset_key="events", metadata={
        "events": result.events,
        "days": len(result.events_by_day),
    })
    yield dg.MaterializeResult(asset_key="rejected_events", metadata={
        "rejected": result.rejected,
        **{f"rejected: {reason}": count for reason, count in result.rejects_by_reason.items()},
    })
