"""The delay from a usage batch to its alert events (docs/capacity.md#alerts): N customers
and M events in the lake (bench/api_bench.py's preparation: close_bench's generator, the
events over this month's complete UTC days), usage alerts on A of the customers with a
threshold 5 calls above their usage so far, then one batch of 10 calls for each of them
and ``--noise`` calls spread over every customer, ingested as the ingestion job ingests
it and followed by its alerts' evaluation, as the job's next op runs it; then 40 of the
alerts re-thresholded and 10 calls for each of their customers sent to ``orb serve`` as
one ``POST /v1/ingest``, whose background task evaluates them after the answer.

    .venv/bin/python bench/alerts_bench.py --customers 10000 --events 1000000 --alerted 100

Prints the batch's ingestion, its evaluation (the customers it touched, the alerts among
them), the delay from the batch's commit (its ``batches`` record) to the newest of its
alert events in the outbox, a whole evaluation of every alert (the daily refresh's), and
the time from the API's answer to its alert events in the outbox.
``--dir`` keeps the data (default: a temporary folder, removed); ``--reuse`` runs on a
kept one again (its alerts are created once).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
import api_bench  # noqa: E402  (the preparation, a sibling script)

METRIC = "api_requests"


def create_alerts(folder: Path, alerted: int, seed: int, now: datetime) -> int:
    """Usage alerts on ``alerted`` random customers billed for METRIC in the period under
    way, each at their usage so far + 5; how many were created."""
    from pricing_sql.run_catalog import current_catalog
    from state import StateStore
    from state import alerts as stored
    from storage.settings import Settings
    from webhooks.alert_values import subscription_periods

    settings = Settings(data_dir=str(folder))
    catalog = current_catalog(settings)
    customers = {c.id: c for c in catalog.customers}
    active = api_bench.active_subscriptions(folder, now)
    # twice as many as wanted, rated in one pass: some plans do not bill METRIC
    picked = random.Random(seed).sample(sorted(active), min(2 * alerted, len(active)))
    invoices, _ = subscription_periods(settings.lake, catalog, {
        (active[c], None): customers[c] for c in picked}, now)
    chosen = [c for c in picked if METRIC in getattr(invoices.get((active[c], None)),
                                                     "usage", {})][:alerted]
    with StateStore.open(settings.state_store_url) as store:
        for customer_id in chosen:
            usage = invoices[(active[customer_id], None)].usage[METRIC]
            stored.create(store.engine, stored.NewAlert(
                f"alert_bench_{customer_id}", "usage_exceeded",
                subscription_id=active[customer_id], metric_id=METRIC),
                [usage + 5], {METRIC}, "bench", now)
    return len(chosen)


def the_batch(folder: Path, alerted: list[str], customers: int, noise: int,
              at: datetime) -> Path:
    rows = [{"event_name": "api_request", "timestamp": at.isoformat(), "customer_id": c,
             "idempotency_key": f"bench-{c}-{at.timestamp()}-{i}", "properties": {}}
            for c in alerted for i in range(10)]
    rng = random.Random(at.timestamp())
    rows += [{"event_name": "api_request", "timestamp": at.isoformat(),
              "customer_id": f"cus_{rng.randrange(customers) + 1:06d}",
              "idempotency_key": f"bench-noise-{at.timestamp()}-{i}", "properties": {}}
             for i in range(noise)]
    path = folder / f"alert-batch-{at:%H%M%S}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(folder: Path, customers: int, noise: int) -> None:

    from ingestion.batches import Window, ingest_files
    from pricing_sql.run_catalog import current_catalog
    from state import StateStore
    from state import alerts as stored
    from storage.duck import connect
    from storage.settings import Settings
    from webhooks.alerts import after_batches, evaluate

    settings = Settings(data_dir=str(folder))
    with StateStore.open(settings.state_store_url) as store:
        alerted = sorted({a.customer_id for a in stored.read(store.engine, enabled_only=True)})
    now = datetime.now(UTC)
    path = the_batch(folder, alerted, customers, noise, now - timedelta(minutes=1))
    started = time.perf_counter()
    (result,) = ingest_files(connect(), settings.lake, current_catalog(settings), [path],
                             now, Window())
    ingested = time.perf_counter() - started
    committed = datetime.now(UTC)  # ingest_files returns once the batch is committed
    started = time.perf_counter()
    done = after_batches(settings, [result.batch_id], datetime.now(UTC))
    evaluated = time.perf_counter() - started
    # the events were committed in the evaluation's one transaction, before it returned
    in_outbox = datetime.now(UTC)
    print(f"  batch: {result.accepted:,} calls ({10 * len(alerted):,} for the alerted "
          f"customers, {noise:,} spread over all) ingested in {ingested:.2f} s")
    print(f"  its alerts: {done.alerts} evaluated, {done.events} events, "
          f"{len(done.failures)} failures, in {evaluated:.2f} s")
    print(f"  delay from the batch's commit to its last alert event in the outbox: "
          f"{(in_outbox - committed).total_seconds():.2f} s")
    started = time.perf_counter()
    everything = evaluate(settings, datetime.now(UTC))
    print(f"  every alert again (the daily refresh's evaluation): {everything.alerts} "
          f"evaluated, {everything.events} new events, in {time.perf_counter() - started:.2f} s")


def through_the_api(folder: Path, count: int) -> None:
    """``count`` of the alerts re-thresholded at their usage now + 5, then one ``POST
    /v1/ingest`` of 10 calls for each of their customers to ``orb serve`` (its own
    process): the time from the answer to the last of their events in the outbox, which
    the request's background task appends after answering."""

    import sqlalchemy as sa

    from pricing_sql.run_catalog import current_catalog
    from state import StateStore, schema
    from state import alerts as stored
    from state.database import reading
    from storage.settings import Settings
    from webhooks.alert_values import subscription_periods

    settings = Settings(data_dir=str(folder))
    now = datetime.now(UTC)
    catalog = current_catalog(settings)
    customers = {c.id: c for c in catalog.customers}
    with StateStore.open(settings.state_store_url) as store:
        every = stored.read(store.engine)
        alerted = {a.customer_id for a in every}
        chosen = [a for a in every if a.enabled][:count]
        invoices, _ = subscription_periods(settings.lake, catalog, {
            (a.subscription_id, None): customers[a.customer_id] for a in chosen}, now)
        for alert in chosen:
            usage = invoices[(alert.subscription_id, None)].usage[METRIC]
            stored.change(store.engine, alert.alert_id, "bench", now, thresholds=[usage + 5])

    def told() -> int:
        with StateStore.open(settings.state_store_url) as store, \
                reading(store.engine) as con:
            t = schema.outbox_events
            return con.execute(sa.select(sa.func.count()).where(
                t.c.type == "subscription.usage_exceeded")).scalar() or 0

    with api_bench.served(folder, "billing_operator") as client:
        at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        quiet = next(c for c in sorted(customers) if c not in alerted)
        client.events.ingest(events=[{  # the first request warms the process
            "event_name": "api_request", "timestamp": at, "customer_id": quiet,
            "idempotency_key": f"api-warm-{at}", "properties": {}}])
        before = told()
        events = [{"event_name": "api_request", "timestamp": at, "customer_id": a.customer_id,
                   "idempotency_key": f"api-{a.alert_id}-{at}-{i}", "properties": {}}
                  for a in chosen for i in range(10)]
        started = time.perf_counter()
        client.events.ingest(events=events)
        answered = time.perf_counter()
        while told() < before + len(chosen) and time.perf_counter() - answered < 300:
            time.sleep(0.02)
        seen = time.perf_counter()
        print(f"  POST /v1/ingest of {len(events)} calls for {len(chosen)} alerted customers: "
              f"answered in {answered - started:.2f} s; {told() - before} alert events in "
              f"the outbox {seen - answered:.2f} s after the answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--alerted", type=int, default=100)
    parser.add_argument("--noise", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="orb-alerts-bench-"))
    now = datetime.now(UTC)
    print(f"alerts: {args.customers:,} customers, {args.events:,} events, load "
          f"{os.getloadavg()[0]:.1f}, in {folder}")
    try:
        if not args.reuse:
            folder.mkdir(parents=True, exist_ok=True)
            api_bench.prepare(folder, args.customers, args.events, now)
            started = time.perf_counter()
            made = create_alerts(folder, args.alerted, args.seed, now)
            print(f"  {made} usage alerts created in {time.perf_counter() - started:.1f} s")
        run(folder, args.customers, args.noise)
        through_the_api(folder, min(args.alerted, 40))  # Orb's 500 events a request
        print(f"  load after: {os.getloadavg()[0]:.1f}")
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
