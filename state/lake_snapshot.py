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

import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, TypeAdapter

from billing.catalog.adjustments import Adjustment
from billing.catalog.models import (
    CouponRedemption,
    Customer,
    FixedFeeQuantity,
    Phase,
    Subscription,
)
from billing.catalog.parties import Address, TaxId
from state import thresholds
from state.lake_tables import SCHEMAS
from state.store import StateStore
from storage.lake import Lake
from storage.tables import BILLING_MONTH, STATE_SNAPSHOTS, TABLES

SNAPSHOTS = "state_snapshots"
THRESHOLDS = "state_invoicing_thresholds"
Model = TypeVar("Model", bound=BaseModel)
ADJUSTMENTS = TypeAdapter(list[Adjustment])
REDEMPTIONS = TypeAdapter(list[CouponRedemption])
PARTIES: tuple[tuple[str, type[BaseModel]], ...] = (
    ("billing_address", Address), ("shipping_address", Address), ("tax_id", TaxId))


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


def take(store: StateStore, lake: Lake, month: date, run_id: str,
         meanwhile: Callable[[LakeSnapshot], object] | None = None) -> LakeSnapshot:
    """Read the store once and keep what it holds as the snapshot of ``run_id`` for
    ``month``; ``meanwhile`` is called with it while its tables are written (behind, on
    the lake's writer thread), before its row commits it."""
    snapshot = store.snapshot()
    taken_at = store.clock()
    snapshot_id = f"{taken_at.astimezone(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
    # as written, in the lake tables' schemas: as ``read`` gives them back
    tables = {name: _write(lake, lake_table(name), month, snapshot_id,
                           _with_id(table, snapshot_id), behind=True)
              for name, table in snapshot.tables().items()}
    # the thresholds as they stand, for the run's threshold invoices (state/thresholds.py)
    _write(lake, THRESHOLDS, month, snapshot_id,
           _with_id(thresholds.rows_table(thresholds.read_rows(store.engine)), snapshot_id),
           behind=True)
    taken = LakeSnapshot(snapshot_id, month, run_id, taken_at, tables)
    try:
        if meanwhile is not None:
            meanwhile(taken)
    finally:  # committed whatever ``meanwhile`` met: the snapshot is whole
        # written after the tables are on disk (a write waits for those behind it)
        _write(lake, SNAPSHOTS, month, snapshot_id, pa.Table.from_pylist([{
            "snapshot_id": snapshot_id, "run_id": run_id, "taken_at": taken_at,
            "as_recorded_at": snapshot.as_recorded_at, "as_of": snapshot.as_of,
            "store": store.engine.dialect.name, "customers": tables["customers"].num_rows,
            "subscriptions": tables["subscriptions"].num_rows}], schema=STATE_SNAPSHOTS))
    return taken


def find(lake: Lake, month: date, run_id: str | None = None) -> str:
    """The id of the snapshot ``run_id`` took for ``month``, else of the month's newest."""
    files = lake.files_in(SNAPSHOTS, BILLING_MONTH, [month])
    if not files:
        raise SnapshotMissing(
            f"no state snapshot for {month:%Y-%m} in {lake.table_dir(SNAPSHOTS)}: "
            "materialize the month's state_snapshot asset first (a monthly_billing run "
            "takes one at its start)")
    # Newest first: a snapshot's file is named by its id, which starts with the UTC instant
    # it was taken (``take``). A run's own snapshot is the newest but for those of runs
    # started since, so a month billed every day reads a head or two, not one per run.
    newest = sorted(files, reverse=True)
    for file in newest if run_id else ():
        _, snapshot_id, taken_by = _head(file)
        if taken_by == run_id:
            return snapshot_id
    return _head(newest[0])[1]


@lru_cache(maxsize=10_000)
def _head(path: str) -> tuple[datetime, str, str]:
    """(taken_at, snapshot_id, run_id) of a snapshot's row, read once per process: a
    month billed every day has a snapshot a run, and each step of each run finds its own.
    A committed snapshot's row never changes."""
    (row,) = pq.read_table(path, partitioning=None,
                           columns=["taken_at", "snapshot_id", "run_id"]).to_pylist()
    return row["taken_at"], row["snapshot_id"], row["run_id"]


def read(lake: Lake, month: date, snapshot_id: str) -> LakeSnapshot:
    """A committed snapshot of ``month`` (``find`` gives the id)."""
    head = pq.read_table(_path(lake, SNAPSHOTS, month, snapshot_id),
                         partitioning=None).to_pylist()[0]
    tables = {name: lake.read_file(_path(lake, lake_table(name), month, snapshot_id))
              for name in SCHEMAS}
    return LakeSnapshot(snapshot_id, month, head["run_id"], head["taken_at"], tables)


def time_zones(lake: Lake, month: date, snapshot_id: str) -> dict[str, str]:
    """Each customer's time zone in a committed snapshot: the calendar its run dated
    the customer's invoices on."""
    table = lake.read_file(_path(lake, lake_table("customers"), month, snapshot_id))
    return dict(zip(table["customer_id"].to_pylist(), table["timezone"].to_pylist(),
                    strict=True))


def invoicing_thresholds(lake: Lake, month: date, snapshot_id: str,
                         ) -> list[thresholds.ThresholdRow]:
    """The invoicing-threshold rows a committed snapshot kept; none for a snapshot taken
    before thresholds were kept."""
    path = _path(lake, THRESHOLDS, month, snapshot_id)
    if not os.path.exists(path):
        return []
    return thresholds.from_table(pq.read_table(path, partitioning=None))


