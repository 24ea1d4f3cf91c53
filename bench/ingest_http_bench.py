"""HTTP ingestion under load (docs/capacity.md#http-ingestion): ``orb serve`` as its own
process over a state store of N customers, C client processes each sending batches of
500 events to ``POST /v1/ingest`` for D seconds, over keep-alive connections.

    nice -n 5 .venv/bin/python bench/ingest_http_bench.py --seconds 30

Phase 1 prints the events/s acknowledged, p50/p99/max request latency, the landing
backlog each second (the age of the oldest event not yet landed), and the landing
delay: from the last acknowledgement to every acknowledged event committed in the lake
(the batch records' accepted counts). ``--rate`` paces the clients to offer that many
events a second together (default: each sends its next request once answered).

Phase 2 sends again, ``kill -9``s the server mid-stream, restarts it, and checks that
every acknowledged key is in the lake exactly once (and that no key is there twice).
Each client builds its bodies before the clock starts (from a serialized template: only
keys, customers and the timestamp change), for up to ``PREBUILT_RATE`` requests a
second, then builds on the fly: building a body costs 2.5 ms, a quarter of a core at
50,000 events/s that the server would otherwise not get (the clients share the machine's
2 cores with it; an application's would not).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
import close_bench  # noqa: E402  (the store's generator, a sibling script)

from tests.servers import free_port, wait_until_listening  # noqa: E402

BATCH = 500
PREBUILT_RATE = 25  # requests a second per client built ahead: 8 x 25 x 500 = 100,000 events/s
EVENT = ('{"event_name":"api_request","timestamp":"%s","customer_id":"cus_%06d",'
         '"idempotency_key":"%s","properties":{"tokens":%d,"region":"eu"}}')


def body(prefix: str, request: int, customers: int, rng: random.Random, ts: str) -> bytes:
    events = ",".join(EVENT % (ts, rng.randrange(1, customers + 1), f"{prefix}-{request}-{i}",
                               rng.randrange(1000)) for i in range(BATCH))
    return ('{"events":[' + events + "]}").encode()


def client(port: int, key: str, prefix: str, customers: int, ready: Barrier, seconds: float,
           rate: float | None, results: mp.Queue) -> None:
    """Build the bodies, wait for the others (``ready``), then send requests for
    ``seconds`` (or until the server goes), at most ``rate`` a second (None: as fast as
    answered); put the numbers of the requests answered 200 and their latencies."""
    rng = random.Random(prefix)
    ts = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    acked, latencies, failed, request = [], [], 0, 0
    built = [body(prefix, n, customers, rng, ts) for n in range(int(seconds * PREBUILT_RATE))]
    ready.wait()
    start = time.time()
    while time.time() < start + seconds:
        if rate is not None:  # request n goes at n / rate, or late if answers lag
            time.sleep(max(0.0, start + request / rate - time.time()))
        upcoming = (built[request] if request < len(built)
                    else body(prefix, request, customers, rng, ts))
        sent = time.perf_counter()
        try:
            connection.request("POST", "/v1/ingest", upcoming, headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            break  # the server was killed
        latencies.append(time.perf_counter() - sent)
        if response.status == 200:
            acked.append(request)
        else:
            failed += 1
        request += 1
    results.put((prefix, acked, latencies, failed, time.time()))


def run_clients(port: int, key: str, phase: str, clients: int, customers: int,
                seconds: float, kill: subprocess.Popen | None = None, rate: float | None = None,
                watch: threading.Thread | None = None,
                ) -> tuple[dict[str, list[int]], list[float], int, float, float]:
    """The clients' acknowledged requests by prefix, latencies, failures, seconds sent and
    the last answer's time. ``kill``: that server is killed -9 halfway. ``rate``: events
    a second offered by all clients together (None: as fast as answered). ``watch``:
    started once the clients have built their bodies and start sending."""
    per_client = None if rate is None else rate / clients / BATCH
    results: mp.Queue = mp.Queue()
    ready = mp.Barrier(clients + 1)
    processes = [mp.Process(target=client, args=(port, key, f"{phase}{n}", customers, ready,
                                                 seconds, per_client, results))
                 for n in range(clients)]
    for process in processes:
        process.start()
    ready.wait()
    start = time.time()
    if watch is not None:
        watch.start()
    if kill is not None:
        time.sleep(max(0.0, start + seconds / 2 - time.time()))
        os.kill(kill.pid, signal.SIGKILL)
        kill.wait()
    gathered = [results.get() for _ in processes]
    for process in processes:
        process.join()
    acked = {prefix: requests for prefix, requests, _, _, _ in gathered}
    latencies = [s for _, _, seconds_, _, _ in gathered for s in seconds_]
    last = max(at for *_, at in gathered)
    return acked, latencies, sum(f for _, _, _, f, _ in gathered), last - start, last


class BacklogWatch(threading.Thread):
    """Each second, the age of the oldest event not yet landed: the oldest segment left
    in the buffer (its name's stamp is when its first event was appended; a segment is
    deleted once landed). Bounded, landing keeps up; growing, it falls behind."""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.buffer, self.stopped = folder / "ingest_buffer", threading.Event()
        self.ages: list[float] = []

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            stamps = [int(p.name.split("-")[1]) for p in self.buffer.glob("api-*")]
            self.ages.append(time.time() - min(stamps) / 1e9 if stamps else 0.0)

    def summary(self) -> str:
        self.stopped.set()
        self.join()
        worst = max(range(len(self.ages)), key=self.ages.__getitem__)
        return (f"oldest event not yet landed, sampled each second: median "
                f"{statistics.median(self.ages):.1f} s, max {self.ages[worst]:.1f} s "
                f"({worst + 1} s into the run), at the end {self.ages[-1]:.1f} s")


def warm_up(port: int, key: str, customers: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    ts = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    connection.request("POST", "/v1/ingest", body("warm", 0, customers, random.Random(0), ts),
                       {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    assert connection.getresponse().status == 200


def serve(folder: Path, port: int, flush: str) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(folder / "dagster_home"),
           "ORB_INGEST_FLUSH_SECONDS": flush}
    with open(folder / "serve.log", "ab") as output:
        server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--data-dir",
                                   str(folder), "--port", str(port)], env=env,
                                  stdout=output, stderr=subprocess.STDOUT)
    wait_until_listening(port, server, "orb serve", (folder / "serve.log").read_text)
    return server


def committed_events(folder: Path) -> int:
    """Events of committed batches (their records' rows: accepted or quarantined)."""
    import duckdb

    records = sorted((folder / "lake" / "batches").glob("batch_id=*/data.parquet"))
    if not records:
        return 0
    return int(duckdb.sql("SELECT coalesce(sum(rows), 0) FROM read_parquet($files)",
                          params={"files": [str(r) for r in records]}).fetchall()[0][0])


def wait_landed(folder: Path, expected: int, timeout: float = 600) -> float:
    started = time.time()
    while committed_events(folder) < expected:
        if time.time() - started > timeout:
            raise RuntimeError(f"{committed_events(folder)} of {expected} events landed")
        time.sleep(0.05)
    return time.time()


def key_counts(folder: Path, phase: str) -> dict[str, int]:
    import duckdb

    files = [str(p) for p in (folder / "lake" / "events").rglob("*.parquet")]
    return dict(duckdb.sql(
        "SELECT idempotency_key, count(*) FROM read_parquet($files) "
        "WHERE starts_with(idempotency_key, $phase) GROUP BY 1",
        params={"files": files, "phase": phase}).fetchall())


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms ({len(ordered)} requests)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--kill-seconds", type=float, default=10)
    parser.add_argument("--flush", default="1", help="ORB_INGEST_FLUSH_SECONDS")
    parser.add_argument("--rate", type=float,
                        help="events/s the clients offer together (default: as fast as answered)")
    parser.add_argument("--dir", type=Path, help="keep the data here")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="orb-ingest-http-"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster_home").mkdir(exist_ok=True)
    try:
        close_bench.setup(folder, args.customers)
        key = subprocess.run(
            [sys.executable, "-m", "cli.main", "keys", "create", "--role", "billing_operator",
             "--data-dir", str(folder)], check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]
        port = free_port()
        print(f"orb serve over {args.customers:,} customers, {args.clients} client processes, "
              f"batches of {BATCH}, ORB_INGEST_FLUSH_SECONDS={args.flush}, "
              f"offering {f'{args.rate:,.0f} events/s' if args.rate else 'as fast as answered'}, "
              f"load {os.getloadavg()[0]:.1f}")
        server = serve(folder, port, args.flush)
        try:
            warm_up(port, key, args.customers)  # FastAPI builds its routes on the first
            backlog = BacklogWatch(folder)
            acked, latencies, failed, seconds, last = run_clients(
                port, key, "a", args.clients, args.customers, args.seconds, rate=args.rate,
                watch=backlog)
            events = sum(len(r) for r in acked.values()) * BATCH
            print(f"phase 1: {events:,} events acknowledged in {seconds:.1f} s = "
                  f"{events / seconds:,.0f} events/s ({failed} requests failed)")
            print(f"  latency {percentiles(latencies)}")
            print(f"  landing backlog: {backlog.summary()}")
            landed = wait_landed(folder, events + BATCH)
            print(f"  landing delay: every acknowledged event committed {landed - last:.2f} s "
                  f"after the last answer")
            acked, _, _, _, _ = run_clients(port, key, "b", args.clients, args.customers,
                                            args.kill_seconds, kill=server)
        finally:
            server.terminate()
            server.wait(timeout=120)
        keys = {f"{prefix}-{request}-{i}" for prefix, requests in acked.items()
                for request in requests for i in range(BATCH)}
        print(f"phase 2: killed -9 after {args.kill_seconds / 2:.0f} s, "
              f"{len(keys):,} events acknowledged")
        server = serve(folder, port, args.flush)
        try:
            started = time.time()
            wait_landed(folder, committed_events(folder))  # the restart's recovery...
            while any((folder / "ingest_buffer").glob("api-*")):
                time.sleep(0.05)
            print(f"  restarted: the buffer was landed {time.time() - started:.2f} s after "
                  "the server listened again")
        finally:
            server.terminate()
            server.wait(timeout=120)
        counts = key_counts(folder, "b")
        missing = [k for k in keys if k not in counts]
        doubled = [k for k, n in counts.items() if n > 1]
        print(f"  in the lake: {sum(counts.values()):,} events of phase 2, "
              f"{sum(1 for k in keys if counts.get(k) == 1):,} acknowledged keys exactly once, "
              f"{len(missing)} acknowledged keys missing, {len(doubled)} keys doubled, "
              f"{len(set(counts) - keys)} unacknowledged keys landed (at most once)")
        print(json.dumps({"events_per_s": round(events / seconds), "missing": len(missing),
                          "doubled": len(doubled)}))
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
