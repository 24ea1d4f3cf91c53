"""A month-end close end to end: N customers in the state store, M usage events landed,
ingested, then October 2026 billed by the ``monthly_billing`` job (state snapshot,
usage, line items, invoices, corrections, draft documents, revenue), each phase in its
own process so that its peak memory is its own. Prints each stage's seconds, its ratio
to a plain DuckDB ``GROUP BY customer_id`` over the same event files (measured in the
same run), the catalog and state part, and each phase's peak RSS.

    .venv/bin/python bench/close_bench.py --customers 10000 --events 100000000
    .venv/bin/python bench/close_bench.py --customers 100000 --events 10000000

``--reuse`` times the billing run again over a lake ``--dir`` holds; ``--repeat N``
runs the billing N times, with the floor measured before and after each, and prints the
median ratio.

Customers are shaped like the demo's (sample catalog: four plans in USD, EUR, JPY; trials,
mid-month upgrades, cancellations, billing on the 15th, coupons), events spread over
October in one Parquet file per UTC day. ``--dir`` keeps the data (default: a temporary
folder, removed).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from unittest import mock

import numpy as np
import polars as pl

MONTH = date(2026, 10, 1)
# Local months reach from Sep 30 10:00 UTC (UTC+14) to Nov 1 12:00 UTC (UTC-12): the
# events cover October in UTC, the days every customer's October window reads.
START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 31
NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)
EVENT_MIX = {"api_request": 0.58, "completion": 0.30, "seat_active": 0.10,
             "storage_snapshot": 0.02}


def rss_mib() -> float:
    """This process's peak resident memory. Not ``getrusage``'s ``ru_maxrss``: Linux keeps
    that across the exec of a phase's process, so a phase started by a parent that had
    generated the events reported the parent's peak (1,558 MiB for each phase after a
    100M-event generation). ``VmHWM`` is the peak of this process's own memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- phases, each run in its own process -----------------------------------------------


def setup(folder: Path, customers: int) -> dict:
    """The sample catalog folder and a state store of ``customers`` customers."""
    sys.path.insert(0, str(Path(__file__).parent))
    from state_bench import operations

    from pricing_sql.catalog_files import load_catalog
    from state import StateStore
    from storage.settings import Settings

    catalog_folder = folder / "catalog"
    catalog_folder.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.yaml", "plans.yaml", "coupons.yaml"):
        with resources.as_file(resources.files("sample_data").joinpath("catalog", name)) as p:
            shutil.copyfile(p, catalog_folder / name)
    started = time.perf_counter()
    with StateStore.open(Settings(data_dir=str(folder)).state_store_url) as store:
        store.apply(operations(customers), load_catalog(catalog_folder))
    return {"store_fill_s": time.perf_counter() - started}


def land(folder: Path, customers: int, events: int) -> dict:
    """``events`` events over October, one Parquet file per UTC day, written a day at a
    time (100M events never sit in memory at once)."""
    landing = folder / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    weights = rng.lognormal(0.0, 1.0, size=customers)
    weights /= weights.sum()
    seats = rng.integers(3, 60, size=customers)
    storage = rng.uniform(5, 500, size=customers)
    names = list(EVENT_MIX)
    per_day = events // DAYS
    started = time.perf_counter()
    for day in range(DAYS):
        n = per_day if day < DAYS - 1 else events - per_day * (DAYS - 1)
        who = rng.choice(customers, size=n, p=weights)
        kind = rng.choice(len(names), size=n, p=list(EVENT_MIX.values()))
        frame = pl.DataFrame({
            "who": who, "kind": kind, "event_name": np.array(names)[kind],
            "at": rng.integers(0, 86_400_000_000, size=n) + day * 86_400_000_000,
            "tokens": rng.integers(50, 4000, size=n),
            "user": rng.integers(0, 1 << 30, size=n) % seats[who],
            "gb": np.round(storage[who], 1),
        }).select(
            "event_name",
            timestamp=(pl.lit(START) + pl.duration(microseconds=pl.col("at")))
            .dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
            customer_id=pl.format("cus_{}", (pl.col("who") + 1).cast(pl.String).str.zfill(6)),
            idempotency_key=pl.format("evt_{}_{}", pl.lit(day), pl.int_range(pl.len())),
            properties=pl.when(pl.col("kind") == 0).then(pl.lit('{"endpoint": "/v1/chat"}'))
            .when(pl.col("kind") == 1)
            .then(pl.format('{{"tokens": {}}}', pl.col("tokens")))
            .when(pl.col("kind") == 2)
            .then(pl.format('{{"user_id": "u{}"}}', pl.col("user")))
            .otherwise(pl.format('{{"gb": {}}}', pl.col("gb"))),
        )
        frame.write_parquet(landing / f"events-{START.date() + timedelta(days=day)}.parquet")
    return {"generate_s": time.perf_counter() - started}


