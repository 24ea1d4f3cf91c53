"""The store's state as known at an instant: Arrow tables (what a billing run keeps in the
lake and reads, ``state/lake_snapshot.py``), and the catalog models (``Customer``,
``Subscription``), validated, for the CLI and the tests.

Both come from the same rows and the same rules (``state/history.py``). The tables are
built column-wise: a customer with one version and a subscription without plan changes
(most of them) are put together from their rows by Arrow; only the others are added up in
Python. ``bench/state_bench.py`` times it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing.catalog.models import Customer, Subscription
from state import lake_tables
from state.history import (
    CUSTOMER_FIELDS,
    SubscriptionState,
    customer_at,
    customer_model,
    subscription_state,
)
from state.rows import change_records, version_records

ORDER = "_order"  # the position of a customer's or subscription's first row
Row = TypeVar("Row")


class Snapshot:
    """``as_recorded_at``: rows written by then count (None: every row). ``as_of``: the
    instant customer edits and added adjustments are taken in effect at (the catalog
    models cannot date them; phases, end dates and redemptions carry their own dates)."""

    def __init__(self, versions: pa.Table, changes: pa.Table, as_recorded_at: datetime | None,
                 as_of: datetime):
        # rows.read_versions' and rows.read_changes' tables, each in the order recorded
        self.versions = _numbered(versions)
        self.changes = _numbered(changes)
        self.as_recorded_at = as_recorded_at
        self.as_of = as_of

    # -- the catalog models ------------------------------------------------------------

    def customers(self) -> list[Customer]:
        """In the order they were created."""
        records = version_records(self.versions)
        return [customer_model(customer_at(versions, self.as_of)[0])
                for versions in _grouped(records, (v.customer_id for v in records))]

    def subscriptions(self) -> list[Subscription]:
        """In the order they were created, in the catalog's shape (``plan_id`` and
        ``start_date`` for one phase, ``phases`` for more)."""
        return [state.model() for state in self._states(self.changes)]

    def _states(self, changes: pa.Table) -> Iterator[SubscriptionState]:
        records = change_records(changes)
        customers = changes["customer_id"].to_pylist()
        first: dict[str, str] = {}
        for change, customer_id in zip(records, customers, strict=True):
            first.setdefault(change.subscription_id, customer_id)
        for rows in _grouped(records, (c.subscription_id for c in records)):
            sub_id = rows[0].subscription_id
            yield subscription_state(sub_id, first[sub_id], rows, self.as_of)

    # -- Arrow -------------------------------------------------------------------------

    def tables(self) -> dict[str, pa.Table]:
        """customers, customer_versions, subscriptions, subscription_phases and
        subscription_changes (schemas: ``state/lake_tables.py``)."""
        subscriptions, phases = self._subscriptions_and_phases
        return {"customers": self.customers_table(),
                "customer_versions": self.customer_versions_table(),
                "subscriptions": subscriptions,
                "subscription_phases": phases,
                "subscription_changes": self.changes_table()}

    def customer_versions_table(self) -> pa.Table:
        return self.versions.select(lake_tables.CUSTOMER_VERSIONS.names)

    def changes_table(self) -> pa.Table:
        return self.changes.select(lake_tables.SUBSCRIPTION_CHANGES.names)

    def subscriptions_table(self) -> pa.Table:
        return self._subscriptions_and_phases[0]

    def phases_table(self) -> pa.Table:
        return self._subscriptions_and_phases[1]

    def customers_table(self) -> pa.Table:
        single, several = _split(self.versions, "customer_id")
        folded = []
        records = version_records(several)
        orders = several[ORDER].to_pylist()
        for versions, order in zip(_grouped(records, (v.customer_id for v in records)),
                                   _firsts(orders, (v.customer_id for v in records)),
                                   strict=True):
            customer, newest = customer_at(versions, self.as_of)
            folded.append({**customer._asdict(), "created_at": versions[0].recorded_at,
                           "effective_at": newest.effective_at,
                           "recorded_at": newest.recorded_at, "actor": newest.actor,
                           ORDER: order})
        simple = single.select(["customer_id", *CUSTOMER_FIELDS]).append_column(
            "created_at", single["recorded_at"])
        for name in ("effective_at", "recorded_at", "actor", ORDER):
            simple = simple.append_column(name, single[name])
        return _in_order(lake_tables.CUSTOMERS, simple, folded)

    @cached_property
    def _subscriptions_and_phases(self) -> tuple[pa.Table, pa.Table]:
        """A subscription without plan changes is its create row, its last cancellation,
        its redemptions and the adjustments in effect, put together column-wise; one with
        plan changes is added up in Python (``history.subscription_state``)."""
        changes = self.changes
        planned = pc.unique(pc.filter(changes["subscription_id"],
                                      pc.equal(changes["kind"], "plan")))
        in_python = pc.is_in(changes["subscription_id"], planned)
        columnwise = self._columnwise(changes.filter(pc.invert(in_python)))
        several = changes.filter(in_python)
        subscriptions, phases = [], []
        orders = _firsts(several[ORDER].to_pylist(), several["subscription_id"].to_pylist())
        for state, order in zip(self._states(several), orders, strict=True):
            subscriptions.append(_subscription_row(state) | {ORDER: order})
            ends = [p.start_date for p in state.phases[1:]] + [state.end_date]
            phases += [{"subscription_id": state.subscription_id, "phase_index": index,
                        "plan_id": phase.plan_id, "plan_version": phase.plan_version,
                        "start_date": phase.start_date, "end_date": end,
                        "effective_at": phase.change.effective_at,
                        "recorded_at": phase.change.recorded_at, "actor": phase.change.actor,
                        ORDER: order}
                       for index, (phase, end) in enumerate(zip(state.phases, ends,
                                                                strict=True))]
        count = columnwise.num_rows
        first_phases = pa.table({
            "subscription_id": columnwise["subscription_id"],
            "phase_index": pa.array(np.zeros(count, np.int32)),
            "plan_id": columnwise["plan_id"],
            "plan_version": columnwise["plan_version"],
            "start_date": columnwise["start_date"],
            "end_date": columnwise["end_date"],
            "effective_at": columnwise["effective_at"],
            "recorded_at": columnwise["created_at"],
            "actor": columnwise["actor"],
            ORDER: columnwise[ORDER],
        })
        return (_in_order(lake_tables.SUBSCRIPTIONS, columnwise, subscriptions),
                _in_order(lake_tables.SUBSCRIPTION_PHASES, first_phases, phases,
                          then="phase_index"))

    def _columnwise(self, changes: pa.Table) -> pa.Table:
        """The subscriptions of ``changes``, which hold no plan changes, as
        ``lake_tables.SUBSCRIPTIONS`` plus the create row's plan, effective_at and order."""
        kind, key = changes["kind"], "subscription_id"
        created = changes.filter(pc.equal(kind, "create"))

        def per_subscription(rows: pa.Table, column: str, how: str) -> pa.ChunkedArray:
            """``how`` (last, list) of ``column`` of each subscription's ``rows``, in the
            order recorded, lined up with ``created``."""
            grouped = rows.group_by(key, use_threads=False).aggregate([(column, how)])
            return grouped[f"{column}_{how}"].take(pc.index_in(created[key], grouped[key]))

        adjustments = changes.filter(pc.equal(kind, "adjustment"))
        start_at = created["effective_at"].take(pc.index_in(adjustments[key], created[key]))
        as_of = pa.scalar(self.as_of, start_at.type)
        adjustments = adjustments.filter(pc.or_(
            pc.less_equal(adjustments["effective_at"], as_of),
            pc.less_equal(adjustments["effective_at"], start_at)))
        coupons = changes.filter(pc.equal(kind, "coupon"))
        texts = pc.binary_join(per_subscription(adjustments, "adjustment", "list"), ", ")
        return pa.table({
            key: created[key],
            "customer_id": created["customer_id"],
            "start_date": created["effective_date"],
            "end_date": per_subscription(changes.filter(pc.equal(kind, "cancel")),
                                         "effective_date", "last"),
            "trial_end_date": created["trial_end_date"],
            "billing_cycle_day": created["billing_cycle_day"],
            "align_billing_with_subscription_start_date":
                pc.fill_null(created["align_with_start"], False),
            "coupons": _redemptions(per_subscription(coupons, "coupon_id", "list"),
                                    per_subscription(coupons, "redeemed_on", "list")),
            "adjustments": pc.binary_join_element_wise("[", texts, "]", ""),
            "created_at": created["recorded_at"],
            "actor": created["actor"],
            "plan_id": created["plan_id"],
            "plan_version": created["plan_version"],
            "effective_at": created["effective_at"],
            ORDER: created[ORDER],
        })


