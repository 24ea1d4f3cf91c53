"""Events domain: the tables ingestion writes, and how it reports them to Dagster.

Ingestion (``pipelines/ingestion.py``) is an op job, not an asset computation: a
batch touches whichever days its events fall on, so the job reports a
materialization of each ``events`` day partition it wrote. Those reports make the
monthly billing assets of those days stale, so a late event shows up as a month to
re-rate.
"""

from datetime import date

import dagster as dg

from assets.partitions import DAILY
from ingestion.batches import BatchResult

events = dg.AssetSpec(
    "events", partitions_def=DAILY, group_name="events", kinds={"duckdb", "parquet"},
    description="Clean usage events, one folder per UTC day and one file per batch; "
    "(customer_id, idempotency_key) is unique across all of them.")
amendments = dg.AssetSpec(
    "amendments", group_name="events", kinds={"parquet"},
    description="Deprecations of past events for a customer and timeframe (orb amend): "
    "audit records; the events stay in the lake but no longer count.")
quarantine = dg.AssetSpec(
    "quarantine", group_name="events", kinds={"parquet"},
    description="Raw events that failed a check, per batch, with reason, file and row. "
    "List with `orb quarantine list`; re-check with `orb quarantine replay`.")
batches = dg.AssetSpec(
    "batches", group_name="events", kinds={"parquet"},
    description="One record per ingested file (batch): counts, days touched, late events.")


def day_materializations(days: list[date], metadata: dict) -> list[dg.AssetMaterialization]:
    """Reports that these ``events`` days changed, so the months that read them go stale."""
    return [dg.AssetMaterialization("events", partition=day.isoformat(), metadata=metadata)
            for day in days]


def materializations(results: list[BatchResult]) -> list[dg.AssetMaterialization]:
    """What an ingestion wrote, as Dagster materializations."""
    written = [r for r in results if r.status != "already ingested"]
    days = sorted({day for r in written for day in r.days})
    reports = day_materializations(days, {"batches": ", ".join(r.batch_id for r in written)})
    if written:
        summary = {"batches": len(written), "accepted": sum(r.accepted for r in written),
                   "rejected": sum(r.rejected for r in written),
                   "late": sum(r.late for r in written)}
        reports += [dg.AssetMaterialization("quarantine", metadata=summary),
                    dg.AssetMaterialization("batches", metadata=summary)]
    return reports