def ingest(folder: Path) -> dict:
    from ingestion.batches import Window, ingest_files
    from pricing_sql.run_catalog import current_catalog
    from storage.duck import connect
    from storage.settings import Settings

    settings = Settings(data_dir=str(folder))
    started = time.perf_counter()
    results = ingest_files(connect(), settings.lake, current_catalog(settings),
                           settings.lake.landing_files(), NOW,
                           Window(max_age=timedelta(days=3650)))
    return {"ingest_s": time.perf_counter() - started,
            "accepted": sum(r.accepted for r in results),
            "rejected": sum(r.rejected for r in results), "rss_mib": rss_mib()}


def floor(folder: Path) -> dict:
    """A plain DuckDB GROUP BY customer_id over the month's event files: the least any
    rating of them could cost."""
    from storage.duck import connect
    from storage.lake import Lake

    files = Lake(folder).all_files("events")
    con = connect()
    started = time.perf_counter()
    con.execute("SELECT customer_id, count(*) FROM read_parquet($files) GROUP BY customer_id",
                {"files": files}).fetchall()
    return {"floor_s": time.perf_counter() - started, "rss_mib": rss_mib()}


def state_part(folder: Path) -> dict:
    """The catalog and state part of a run, alone: read the store into a snapshot kept in
    the lake, build the run's catalog from it, and the month's billing windows."""
    from billing import charges
    from billing.charges import billing_windows
    from billing.gc_pause import gc_paused
    from pricing_sql.run_catalog import billing_catalog, take_snapshot
    from storage.settings import Settings

    settings = Settings(data_dir=str(folder))
    timings = {}
    started = time.perf_counter()
    take_snapshot(settings, MONTH, "bench-state-part")
    timings["snapshot_s"] = time.perf_counter() - started
    started = time.perf_counter()
    catalog = billing_catalog(settings, MONTH, "bench-state-part")
    timings["catalog_s"] = time.perf_counter() - started
    started = time.perf_counter()
    timings["windows"] = len(billing_windows(catalog, MONTH))
    timings["windows_s"] = time.perf_counter() - started
    # The bound: these customers start on a few dates, so most share a calendar; with
    # every subscription's calendar its own (customers who all start on different days)
    # the windows cost this.
    with gc_paused(), mock.patch.object(charges, "_calendar_key",
                                        lambda sub, phases, timezone: (sub.id,)):
        started = time.perf_counter()
        charges._billing_windows(catalog, MONTH)
        timings["unshared_windows_s"] = time.perf_counter() - started
    return timings | {"rss_mib": rss_mib()}


def bill(folder: Path) -> dict:
    """The monthly_billing job for October, in-process as the demo runs it."""
    import dagster as dg

    from assets.resources import OrbStore
    from pipelines.definitions import build_definitions

    defs = build_definitions(OrbStore(data_dir=str(folder), max_event_age_days=3650))
    started = time.perf_counter()
    result = defs.resolve_job_def("monthly_billing").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=MONTH.isoformat(),
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    total = time.perf_counter() - started
    steps = {event.step_key: event.event_specific_data.duration_ms / 1000
             for event in result.all_events if event.event_type_value == "STEP_SUCCESS"}
    return {"success": result.success, "bill_s": total, "steps": steps, "rss_mib": rss_mib()}


def rating_s(billed: dict) -> float:
    """Rating plus drafting: the seconds of the run's first four steps."""
    return sum(billed["steps"].get(step, 0.0)
               for step in ("state_snapshot", "usage", "price", "invoices"))


PHASES = {"ingest": ingest, "floor": floor, "state_part": state_part, "bill": bill}


def run_phase(phase: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", phase, "--dir", str(folder)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, help="keep the data here (default: temporary)")
    parser.add_argument("--reuse", action="store_true",
                        help="--dir holds an ingested lake: time the billing run again")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the billing this many times, each in a new process, "
                        "with the floor measured before and after each; print each run's "
                        "ratio and the median")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args.dir)))
        return
    folder = args.dir or Path(tempfile.mkdtemp(prefix="close-bench-"))
    try:
        report(args.customers, args.events, folder, args.reuse, args.repeat)
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