def _numbered(table: pa.Table) -> pa.Table:
    return table.append_column(ORDER, pa.array(range(table.num_rows), pa.int64()))


def _split(table: pa.Table, key: str) -> tuple[pa.Table, pa.Table]:
    """The rows whose ``key`` occurs once, and the others."""
    counts = pc.value_counts(table[key])
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    several = pc.is_in(table[key], repeated)
    return table.filter(pc.invert(several)), table.filter(several)


def _redemptions(coupon_ids: pa.ChunkedArray, redeemed_ons: pa.ChunkedArray) -> pa.Array:
    """Two list columns of the same lengths as one column of JSON text, null where
    empty: a warehouse types a list of records differently each (Postgres not at all)."""
    return pa.array([redemptions_json(list(zip(ids, ons, strict=True))) if ids else None
                     for ids, ons in zip(coupon_ids.to_pylist(), redeemed_ons.to_pylist(),
                                         strict=True)], pa.string())


def redemptions_json(redemptions: list[tuple[str, date | None]]) -> str | None:
    """``[{"coupon_id": "launch20", "redeemed_on": "2026-10-01"}]``, the catalog's shape
    (no ``redeemed_on``: at the start); None for none."""
    if not redemptions:
        return None
    return json.dumps([{"coupon_id": c} | ({} if on is None else {"redeemed_on": on.isoformat()})
                       for c, on in redemptions])


