"""The ingestion job and the sensor that starts it when files land."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from assets.alerts import batch_alerts
from assets.events import materializations
from assets.resources import OrbStore
from ingestion.batches import ingest_files
from storage.duck import connect


class IngestConfig(dg.Config):
    files: list[str] = []  # empty: everything in the landing folder


@dg.op(description="Ingest batches from the landing folder (or the given files).")
def ingest(context: dg.OpExecutionContext, config: IngestConfig, store: OrbStore) -> list[str]:
    """The ids of the batches ingested (for their alerts)."""
    lake = store.lake
    files = [Path(f) for f in config.files] or lake.landing_files()
    results = ingest_files(connect(), lake, store.current_catalog(), files, datetime.now(UTC),
                           store.window)
    for result in results:
        context.log.info(f"{result.file}: {result.status}, {result.accepted} accepted, "
                         f"{result.rejected} rejected ({result.duplicates} duplicates), "
                         f"{result.late} late")
    for report in materializations(results):
        context.log_event(report)
    return [r.batch_id for r in results if r.status == "ingested"]


# dagster.yaml's run queue lets one run with this tag execute at a time.
@dg.job(description="Ingest new event batches into the lake.",
        tags={"orb/lake_writer": "ingest"})
def ingest_events():
    batch_alerts(ingest())


@dg.sensor(job=ingest_events, minimum_interval_seconds=30,
           description="Starts an ingestion when files appear in the landing folder.")
def landing_sensor(context: dg.SensorEvaluationContext, store: OrbStore):
    files = store.lake.landing_files()
    if not files:
        return dg.SkipReason("the landing folder is empty")
    # The same files in the same state never start a second run.
    key = "|".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    return dg.RunRequest(run_key=key, run_config=dg.RunConfig(
        ops={"ingest": IngestConfig(files=[str(p) for p in files])}))