def report(customers: int, events: int, folder: Path, reuse: bool, repeat: int = 1) -> None:
    print(f"close of {MONTH:%Y-%m}: {customers:,} customers, {events:,} events, in {folder}")
    # its build moves the Python parts' seconds (docs/capacity.md, "The interpreter")
    print(f"  Python {sys.version.split()[0]}: {sys.executable}")
    if reuse:
        ingested = {"ingest_s": float("nan"), "accepted": 0, "rejected": 0,
                    "rss_mib": float("nan")}
        print("  reusing the ingested lake: ingestion not timed again")
    else:
        prepared = setup(folder, customers) | land(folder, customers, events)
        print(f"  prepared: state store filled in {prepared['store_fill_s']:.1f} s, events "
              f"generated in {prepared['generate_s']:.1f} s (not part of the close)")
        ingested = run_phase("ingest", folder)
    # The floor and the billing run in turn, a floor before and after each run, so that
    # both see the machine alike: a run is set against the mean of the floors around it,
    # since the machine's speed drifts within minutes (docs/capacity.md). The table below
    # is the first run's.
    floors = [run_phase("floor", folder)]
    bills = []
    for _ in range(repeat):
        bills.append(run_phase("bill", folder))
        floors.append(run_phase("floor", folder))
    if not all(billed["success"] for billed in bills):
        raise SystemExit("the billing run failed")
    base, billed = floors[0], bills[0]
    state = run_phase("state_part", folder)
    floor_s = statistics.mean(f["floor_s"] for f in floors[:2])
    print(f"  floor: DuckDB GROUP BY customer_id over the lake's event files: {floor_s:.2f} s "
          f"(the mean of {floors[0]['floor_s']:.2f} s before the run and "
          f"{floors[1]['floor_s']:.2f} s after)")
    print(f"  {'stage':<28}{'seconds':>9}{'x floor':>9}")
    print(f"  {'ingest':<28}{ingested['ingest_s']:>9.1f}{ingested['ingest_s'] / floor_s:>9.1f}"
          f"   ({ingested['accepted']:,} accepted, {ingested['rejected']:,} rejected)")
    for step, seconds in billed["steps"].items():
        print(f"  {step:<28}{seconds:>9.1f}{seconds / floor_s:>9.1f}")
    rating = rating_s(billed)
    close = ingested["ingest_s"] + billed["bill_s"]
    state_s = state["snapshot_s"] + state["catalog_s"] + state["windows_s"]
    print(f"  rating plus drafting (state_snapshot, usage, price, invoices): {rating:.2f} s, "
          f"{rating / floor_s:.1f}x the floor")
    if repeat > 1:
        ratios = []
        for n, bill_run in enumerate(bills):
            before, after = floors[n]["floor_s"], floors[n + 1]["floor_s"]
            ratios.append(rating_s(bill_run) / statistics.mean((before, after)))
            print(f"    run {n + 1}: floors {before:.2f} / {after:.2f} s, rating plus drafting "
                  f"{rating_s(bill_run):.2f} s = {ratios[-1]:.1f}x")
        print(f"    median of {repeat}: {statistics.median(ratios):.1f}x the floor")
    print(f"  the billing run: {billed['bill_s']:.1f} s; the close (ingest + billing run): "
          f"{close:.1f} s")
    print(f"  catalog and state part, measured alone: snapshot {state['snapshot_s']:.2f} s, "
          f"catalog models {state['catalog_s']:.2f} s, {state['windows']:,} billing windows "
          f"{state['windows_s']:.2f} s = {state_s:.2f} s, {100 * state_s / close:.1f}% of "
          "the close")
    bound = state_s - state["windows_s"] + state["unshared_windows_s"]
    print(f"  the same with no calendar shared: billing windows "
          f"{state['unshared_windows_s']:.2f} s, {bound:.2f} s, {100 * bound / close:.1f}% of "
          "the close")
    print(f"  peak RSS: ingest {ingested['rss_mib']:,.0f} MiB, floor {base['rss_mib']:,.0f} MiB, "
          f"state part {state['rss_mib']:,.0f} MiB, billing run {billed['rss_mib']:,.0f} MiB")


if __name__ == "__main__":
    main()