def _grouped(rows: list[Row], keys: Iterable[str]) -> list[list[Row]]:
    """``rows`` grouped by key, groups in the order of their first row."""
    groups: dict[str, list[Row]] = {}
    for row, key in zip(rows, keys, strict=True):
        groups.setdefault(key, []).append(row)
    return list(groups.values())


def _firsts(values: list[int], keys: Iterable[str]) -> list[int]:
    """Each key's first value, keys in the order of their first row."""
    first: dict[str, int] = {}
    for value, key in zip(values, keys, strict=True):
        first.setdefault(key, value)
    return list(first.values())


def _subscription_row(state: SubscriptionState) -> dict[str, Any]:
    created = state.created
    return {"subscription_id": state.subscription_id, "customer_id": state.customer_id,
            "start_date": state.phases[0].start_date, "end_date": state.end_date,
            "trial_end_date": created.trial_end_date,
            "billing_cycle_day": created.billing_cycle_day,
            "align_billing_with_subscription_start_date": bool(created.align_with_start),
            "coupons": redemptions_json(state.coupons),
            "adjustments": "[" + ", ".join(state.adjustments) + "]"
            if state.adjustments else None,
            "created_at": created.recorded_at, "actor": created.actor}


def _in_order(schema: pa.Schema, taken: pa.Table, added: list[dict[str, Any]],
              then: str | None = None) -> pa.Table:
    """``taken`` and the ``added`` rows in one table of ``schema``, in ``ORDER``."""
    full = schema.append(pa.field(ORDER, pa.int64()))
    table = pa.concat_tables([taken.select(full.names).cast(full),
                              pa.Table.from_pylist(added, schema=full)])
    keys = [(ORDER, "ascending")] + ([(then, "ascending")] if then else [])
    return table.sort_by(keys).drop_columns([ORDER])

