"""Dispatch throughput: N outbox events over C customers posted, signed, to a receiver on
loopback (uvicorn in its own process, answering 204), in one dispatcher pass; prints
events/s. The outbox is filled before the clock starts; the pass includes reading the
plan, claiming lanes, signing, posting and recording every attempt. Then it times what
the sensor pays on each tick once all of that history is delivered (`due_lanes`).

    .venv/bin/python bench/webhooks_bench.py [--events 100000] [--customers 10000]
        [--concurrency 8] [--signature-style standard|orb] [--url URL]

Without --url, a SQLite state store in a temporary folder.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

COUNT = 0


async def receiver(scope, receive, send):  # the receiver process's ASGI app
    global COUNT
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["method"] == "POST":
        COUNT += 1
        body = b""
    else:  # GET: how many posts arrived
        body = str(COUNT).encode()
    await send({"type": "http.response.start", "status": 204 if not body else 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    from state import StateStore, outbox
    from state.database import writing
    from state.outbox import OutboxEvent
    from webhooks import dispatch, endpoints

    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--signature-style", choices=("standard", "orb"), default="standard")
    parser.add_argument("--url")
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "webhooks_bench:receiver", "--app-dir",
         str(Path(__file__).parent), "--port", str(port), "--log-level", "warning",
         "--no-access-log"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as folder:
            url = args.url or f"sqlite:///{folder}/state.db"
            with StateStore.open(url) as store:
                start = datetime(2026, 10, 1, tzinfo=UTC)
                endpoints.create(store.engine, f"http://127.0.0.1:{port}/hooks", start,
                                 "bench", signature_style=args.signature_style)
                for first in range(0, args.events, 10_000):
                    batch = [OutboxEvent(
                        f"evt_{n:08d}", "invoice.issued", start + timedelta(seconds=n),
                        {"invoice": {"id": f"INV-{n:08d}", "total": "49.00",
                                     "currency": "USD"}}, f"cus_{n % args.customers:06d}")
                        for n in range(first, min(first + 10_000, args.events))]
                    with writing(store.engine) as connection:
                        outbox.append(connection, batch, start, "bench")
                began = time.perf_counter()
                summary = dispatch.deliver(store.engine, options=dispatch.DeliveryOptions(
                    concurrency=args.concurrency))
                seconds = time.perf_counter() - began
                # What the sensor pays on every tick once the history is delivered.
                began = time.perf_counter()
                idle_due = dispatch.due_lanes(store.engine)
                idle = time.perf_counter() - began
        received = int(urllib.request.urlopen(f"http://127.0.0.1:{port}/").read())
    finally:
        server.terminate()
        server.wait()
    print(f"then, nothing left to post: a check for due lanes over that history took "
          f"{idle:.3f} s ({idle_due} due)")
    assert summary.delivered == received == args.events, (summary, received)
    print(f"{args.events:,} events over {args.customers:,} customers, "
          f"{args.signature_style} signatures, concurrency {args.concurrency}: "
          f"{seconds:.1f} s, {args.events / seconds:,.0f} events/s")


if __name__ == "__main__":
    main()
