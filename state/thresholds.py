"""Subscriptions' invoicing thresholds (Orb's ``invoicing_threshold``,
docs/invoicing.md#threshold-invoices): each setting is a row of ``invoicing_thresholds``,
in effect from its ``effective_at`` until the next; a row without a threshold removes it.
Written in one ``writing`` transaction, never updated; a billing run keeps every row in
its snapshot (``state/lake_snapshot.py``) so that a month re-rated later sees the
thresholds as they were."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

import pyarrow as pa
import sqlalchemy as sa

from billing import periods
from state import rows, schema
from state.database import reading, writing
from state.errors import StateError
from state.history import FAR_FUTURE, customer_at
from storage.tables import AMOUNT, INSTANT

# The lake keeps thresholds as DECIMAL(38, 4): four places at most, below 10^18.
PLACES = 4
LIMIT = Decimal(10) ** 18

ROWS = pa.schema([
    ("change_id", pa.int64()),
    ("subscription_id", pa.string()),
    ("threshold", AMOUNT),  # null: the threshold is removed from effective_at on
    ("effective_at", INSTANT),
    ("recorded_at", INSTANT),
    ("actor", pa.string()),
])


@dataclass(frozen=True)
class ThresholdRow:
    change_id: int
    subscription_id: str
    threshold: Decimal | None
    effective_at: datetime
    recorded_at: datetime
    actor: str


def parse_threshold(value: object, where: str = "invoicing_threshold") -> Decimal:
    """A threshold as given (text or a number): finite, above zero, below 10^18, at most
    four decimal places; else ``StateError`` naming ``where``."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise StateError([f"{where}: {value!r} is not a decimal amount"]) from None
    if not amount.is_finite() or amount <= 0 or amount >= LIMIT:
        raise StateError([f"{where}: {value!r} must be an amount above 0 and below 10^18"])
    if amount != amount.quantize(Decimal(1).scaleb(-PLACES)):
        raise StateError([f"{where}: {value!r} has more than {PLACES} decimal places"])
    return amount


def set_threshold(engine: sa.Engine, subscription_id: str, threshold: Decimal | None,
                  actor: str, effective: date | datetime | None = None,
                  from_start: bool = False,
                  clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> ThresholdRow:
    """Record ``subscription_id``'s threshold (None: remove it) from ``effective`` (an
    instant, or a day: midnight in the customer's time zone; default now), or from the
    subscription's start with ``from_start``. Refused with ``StateError`` for an unknown
    subscription or a bad amount."""
    if threshold is not None:
        threshold = parse_threshold(threshold)
    recorded_at = clock().astimezone(UTC)
    table = schema.invoicing_thresholds
    with writing(engine) as connection:
        found = rows.read_rows(connection, None, None, {subscription_id})
        if subscription_id not in found.subscriptions:
            raise StateError([f"subscription: unknown subscription {subscription_id!r}"])
        if from_start:
            at = found.changes[subscription_id][0].effective_at
        elif isinstance(effective, datetime):
            at = effective.astimezone(UTC)
        elif isinstance(effective, date):
            customer = found.subscriptions[subscription_id].customer_id
            timezone = customer_at(found.versions[customer], FAR_FUTURE)[0].timezone
            at = periods.local_midnight(effective, timezone or "UTC")
        else:
            at = recorded_at
        change_id = connection.execute(sa.insert(table).values(
            subscription_id=subscription_id,
            threshold=None if threshold is None else str(threshold),
            effective_at=at, recorded_at=recorded_at, actor=actor,
        ).returning(table.c.change_id)).scalar_one()
    return ThresholdRow(change_id, subscription_id, threshold, at, recorded_at, actor)


def read_rows(engine: sa.Engine, subscription_ids: Iterable[str] | None = None,
              ) -> list[ThresholdRow]:
    """Every threshold row (of ``subscription_ids``, when given), in the order recorded."""
    table = schema.invoicing_thresholds
    query = sa.select(table).order_by(table.c.change_id)
    if subscription_ids is not None:
        query = query.where(table.c.subscription_id.in_(list(subscription_ids)))
    with reading(engine) as connection:
        return [ThresholdRow(row.change_id, row.subscription_id,
                             None if row.threshold is None else Decimal(row.threshold),
                             row.effective_at, row.recorded_at, row.actor)
                for row in connection.execute(query)]


def rows_table(rows: list[ThresholdRow]) -> pa.Table:
    """The rows as the lake's ``state_invoicing_thresholds`` holds them (without the
    snapshot id)."""
    return pa.Table.from_pylist([{
        "change_id": r.change_id, "subscription_id": r.subscription_id,
        "threshold": r.threshold, "effective_at": r.effective_at,
        "recorded_at": r.recorded_at, "actor": r.actor} for r in rows], schema=ROWS)


def in_effect(rows: Iterable[ThresholdRow], at: datetime) -> dict[str, Decimal]:
    """Each subscription's threshold at ``at``: its row with the latest ``effective_at``
    not after ``at`` (the later recorded on a tie); none when that row removes it."""
    latest: dict[str, ThresholdRow] = {}
    for row in rows:
        if row.effective_at > at:
            continue
        held = latest.get(row.subscription_id)
        if held is None or (row.effective_at, row.change_id) > (held.effective_at,
                                                                held.change_id):
            latest[row.subscription_id] = row
    return {sub: row.threshold for sub, row in latest.items() if row.threshold is not None}


def from_table(table: pa.Table) -> list[ThresholdRow]:
    """The rows of a ``rows_table`` (as a snapshot kept them)."""
    return [ThresholdRow(r["change_id"], r["subscription_id"], r["threshold"],
                         r["effective_at"], r["recorded_at"], r["actor"])
            for r in table.to_pylist()]
