"""Time the API's state-store reads at N customers: fetching one customer, one
subscription, and the first page of each list, in-process (Starlette's test client, no
network), over a data folder whose state store holds N customers with a subscription each
(``bench/state_bench.py``'s). Prints p50 / p99 per request kind.

    .venv/bin/python bench/api_reads_bench.py [--customers 10000] [--requests 50] [--dir D]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from importlib import resources
from pathlib import Path

from starlette.testclient import TestClient

from api.access import ApiConfig
from api.app import create_app
from api.registry import Registry, registry_url
from pricing_sql.catalog_files import load_catalog
from state import StateStore

try:
    from bench.state_bench import operations
except ModuleNotFoundError:  # run as a script: bench/ is on the path
    from state_bench import operations  # type: ignore[no-redef]


def prepare(folder: Path, customers: int) -> None:
    with resources.as_file(resources.files("sample_data").joinpath("catalog")) as catalog:
        shutil.copytree(catalog, folder / "catalog")
        with StateStore.open(f"sqlite:///{folder / 'state.db'}") as store:
            store.apply(operations(customers), load_catalog(catalog))


def timed(client: TestClient, paths: list[str]) -> list[float]:
    seconds = []
    for path in paths:
        started = time.perf_counter()
        answer = client.get(path)
        seconds.append(time.perf_counter() - started)
        assert answer.status_code == 200, (path, answer.text)
    return seconds


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):.3f}s / p99 {p99:.3f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--dir", type=Path, help="keep (or reuse) the data folder here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        if not (folder / "state.db").exists():
            folder.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            prepare(folder, args.customers)
            print(f"{args.customers:,} customers written in {time.perf_counter() - started:.1f}s")
        registry = Registry.open(registry_url(folder), folder)
        client = TestClient(create_app(ApiConfig(registry, require_auth=False)))
        ids = random.Random(7).sample(range(1, args.customers + 1),
                                      min(args.requests, args.customers))
        kinds = {"GET /customers/{id}": [f"/v1/customers/cus_{i:06d}" for i in ids],
                 "GET /subscriptions/{id}": [f"/v1/subscriptions/sub_{i:06d}" for i in ids],
                 "GET /customers?limit=20": ["/v1/customers?limit=20"] * len(ids),
                 "GET /subscriptions?limit=20": ["/v1/subscriptions?limit=20"] * len(ids)}
        timed(client, kinds["GET /customers/{id}"][:1])  # the first request builds caches
        for kind, paths in kinds.items():
            print(f"{kind}: {percentiles(timed(client, paths))} over {len(paths)} requests")


if __name__ == "__main__":
    main()
