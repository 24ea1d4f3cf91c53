"""The state store: customers, subscriptions and every change to them, in SQLite or
PostgreSQL, behind one interface.

    store = StateStore.open(settings.state_store_url)
    store.apply([AddCustomer(customer, actor="ana")], references=catalog)
    snapshot = store.snapshot(as_recorded_at=last_month_close)

``apply`` writes a list of operations as one transaction, or nothing with every
problem (``StateError``). Rows are only ever inserted; ``snapshot`` reads them back as
they were known at an instant.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType

import pyarrow.compute as pc
import sqlalchemy as sa

from billing.catalog.models import Catalog
from state import outbox, rows, schema
from state.checks import References
from state.database import create_engine, reading, upgrade, writing
from state.events import written_events
from state.operations import Operation
from state.snapshot import Snapshot
from state.writes import Batch, touched_ids

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Written:
    """What ``apply`` wrote, and the ``recorded_at`` of every row of it."""

    recorded_at: datetime
    customers: int
    versions: int
    subscriptions: int
    changes: int


# The shared stores, by URL and process, least recently used first.
_SHARED: dict[tuple[str, int], StateStore] = {}
SHARED_KEPT = 4
_SHARED_LOCK = threading.Lock()


class StateStore:
    def __init__(self, engine: sa.Engine, clock: Clock = utc_now):
        self.engine = engine
        self.clock = clock

    @classmethod
    def open(cls, url: str, clock: Clock = utc_now) -> StateStore:
        """The store at ``url`` (a SQLAlchemy URL: ``sqlite:///path/state.db``,
        ``postgresql://user@host/db``), its schema upgraded to the newest migration."""
        engine = create_engine(url)
        upgrade(engine)
        return cls(engine, clock)

    @classmethod
    def shared(cls, url: str) -> StateStore:
        """This process's store at ``url``, opened once and kept open (never close it),
        as SQLAlchemy means an engine to be kept: for readers on a hot path
        (``current_catalog``, read for each landed segment and API request), where an
        engine and the migration check cost 40 ms a time. A forked child opens its own:
        an engine's connections must not cross a fork."""
        key = (url, os.getpid())
        with _SHARED_LOCK:  # API requests call this from many threads
            store = _SHARED.pop(key, None) or cls.open(url)
            _SHARED[key] = store  # the newest last
            while len(_SHARED) > SHARED_KEPT:  # a process of many stores (tests) keeps a few
                _SHARED.pop(next(iter(_SHARED))).close()
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def apply(self, operations: Sequence[Operation], references: Catalog) -> Written:
        """Write ``operations`` in one transaction, all recorded at one instant, or
        nothing: ``StateError`` lists every problem. ``references``: the catalog whose
        plans and coupons subscriptions may name."""
        operations = list(operations)
        customer_ids, subscription_ids, external_ids = touched_ids(operations)
        with writing(self.engine) as connection:
            recorded_at = self._recorded_at(connection)
            batch = Batch(rows.read_rows(connection, None, customer_ids, subscription_ids),
                          References(references),
                          rows.external_id_owners(connection, external_ids), recorded_at)
            for op in operations:
                batch.add(op)
            new = batch.finish()
            written = Written(
                recorded_at,
                rows.insert(connection, schema.customers, new.customers),
                rows.insert(connection, schema.customer_versions,
                            map(rows.version_row, new.versions)),
                rows.insert(connection, schema.subscriptions, new.subscriptions),
                rows.insert(connection, schema.subscription_changes,
                            map(rows.change_row, new.changes)))
            # what the write makes true is told in the same transaction (docs/webhooks.md)
            outbox.append(connection, written_events(
                (row["customer_id"] for row in new.customers), new.versions, new.changes,
                batch.rows), recorded_at, operations[0].actor if operations else "")
            return written

    def _recorded_at(self, connection: sa.Connection) -> datetime:
        """The clock's instant, moved after the newest row if the clock is behind it, so
        that writers (one at a time) record in the order they commit."""
        now = self.clock().astimezone(UTC)
        newest = self._newest(connection)
        return now if newest is None or now > newest else newest + timedelta(microseconds=1)

    def snapshot(self, as_recorded_at: datetime | None = None,
                 as_of: datetime | None = None) -> Snapshot:
        """The state as the rows recorded by ``as_recorded_at`` (None: all of them) give
        it; ``as_of`` (default: ``as_recorded_at``, else now) is the instant customer
        edits and added adjustments are taken in effect at."""
        with reading(self.engine) as connection:
            versions = rows.read_versions(connection, as_recorded_at)
            changes = rows.read_changes(connection, as_recorded_at)
        if as_of is None:
            # now, and never before a row it holds (``_recorded_at`` may run ahead of the
            # clock), so that a change made now, effective now, is in effect
            newest = [pc.max(table["recorded_at"]).as_py() for table in (versions, changes)]
            as_of = as_recorded_at or max([self.clock(), *filter(None, newest)])
        return Snapshot(versions, changes, as_recorded_at, as_of.astimezone(UTC))

    def last_recorded_at(self) -> datetime | None:
        """When the newest row was written (None: the store is empty): the state has not
        changed while this stays the same, rows being only ever inserted."""
        with reading(self.engine) as connection:
            return self._newest(connection)

    @staticmethod
    def _newest(connection: sa.Connection) -> datetime | None:
        latest = [connection.execute(sa.select(sa.func.max(table.c.recorded_at))).scalar()
                  for table in (schema.customer_versions, schema.subscription_changes)]
        return max((value for value in latest if value is not None), default=None)

    def customer_ids(self) -> list[str]:
        with reading(self.engine) as connection:
            return rows.customer_ids(connection)
