"""A realistic sample: the catalog in ``sample_data/catalog`` plus generated customers and
subscriptions (a YAML file the demo imports into the state store) and usage events, the
same for the same seed.

Events land as one Parquet batch per UTC day, shaped the way a producer sends them
(every field a string, properties as JSON text). A small share is deliberately
bad or re-sent, so that the pipeline's rejection and deduplication show up in
the demo: events for unknown customers, unreadable timestamps, missing keys, and
a batch that re-sends events already landed.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from billing import money, periods

# Which plans customers choose, and where they live.
PLAN_MIX = {"starter": 0.45, "growth": 0.35, "enterprise_eur": 0.12, "growth_jpy": 0.08}
PLAN_ZONES = {
    "starter": ["UTC", "America/New_York", "America/Los_Angeles", "Europe/London"],
    "growth": ["America/New_York", "America/Chicago", "America/Los_Angeles", "UTC"],
    "enterprise_eur": ["Europe/Berlin", "Europe/Paris", "Europe/Madrid"],
    "growth_jpy": ["Asia/Tokyo"],
}
# A billing address by time zone (city, state, postal code, ISO country); UTC: none given.
ZONE_ADDRESSES = {
    "America/New_York": ("New York", "NY", "10004", "US"),
    "America/Chicago": ("Chicago", "IL", "60601", "US"),
    "America/Los_Angeles": ("Los Angeles", "CA", "90012", "US"),
    "Europe/London": ("London", None, "EC2A 4NE", "GB"),
    "Europe/Berlin": ("Berlin", None, "10115", "DE"),
    "Europe/Paris": ("Paris", None, "75004", "FR"),
    "Europe/Madrid": ("Madrid", None, "28013", "ES"),
    "Asia/Tokyo": ("Tokyo", None, "100-0005", "JP"),
}
EVENT_MIX = {"api_request": 0.58, "completion": 0.30, "seat_active": 0.10, "storage_snapshot": 0.02}
ENDPOINTS = ["/v1/chat", "/v1/embeddings", "/v1/files", "/v1/moderations"]
RESENT_SHARE = 0.005
CUSTOMERS_FILE = "customers.yaml"  # in the data folder, beside (not in) the catalog folder
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, when PyYAML has it
BAD_EVENTS = 200


def write_catalog(folder: Path) -> None:
    """Copy the sample plans, metrics and coupons: the catalog folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.yaml", "plans.yaml", "coupons.yaml", "seller.yaml"):
        source = resources.files("sample_data").joinpath("catalog", name)
        with resources.as_file(source) as path:
            shutil.copyfile(path, folder / name)


def write_customers(path: Path, customers: int, first_month: date, seed: int) -> None:
    """Generate customers with subscriptions as a YAML file for ``orb state import``
    (the catalog's ``customers`` and ``subscriptions`` sections)."""
    rng = np.random.default_rng(seed)
    plan_ids = rng.choice(list(PLAN_MIX), size=customers, p=list(PLAN_MIX.values()))
    rows, subs = [], []
    for index, plan_id in enumerate(plan_ids, start=1):
        customer_id = f"cus_{index:04d}"
        zone = str(rng.choice(PLAN_ZONES[plan_id]))
        rows.append({
            "id": customer_id,
            "external_customer_id": f"acct-{index:04d}",
            "name": f"Customer {index:04d}",
            "email": f"billing+{index:04d}@example.com",
            "timezone": zone,
            **_address(index, zone),
        })
        subs.append(_subscription(index, customer_id, str(plan_id), first_month))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump({"customers": rows, "subscriptions": subs}, handle, sort_keys=False)


def _address(index: int, zone: str) -> dict[str, object]:
    if zone not in ZONE_ADDRESSES:
        return {}
    city, state, postal_code, country = ZONE_ADDRESSES[zone]
    address = {"line1": f"{index} Market Street", "city": city, "state": state,
               "postal_code": postal_code, "country": country}
    return {"billing_address": {k: v for k, v in address.items() if v is not None}}


def _subscription(index: int, customer_id: str, plan_id: str,
                  first_month: date) -> dict[str, object]:
    """Most customers are on board from the first month. Some join a month later after a
    two-week trial, a few leave before the last month, some starter customers upgrade to
    growth mid-month, some bill on the 15th, and some redeemed the launch coupon."""
    start = first_month if index % 10 else periods.add_months(first_month, 1)
    sub: dict[str, object] = {"id": f"sub_{index:04d}", "customer_id": customer_id}
    if plan_id == "starter" and index % 7 == 0:
        upgrade = periods.add_months(first_month, 1) + timedelta(days=14)
        sub["phases"] = [{"plan_id": "starter", "start_date": start.isoformat()},
                         {"plan_id": "growth", "start_date": upgrade.isoformat()}]
    else:
        sub.update(plan_id=plan_id, start_date=start.isoformat())
    if index % 10 == 0:
        sub["trial_end_date"] = (start + timedelta(days=14)).isoformat()
    if index % 17 == 0:
        sub["end_date"] = periods.add_months(first_month, 2).isoformat()
    if index % 19 == 0:
        sub["billing_cycle_day"] = 15
    if index % 13 == 0:
        sub["coupons"] = [{"coupon_id": "launch20", "redeemed_on": start.isoformat()}]
    return sub


