"""The API's on-demand reads under load of data: ``fetch upcoming invoice``, ``customer
costs`` and a price's ``evaluate`` for random customers, through Orb's SDK, against
``orb serve`` run as its own process over a lake of N customers and M events
(docs/capacity.md#the-api).

    .venv/bin/python bench/api_bench.py --customers 10000 --events 1000000
    .venv/bin/python bench/api_bench.py --customers 10000 --events 100000000   # the target

The state store and the events come from bench/close_bench.py's generator (the sample
catalog's plans, customers shaped like the demo's), except that the events fall in the
current month's complete days (UTC), so that they are the current billing period's:
each request rates its customer over the period under way, as of the real clock. Prints
p50 and p99 of each call, the machine's load average before and after, and how many of
the event files' row groups DuckDB reads for one customer (its profile): the lake
is the product's, as ingestion writes it (each batch's day files clustered by customer,
docs/lake.md#events-clustered-by-customer); to compare with another layout, prepare it
with another commit's code (``PYTHONPATH``). ``--dir`` keeps the data (default: a
temporary folder, removed); ``--reuse`` times a kept one again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orb
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
import close_bench  # noqa: E402  (the generator, a sibling script)

from tests.servers import free_port, wait_until_listening  # noqa: E402

BATCH_EVENTS = 5_000_000


def prepare(folder: Path, customers: int, events: int, now: datetime,
            batch_events: int = BATCH_EVENTS) -> None:
    """close_bench's store and events, the events over this month's complete UTC days,
    landed in files of at most ``batch_events`` events (each ingested as one batch)."""
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    close_bench.START = first
    close_bench.DAYS = max((now - first).days, 1)
    close_bench.NOW = now
    prepared = close_bench.setup(folder, customers) | close_bench.land(folder, customers, events)
    split_landing(folder / "landing", batch_events)
    ingested = close_bench.ingest(folder)
    print(f"  prepared: store {prepared['store_fill_s']:.1f} s, {events:,} events over "
          f"{close_bench.DAYS} day(s) from {first:%Y-%m-%d} generated in "
          f"{prepared['generate_s']:.1f} s, ingested in {ingested['ingest_s']:.1f} s "
          f"({ingested['accepted']:,} accepted, {ingested['rejected']:,} rejected)")


def split_landing(landing: Path, batch_events: int) -> None:
    """Cut each landed day file into files of at most ``batch_events`` events, read a
    slice at a time (a 33M-event day is not one batch's worth of memory)."""
    for path in sorted(landing.glob("*.parquet")):
        source = pq.ParquetFile(path)
        if source.metadata.num_rows <= batch_events:
            continue
        for part, rows in enumerate(source.iter_batches(batch_size=batch_events)):
            pq.write_table(pa.Table.from_batches([rows]), path.with_name(
                f"{path.stem}-{part:03d}.parquet"))
        path.unlink()


def active_subscriptions(folder: Path, now: datetime) -> dict[str, tuple[str, str]]:
    """Customer id -> a subscription with a billing period under way (upcoming invoice
    needs one), and a usage price of its plan today (to evaluate)."""
    from api.views import View, current_period, plan_on
    from billing.catalog import Catalog
    from pricing_sql.run_catalog import current_catalog
    from storage.settings import Settings

    catalog = current_catalog(Settings(data_dir=str(folder)))
    view = View(Catalog.model_construct(metrics=catalog.metrics, plans=catalog.plans,
                                        coupons=catalog.coupons),
                catalog.customers, catalog.subscriptions, {}, now, now)
    customers = {c.id: c for c in catalog.customers}
    active = {}
    for sub in catalog.subscriptions:
        if current_period(view, sub, customers[sub.customer_id]) is None:
            continue
        plan, version = plan_on(view, sub, now.date())
        usage = [p.id for p in plan.version(version).prices if p.billable_metric_id] if plan else []
        if usage:
            active[sub.customer_id] = (sub.id, usage[0])
    return active


def scanned_row_groups(folder: Path, customer_ids: list[str]) -> tuple[int, float]:
    """The event files' row groups, and the share of them DuckDB reads for a customer's
    events through the API's engine (its detailed profile's count), averaged over
    ``customer_ids``."""
    from pricing_sql.customer_rating import CustomerEngine
    from storage.lake import Lake

    lake, profile = Lake(folder), folder / "scan-profile.json"
    files = lake.all_files("events")
    shares, total = [], 0
    for customer_id in customer_ids:
        engine = CustomerEngine(customer_id)
        engine.register_active_events(lake, files)
        engine.con.execute("SET enable_profiling = 'json'")
        engine.con.execute("SET profiling_mode = 'detailed'")
        engine.con.execute("SET profiling_output = $path", {"path": str(profile)})
        engine.con.sql("SELECT sum(source_row) FROM lake_events").fetchall()
        engine.con.execute("SET enable_profiling = 'no_output'")
        nodes = json.loads(profile.read_text())["operator"]
        while nodes and nodes[0].get("name") != "PARQUET_SCAN":
            nodes = [child for node in nodes for child in node.get("children", [])]
        total = nodes[0]["total_row_groups_to_scan"]
        shares.append(nodes[0]["row_groups_scanned"] / total)
    return total, statistics.fmean(shares)


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"p50 {statistics.median(ordered):.3f} s, p99 {p99:.3f} s, "
            f"max {ordered[-1]:.3f} s ({len(ordered)} calls)")