# The store checks every row when it is written (``state/checks.py``) and the snapshot is
# this module's own file, so the models are built without validating them again:
# pydantic's ``model_construct`` takes 9 us a model, ``_built`` about 1 us, and 100,000
# subscriptions with their phases make 300,000 (tests/test_state.py checks that they
# equal the validated models).
CUSTOMER_FIELDS = ("id", "name", "external_customer_id", "email", "timezone", "net_terms",
                   *(name for name, _ in PARTIES))
SUBSCRIPTION_FIELDS = ("id", "customer_id", "plan_id", "plan_version", "start_date", "phases",
                       "end_date", "trial_end_date", "billing_cycle_day",
                       "align_billing_with_subscription_start_date", "coupons", "adjustments",
                       "fixed_fee_quantities")


def _built(model: type[Model], names: tuple[str, ...],
           rows: Iterable[tuple[Any, ...]]) -> list[Model]:
    """A ``model`` per row, holding the row's values as its fields ``names`` (every field),
    as ``model_construct`` leaves it. One loop for all: a call per model cost a third."""
    new, assign = model.__new__, object.__setattr__
    models = []
    for values in rows:
        built = new(model)
        assign(built, "__dict__", dict(zip(names, values, strict=True)))
        assign(built, "__pydantic_fields_set__", set(names))
        assign(built, "__pydantic_extra__", None)
        assign(built, "__pydantic_private__", None)
        models.append(built)
    return models


def customers(table: pa.Table) -> list[Customer]:
    columns = [table[name].to_pylist() for name in (
        "customer_id", "name", "external_customer_id", "email", "timezone", "net_terms")]
    # few customers have them: parsed only where set; a snapshot kept before they
    # existed has none
    parties = [[None if text is None else model.model_validate_json(text)
                for text in table[name].to_pylist()] if name in table.column_names
               else [None] * table.num_rows for name, model in PARTIES]
    return _built(Customer, CUSTOMER_FIELDS, zip(*columns, *parties, strict=True))


def subscriptions(table: pa.Table, phases: pa.Table,
                  changes: pa.Table | None = None) -> list[Subscription]:
    """The catalog's shape of each row, as ``state.history.SubscriptionState.as_dict``
    gives it: ``plan_id`` and ``start_date`` for one phase, ``phases`` for more; with
    ``changes`` (the snapshot's, in the order recorded), fixed-fee quantities."""
    schedules: dict[str, list[FixedFeeQuantity]] = {}
    if changes is not None:
        rows = changes.filter(pc.equal(changes["kind"], "quantity"))
        for sub_id, quantity in zip(rows["subscription_id"].to_pylist(), _built(
                FixedFeeQuantity, ("price_id", "start_date", "quantity"),
                zip(*(rows[c].to_pylist() for c in ("price_id", "effective_date", "quantity")),
                    strict=True)), strict=True):
            schedules.setdefault(sub_id, []).append(quantity)
    by_subscription: dict[str, list[tuple[str, date, int | None]]] = {}
    for sub_id, *phase in zip(*(phases[c].to_pylist() for c in (
            "subscription_id", "plan_id", "start_date", "plan_version")), strict=True):
        by_subscription.setdefault(sub_id, []).append(tuple(phase))
    ids = table["subscription_id"].to_pylist()
    plans = [by_subscription[sub_id] for sub_id in ids]
    # one phase: its plan, version and start on the subscription; more: ``phases``
    single = [(held[0][0], held[0][2], held[0][1]) if len(held) == 1 else (None, None, None)
              for held in plans]
    return _built(Subscription, SUBSCRIPTION_FIELDS, zip(
        ids, table["customer_id"].to_pylist(), *zip(*single, strict=True),
        [[] if len(held) == 1 else _built(Phase, ("plan_id", "start_date", "plan_version"),
                                          held) for held in plans],
        table["end_date"].to_pylist(), table["trial_end_date"].to_pylist(),
        table["billing_cycle_day"].to_pylist(),
        [bool(align) for align in
         table["align_billing_with_subscription_start_date"].to_pylist()],
        [REDEMPTIONS.validate_json(text) if text else [] for text in
         table["coupons"].to_pylist()],
        [ADJUSTMENTS.validate_json(text) if text else [] for text in
         table["adjustments"].to_pylist()],
        [schedules.get(sub_id, []) for sub_id in ids], strict=True))


def _with_id(table: pa.Table, snapshot_id: str) -> pa.Table:
    return table.add_column(0, "snapshot_id",
                            pa.repeat(pa.scalar(snapshot_id, pa.string()), table.num_rows))


def _path(lake: Lake, table: str, month: date, snapshot_id: str) -> str:
    return str(lake.table_dir(table) / f"{BILLING_MONTH}={month}" / f"{snapshot_id}.parquet")


def _write(lake: Lake, table: str, month: date, snapshot_id: str, rows: pa.Table, *,
           behind: bool = False) -> pa.Table:
    """``rows`` written as the snapshot's part of ``table``, in its schema, as written; kept
    in memory, for the run's catalog to be built without reading it back (``read``)."""
    written = rows.cast(TABLES[table].schema)
    key, name = TABLES[table].key, f"{snapshot_id}.parquet"
    if behind:
        lake.write_behind(table, key, month, written, name=name)
    else:
        lake.write_file(table, key, month, name, written, keep=True)
    return written
