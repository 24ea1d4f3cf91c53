"""Fill a state store with N customers, each with a subscription shaped like the demo's
(some upgrade mid-month, some trial, some end, some bill on the 15th, some redeem a
coupon), then time the snapshot: reading every row and building the Arrow tables, and
building the catalog models. Prints the figures.

    .venv/bin/python bench/state_bench.py [--customers 100000] [--repeat 5] [--url URL]

Without --url, a SQLite file in a temporary folder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date
from importlib import resources
from pathlib import Path

from billing.catalog.models import Customer, Subscription
from pricing_sql.catalog_files import load_catalog
from sample_data.generate import PLAN_MIX, PLAN_ZONES, _subscription
from state import AddCustomer, CreateSubscription, StateStore

FIRST_MONTH = date(2026, 9, 1)


def operations(customers: int) -> list[AddCustomer | CreateSubscription]:
    plans, zones = list(PLAN_MIX), {plan: PLAN_ZONES[plan] for plan in PLAN_MIX}
    ops: list[AddCustomer | CreateSubscription] = []
    for index in range(1, customers + 1):
        plan = plans[index % len(plans)]
        customer_id = f"cus_{index:06d}"
        ops.append(AddCustomer(Customer(
            id=customer_id, name=f"Customer {index:06d}", external_customer_id=f"acct-{index:06d}",
            email=f"billing+{index:06d}@example.com",
            timezone=zones[plan][index % len(zones[plan])]), actor="bench"))
        sub = _subscription(index, customer_id, plan, FIRST_MONTH)
        sub["id"] = f"sub_{index:06d}"
        ops.append(CreateSubscription(Subscription.model_validate(sub), actor="bench"))
    return ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--url", help="a SQLAlchemy URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    with resources.as_file(resources.files("sample_data").joinpath("catalog")) as folder:
        catalog = load_catalog(folder)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'state.db'}"
        store = StateStore.open(url)
        started = time.perf_counter()
        ops = operations(args.customers)
        built = time.perf_counter() - started
        started = time.perf_counter()
        written = store.apply(ops, catalog)
        fill = time.perf_counter() - started
        print(f"{url.split(':')[0]}: {args.customers:,} customers, {written.subscriptions:,} "
              f"subscriptions, {written.changes:,} change rows; operations built in "
              f"{built:.1f}s, written (checked, one transaction) in {fill:.1f}s")

        arrow, models = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            snapshot = store.snapshot()
            tables = snapshot.tables()
            arrow.append(time.perf_counter() - started)
            started = time.perf_counter()
            customers, subscriptions = snapshot.customers(), snapshot.subscriptions()
            models.append(time.perf_counter() - started)
        rows = {name: table.num_rows for name, table in tables.items()}
        print(f"snapshot to Arrow (read every row, build {len(tables)} tables {rows}): "
              f"median {statistics.median(arrow):.2f}s, best {min(arrow):.2f}s "
              f"of {args.repeat}")
        print(f"then {len(customers):,} Customer and {len(subscriptions):,} Subscription "
              f"models: median {statistics.median(models):.2f}s")
        store.close()


if __name__ == "__main__":
    main()