@contextmanager
def served(folder: Path, role: str) -> Iterator[orb.Orb]:
    """``orb serve`` on ``folder`` in its own process, and Orb's SDK on it with a new key
    of ``role``; the server is stopped when the block ends."""
    key = subprocess.run(
        [sys.executable, "-m", "cli.main", "keys", "create", "--role", role,
         "--data-dir", str(folder)], check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]
    port = free_port()
    log = folder / "serve.log"
    with open(log, "wb") as output:
        server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--data-dir",
                                   str(folder), "--port", str(port)],
                                  stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_listening(port, server, "orb serve", log.read_text)
        yield orb.Orb(api_key=key, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0,
                      timeout=120)
    finally:
        server.terminate()
        server.wait(timeout=30)


def serve_and_time(folder: Path, requests: int, seed: int, now: datetime) -> None:
    with served(folder, "read_only") as client:
        active = active_subscriptions(folder, now)
        chosen = random.Random(seed).sample(sorted(active), min(requests, len(active)))
        groups, read = scanned_row_groups(folder, chosen[:20])
        print(f"  event files: {groups:,} row groups; DuckDB reads {100 * read:.1f}% of "
              f"them for a customer's events (its profile, 20 customers)")
        client.customers.costs.list(chosen[0])  # the first request warms the process
        load_before = os.getloadavg()
        costs, upcoming, evaluations = [], [], []
        month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        for customer_id in chosen:
            subscription_id, price_id = active[customer_id]
            started = time.perf_counter()
            client.customers.costs.list(customer_id)
            costs.append(time.perf_counter() - started)
            started = time.perf_counter()
            client.invoices.fetch_upcoming(subscription_id=subscription_id)
            upcoming.append(time.perf_counter() - started)
            started = time.perf_counter()
            client.prices.evaluate(price_id, customer_id=customer_id, timeframe_start=month,
                                   timeframe_end=now)
            evaluations.append(time.perf_counter() - started)
        load_after = os.getloadavg()
        print(f"  customer costs (the period so far, day by day): {percentiles(costs)}")
        print(f"  upcoming invoice:                                {percentiles(upcoming)}")
        print(f"  a usage price evaluated (the month so far):      {percentiles(evaluations)}")
        print(f"  load average (1, 5, 15 min) before {', '.join(f'{v:.2f}' for v in load_before)}"
              f"; after {', '.join(f'{v:.2f}' for v in load_after)}; {os.cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="customers asked, each "
                        "for its costs and its upcoming invoice")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--dir", type=Path, help="keep the data here (default: temporary)")
    parser.add_argument("--reuse", action="store_true", help="--dir holds a prepared lake")
    parser.add_argument("--batch-events", type=int, default=BATCH_EVENTS, help="land the "
                        "events in files (batches) of at most this many")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="api-bench-"))
    now = datetime.now(UTC)
    print(f"API reads: {args.customers:,} customers, {args.events:,} events, in {folder}")
    try:
        if not args.reuse:
            prepare(folder, args.customers, args.events, now, args.batch_events)
        serve_and_time(folder, args.requests, args.seed, now)
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
