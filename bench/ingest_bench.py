"""Ingest N generated events and time ingestion, dedup and metric aggregation.

    .venv/bin/python bench/ingest_bench.py --events 10000000 --files 10 [--format jsonl]
        [--resend 0.01]

Generates N events for 10,000 customers in F files of the chosen format (into
--dir, default bench_data/, which is not committed); with --resend, that share of
each file after the first repeats events of the file before (a producer retrying), so
ingestion must find them as duplicates. It ingests the files with the pipeline's batch
ingestion, in a fresh process as `orb ingest` or a Dagster run would (not in this one,
whose memory the generator has just churned), then over the resulting lake times:

- scan floor: ``SELECT sum(source_row)`` over the event files, the least any query
  that reads every event can cost;
- dedup: finding every (customer_id, idempotency_key) that occurs more than once the
  way ingestion does (hashes the key index holds for two batches, then an exact
  comparison of those events), and, for comparison, by grouping every key string;
- aggregate: a sum metric and a count metric per customer, as rating does;

and prints events/s for each and the ratio of dedup + aggregate to the scan floor.
Set ORB_DUCKDB_MEMORY_LIMIT to cap DuckDB's memory (it spills to disk beyond it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from billing.catalog import Catalog
from ingestion.batches import Window, ingest_files
from ingestion.key_index import KeyIndex
from storage.duck import connect
from storage.lake import Lake

CUSTOMERS = 10_000
START = datetime(2026, 10, 1, tzinfo=UTC)
SPAN_US = 30 * 24 * 3600 * 1_000_000

# Duplicates the way ingestion finds them: hashes the key index holds for more than one
# batch name the batches to compare; only their events with those hashes are compared.
DEDUP_CANDIDATES = """
SELECT count(*) FROM (
    SELECT customer_id, idempotency_key FROM read_parquet($files)
    WHERE hash(customer_id, idempotency_key) IN (SELECT unnest($hashes))
    GROUP BY ALL HAVING count(*) > 1
)
"""
# For comparison: every (customer, key) string pair compared with every other.
DEDUP_FULL = """
SELECT count(*) FROM (
    SELECT customer_id, idempotency_key FROM read_parquet($files)
    GROUP BY ALL HAVING count(*) > 1
)
"""
AGGREGATE = """
SELECT count(*) FROM (
    SELECT customer_id,
           sum(CAST(properties ->> '$.tokens' AS DECIMAL(38, 9)))
               FILTER (WHERE event_name = 'completion') AS tokens,
           count(*) FILTER (WHERE event_name = 'api_request') AS calls
    FROM read_parquet($files)
    GROUP BY customer_id
)
"""
FLOOR = "SELECT sum(source_row) FROM read_parquet($files)"


def catalog() -> Catalog:
    return Catalog.model_validate({
        "metrics": [{"id": "tokens", "name": "Tokens", "sql": "SELECT sum(properties.tokens) "
                     "FROM events WHERE event_name = 'completion'"}],
        "customers": [{"id": f"c{i}", "name": f"c{i}"} for i in range(CUSTOMERS)],
    })


def generate(folder: Path, events: int, files: int, fmt: str, resend: float = 0.0,
             seed: int = 7) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_file = events // files
    paths, previous = [], None
    for index in range(files):
        n = per_file if index < files - 1 else events - per_file * (files - 1)
        offset = index * per_file
        frame = pl.DataFrame({
            "who": rng.integers(0, CUSTOMERS, size=n),
            "at": rng.integers(0, SPAN_US, size=n),
            "kind": rng.random(size=n) < 0.5,
            "tokens": rng.integers(1, 4000, size=n),
        }).select(
            event_name=pl.when(pl.col("kind")).then(pl.lit("completion"))
            .otherwise(pl.lit("api_request")),
            timestamp=(pl.lit(START) + pl.duration(microseconds=pl.col("at")))
            .dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
            customer_id=pl.format("c{}", pl.col("who")),
            idempotency_key=pl.format("k{}", pl.int_range(pl.len()) + offset),
            tokens=pl.col("tokens"),
        )
        if previous is not None and resend:
            repeated = int(n * resend)
            frame = pl.concat([previous.head(repeated), frame.slice(repeated)])
        previous = frame
        path = folder / f"batch-{index:04d}.{'parquet' if fmt == 'parquet' else 'jsonl'}"
        if fmt == "parquet":
            frame.with_columns(properties=pl.format('{{"tokens": {}}}', pl.col("tokens"))) \
                .drop("tokens").write_parquet(path)
        else:
            frame.with_columns(properties=pl.struct("tokens")).drop("tokens").write_ndjson(path)
        paths.append(path)
    return paths


def dedup_indexed(con, lake: Lake) -> int:
    """Duplicate keys across batches, found through the key index."""
    batches, hashes = KeyIndex(lake).shared()
    if not len(hashes):
        return 0
    files = sorted(str(f) for batch in batches for f in lake.batch_files("events", batch))
    return con.execute(DEDUP_CANDIDATES, {"files": files, "hashes": hashes.tolist()}).fetchone()[0]


def timed(con, sql: str, **params) -> float:
    started = time.perf_counter()
    con.execute(sql, params).fetchall()
    return time.perf_counter() - started


def ingest(lake: Lake, sources: list[Path], events: int) -> None:
    started = time.perf_counter()
    results = ingest_files(connect(), lake, catalog(), sources,
                           START + timedelta(days=31), Window(max_age=timedelta(days=3650)))
    ingest_s = time.perf_counter() - started
    print(f"ingest:     {ingest_s:8.1f} s  {events / ingest_s:12,.0f} events/s  "
          f"({sum(r.accepted for r in results):,} accepted, "
          f"{sum(r.duplicates for r in results):,} duplicates, "
          f"{sum(r.rejected for r in results):,} rejected in all)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
    parser.add_argument("--resend", type=float, default=0.0,
                        help="share of each file after the first repeating the file before")
    parser.add_argument("--dir", type=Path, default=Path("bench_data"))
    parser.add_argument("--measure-only", action="store_true",
                        help="skip generating and ingesting: measure the lake in --dir")
    parser.add_argument("--ingest-only", action="store_true",
                        help="only ingest the files generated in --dir (how the bench runs "
                             "the ingestion, in a process of its own)")
    args = parser.parse_args()

    lake = Lake(args.dir / "lake")
    if args.ingest_only:
        ingest(lake, sorted((args.dir / "sources").iterdir()), args.events)
        return
    if not args.measure_only:
        shutil.rmtree(args.dir, ignore_errors=True)
        started = time.perf_counter()
        sources = generate(args.dir / "sources", args.events, args.files, args.format,
                           args.resend)
        print(f"generated {args.events:,} events in {args.files} {args.format} files "
              f"({sum(p.stat().st_size for p in sources) / 1e9:.2f} GB) "
              f"in {time.perf_counter() - started:.1f} s", flush=True)
        os.sync()  # the generated files' write-back is not the ingestion's
        subprocess.run([sys.executable, __file__, "--ingest-only", "--events", str(args.events),
                        "--dir", str(args.dir)], check=True)

    files = lake.all_files("events")
    con = connect()
    events = con.execute("SELECT count(*) FROM read_parquet($f)", {"f": files}).fetchone()[0]
    floor_s = min(timed(con, FLOOR, files=files) for _ in range(2))
    started = time.perf_counter()
    duplicates = dedup_indexed(con, lake)
    dedup_s = time.perf_counter() - started
    full_s = timed(con, DEDUP_FULL, files=files)
    aggregate_s = timed(con, AGGREGATE, files=files)
    for label, seconds in (("scan floor", floor_s), ("dedup", dedup_s),
                           ("dedup, full", full_s), ("aggregate", aggregate_s)):
        print(f"{label + ':':12}{seconds:8.2f} s  {events / seconds:12,.0f} events/s")
    print(f"duplicate keys found: {duplicates}")
    print(f"dedup + aggregate = {(dedup_s + aggregate_s) / floor_s:.1f} x the scan floor "
          f"({(full_s + aggregate_s) / floor_s:.1f} x comparing every key in full)")


if __name__ == "__main__":
    main()