def write_events(landing: Path, customers_file: Path, first_month: date, months: int,
                 events: int, seed: int) -> int:
    """Generate ``events`` usage events over ``months`` calendar months (UTC) for the
    customers of ``customers_file`` and land them as daily Parquet batches; returns the
    number of raw events written."""
    customers = yaml.load(customers_file.read_text(), Loader=LOADER)["customers"]
    rng = np.random.default_rng(seed + 1)
    start = datetime.combine(first_month, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(periods.add_months(first_month, months), datetime.min.time(),
                           tzinfo=UTC)

    weights = rng.lognormal(mean=0.0, sigma=1.0, size=len(customers))
    who = rng.choice(len(customers), size=events, p=weights / weights.sum())
    seats = rng.integers(3, 60, size=len(customers))
    storage = rng.uniform(5, 500, size=len(customers))
    span_us = int((end - start).total_seconds() * 1_000_000)
    offsets = np.sort(rng.integers(0, span_us, size=events))
    frame = pl.DataFrame({
        "who": who,
        "event_name": rng.choice(list(EVENT_MIX), size=events, p=list(EVENT_MIX.values())),
        "at_us": offsets,
        "tokens": rng.integers(50, 4000, size=events),
        "user": rng.integers(0, 1 << 30, size=events) % seats[who],
        "gb": np.round(storage[who] * (1 + offsets / span_us), 1),
        "endpoint": rng.choice(ENDPOINTS, size=events),
        "by_external": rng.random(size=events) < 0.5,
    })
    ids = pl.Series([c["id"] for c in customers])
    external_ids = pl.Series([c["external_customer_id"] for c in customers])
    raw = frame.with_columns(
        timestamp=(pl.lit(start) + pl.duration(microseconds=pl.col("at_us")))
        .dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
        customer_id=pl.when(~pl.col("by_external")).then(ids.gather(frame["who"])),
        external_customer_id=pl.when(pl.col("by_external")).then(external_ids.gather(frame["who"])),
        idempotency_key=pl.format("evt_{}", pl.int_range(pl.len()).cast(pl.String).str.zfill(8)),
        properties=_properties(),
        day=(pl.lit(start) + pl.duration(microseconds=pl.col("at_us"))).dt.date(),
    ).select("day", "event_name", "timestamp", "customer_id", "external_customer_id",
             "idempotency_key", "properties")

    landing.mkdir(parents=True, exist_ok=True)
    for (day,), batch in raw.partition_by("day", as_dict=True).items():
        batch.drop("day").write_parquet(landing / f"events-{day}.parquet")
    resent = raw.sample(fraction=RESENT_SHARE, seed=seed).drop("day")
    resent.write_parquet(landing / "resent-batch.parquet")
    bad = _bad_events(raw.drop("day"), rng)
    bad.write_parquet(landing / "bad-batch.parquet")
    return len(raw) + len(resent) + len(bad)


def _properties() -> pl.Expr:
    name = pl.col("event_name")
    return (
        pl.when(name == "api_request")
        .then(pl.concat_str(pl.lit('{"endpoint": "'), pl.col("endpoint"), pl.lit('"}')))
        .when(name == "completion")
        .then(pl.concat_str(pl.lit('{"tokens": '), pl.col("tokens").cast(pl.String), pl.lit("}")))
        .when(name == "seat_active")
        .then(pl.concat_str(pl.lit('{"user_id": "u'), pl.col("user").cast(pl.String), pl.lit('"}')))
        .otherwise(pl.concat_str(pl.lit('{"gb": '), pl.col("gb").cast(pl.String), pl.lit("}")))
    )


def _bad_events(raw: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Events a real producer sends by mistake, each kind a quarter of BAD_EVENTS."""
    sample = raw.sample(n=BAD_EVENTS, seed=int(rng.integers(1 << 31)))
    kind = pl.int_range(pl.len()) % 4
    return sample.with_columns(
        idempotency_key=pl.format("bad_{}", pl.int_range(pl.len())),
    ).with_columns(
        # An unknown customer: both references point at nobody in the catalog.
        customer_id=pl.when(kind == 0).then(pl.lit("cus_9999")).otherwise(pl.col("customer_id")),
        external_customer_id=pl.when(kind == 0).then(None)
        .otherwise(pl.col("external_customer_id")),
        timestamp=pl.when(kind == 1).then(pl.lit("yesterday")).otherwise(pl.col("timestamp")),
        idempotency_key=pl.when(kind == 2).then(None).otherwise(pl.col("idempotency_key")),
        properties=pl.when(kind == 3).then(pl.lit("[1, 2")).otherwise(pl.col("properties")),
    )


def generate(data_dir: Path, customers: int, events: int, first_month: date, months: int,
             seed: int) -> int:
    """The catalog folder, ``customers.yaml`` (for the state store) and the landing
    folder's events, in ``data_dir``; returns the number of raw events written."""
    write_catalog(data_dir / "catalog")
    write_customers(data_dir / CUSTOMERS_FILE, customers, first_month, seed)
    return write_events(data_dir / "landing", data_dir / CUSTOMERS_FILE, first_month, months,
                        events, seed)


def write_payments(path: Path, issued: list[tuple[str, dict]], share: float, seed: int) -> int:
    """A payments file (the manual processor's format, docs/payments.md) paying a seeded
    ``share`` of the issued invoices, in full, within their payment terms."""
    rng = np.random.default_rng(seed)
    paying = [(number, head) for number, head in issued
              if head["document_type"] == "invoice" and rng.random() < share]
    rows = ["invoice_number,amount,currency,paid_at,reference"]
    for number, head in paying:
        days = int(rng.integers(0, max((head["due_date"] - head["invoice_date"]).days, 1)))
        paid_at = head["invoice_date"] + timedelta(days=days)
        amount = money.quantize(head["total"], head["currency"])
        rows.append(f"{number},{amount:f},{head['currency']},{paid_at.isoformat()},"
                    f"transfer {number}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return len(paying)
