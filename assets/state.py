"""State domain: the customers and subscriptions a month's billing run reads, taken from
the state store once at the run's start and kept in the lake (docs/state.md)."""

import dagster as dg

from assets.billing_order import check_start
from assets.partitions import MONTHLY, billing_month, billing_run_id, goes_on_to
from assets.resources import OrbStore
from billing.gc_pause import gc_paused
from pricing_sql.run_catalog import take_snapshot
from storage.billing_runs import remove_stale_scratch


@dg.asset(partitions_def=MONTHLY, group_name="rating", kinds={"sqlite", "postgres", "parquet"})
def state_snapshot(context: dg.AssetExecutionContext, store: OrbStore) -> dg.MaterializeResult:
    """The state store's customers and subscriptions as this run reads them, kept per run
    in the lake's state_* tables: every later step of the run, and a later step of the
    same month alone, reads this snapshot, never the store. First, the month must be
    billable now (months in order: assets/billing_order.py), and the scratch files of
    billing runs killed mid-write are removed."""
    check_start(context, store)
    try:  # what an earlier run of this process left failed: that run did not commit,
        store.lake.wait_for_writes()  # whatever the error, and this one starts afresh
    except Exception as error:
        context.log.warning(f"a write an earlier billing run left behind failed: "
                            f"{type(error).__name__}: {error}")
    removed = remove_stale_scratch(store.lake)
    if removed:
        context.log.info(f"removed {len(removed)} scratch files left by killed runs: "
                         + ", ".join(str(path) for path in removed))
    with gc_paused():  # as in usage (assets/rating.py)
        # the run's catalog, built while the snapshot is written, if usage follows here
        snapshot = take_snapshot(store, billing_month(context), billing_run_id(context),
                                 with_catalog=goes_on_to(context, "usage"))
    return dg.MaterializeResult(metadata={
        "snapshot_id": snapshot.snapshot_id,
        "customers": snapshot.tables["customers"].num_rows,
        "subscriptions": snapshot.tables["subscriptions"].num_rows,
        "taken_at": snapshot.taken_at.isoformat()})
