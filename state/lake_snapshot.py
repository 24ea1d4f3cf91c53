"""A billing run's customers and subscriptions, read from the state store once at its
start and kept in the lake, so that the run is reproducible and its inputs auditable.

``take`` reads the store (``StateStore.snapshot``: every row recorded until now) and
writes the snapshot's tables as ``lake/state_<table>/billing_month=<month>/<id>.parquet``,
then its row in ``state_snapshots``: that row commits it, so a snapshot cut short by a
crash is never read. Snapshots are never replaced: a month re-rated later takes a new one
and the one its first run read stays as it was. ``find`` picks a run's snapshot (else the
month's newest), ``read`` reads it, and ``customers`` and ``subscriptions`` turn it into
the catalog models billing reads (``pricing_sql/run_catalog.py``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import TypeAdapter

from billing.catalog.adjustments import Adjustment
from billing.catalog.models import CouponRedemption, Customer, Phase, Subscription
from state.lake_tables import SCHEMAS
from state.store import StateStore
from storage.lake import Lake
from storage.tables import BILLING_MONTH, STATE_SNAPSHOTS, TABLES

SNAPSHOTS = "state_snapshots"
ADJUSTMENTS = TypeAdapter(list[Adjustment])
REDEMPTIONS = TypeAdapter(list[CouponRedemption])


def lake_table(name: str) -> str:
    """The lake table that keeps a snapshot's ``name`` table."""
    return f"state_{name}"


class SnapshotMissing(LookupError):
    pass


@dataclass(frozen=True)
class LakeSnapshot:
    snapshot_id: str
    billing_month: date
    run_id: str
    taken_at: datetime
    tables: dict[str, pa.Table]  # Snapshot.tables()' names, with their snapshot_id


def take(store: StateStore, lake: Lake, month: date, run_id: str) -> LakeSnapshot:
    """Read the store once and keep what it holds as the snapshot of ``run_id`` for
    ``month``."""
    snapshot = store.snapshot()
    taken_at = store.clock()
    snapshot_id = f"{taken_at:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
    tables = {name: _with_id(table, snapshot_id) for name, table in snapshot.tables().items()}
    for name, table in tables.items():
        _write(lake, lake_table(name), month, snapshot_id, table)
    _write(lake, SNAPSHOTS, month, snapshot_id, pa.Table.from_pylist([{
        "snapshot_id": snapshot_id, "run_id": run_id, "taken_at": taken_at,
        "as_recorded_at": snapshot.as_recorded_at, "as_of": snapshot.as_of,
        "store": store.engine.dialect.name, "customers": tables["customers"].num_rows,
        "subscriptions": tables["subscriptions"].num_rows}], schema=STATE_SNAPSHOTS))
    return LakeSnapshot(snapshot_id, month, run_id, taken_at, tables)


def find(lake: Lake, month: date, run_id: str | None = None) -> str:
    """The id of the snapshot ``run_id`` took for ``month``, else of the month's newest."""
    files = lake.files_in(SNAPSHOTS, BILLING_MONTH, [month])
    if not files:
        raise SnapshotMissing(
            f"no state snapshot for {month:%Y-%m} in {lake.table_dir(SNAPSHOTS)}: "
            "materialize the month's state_snapshot asset first (a monthly_billing run "
            "takes one at its start)")
    heads = pa.concat_tables(pq.read_table(f, partitioning=None) for f in files)
    ours = pc.equal(heads["run_id"], run_id) if run_id else None
    if ours is not None and pc.any(ours).as_py():
        heads = heads.filter(ours)
    newest = heads.sort_by([("taken_at", "descending"), ("snapshot_id", "descending")])
    return str(newest["snapshot_id"][0])


def read(lake: Lake, month: date, snapshot_id: str) -> LakeSnapshot:
    """A committed snapshot of ``month`` (``find`` gives the id)."""
    head = pq.read_table(_path(lake, SNAPSHOTS, month, snapshot_id),
                         partitioning=None).to_pylist()[0]
    tables = {name: pq.read_table(_path(lake, lake_table(name), month, snapshot_id),
                                  partitioning=None) for name in SCHEMAS}
    return LakeSnapshot(snapshot_id, month, head["run_id"], head["taken_at"], tables)


# The store checks every row when it is written (``state/checks.py``) and the snapshot is
# this module's own file, so the models are constructed without validating them again:
# 100,000 subscriptions take about 0.5 s this way, 4.8 s validated.


def customers(table: pa.Table) -> list[Customer]:
    names = ("name", "external_customer_id", "email", "timezone", "net_terms")
    ids = table["customer_id"].to_pylist()
    columns = [table[name].to_pylist() for name in names]
    return [Customer.model_construct(id=customer_id, **dict(zip(names, values, strict=True)))
            for customer_id, *values in zip(ids, *columns, strict=True)]


def subscriptions(table: pa.Table, phases: pa.Table) -> list[Subscription]:
    """The catalog's shape of each row, as ``state.history.SubscriptionState.as_dict``
    gives it: ``plan_id`` and ``start_date`` for one phase, ``phases`` for more."""
    by_subscription: dict[str, list[Phase]] = {}
    for sub_id, plan_id, start, version in zip(
            *(phases[c].to_pylist() for c in ("subscription_id", "plan_id", "start_date",
                                              "plan_version")), strict=True):
        by_subscription.setdefault(sub_id, []).append(
            Phase.model_construct(plan_id=plan_id, start_date=start, plan_version=version))
    models = []
    for row in table.to_pylist():
        plans = by_subscription[row["subscription_id"]]
        first = plans[0]
        single = len(plans) == 1
        models.append(Subscription.model_construct(
            id=row["subscription_id"], customer_id=row["customer_id"],
            plan_id=first.plan_id if single else None,
            plan_version=first.plan_version if single else None,
            start_date=first.start_date if single else None,
            phases=[] if single else plans,
            end_date=row["end_date"], trial_end_date=row["trial_end_date"],
            billing_cycle_day=row["billing_cycle_day"],
            align_billing_with_subscription_start_date=bool(
                row["align_billing_with_subscription_start_date"]),
            coupons=REDEMPTIONS.validate_json(row["coupons"]) if row["coupons"] else [],
            adjustments=ADJUSTMENTS.validate_json(row["adjustments"])
            if row["adjustments"] else []))
    return models


def _with_id(table: pa.Table, snapshot_id: str) -> pa.Table:
    return table.add_column(0, "snapshot_id", pa.array([snapshot_id] * table.num_rows,
                                                       pa.string()))


def _path(lake: Lake, table: str, month: date, snapshot_id: str) -> str:
    return str(lake.table_dir(table) / f"{BILLING_MONTH}={month}" / f"{snapshot_id}.parquet")


def _write(lake: Lake, table: str, month: date, snapshot_id: str, rows: pa.Table) -> None:
    lake.write_file(table, TABLES[table].key, month, f"{snapshot_id}.parquet",
                    rows.cast(TABLES[table].schema))
