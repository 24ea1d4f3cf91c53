"""Reading the store's rows (all, or those of some ids) as recorded by an instant, and
inserting new ones. Rows come back in the order they were recorded."""

from __future__ import annotations

import io
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import sqlalchemy as sa

from state import lake_tables, schema
from state.history import Change, CustomerVersion

# An IN list longer than this reads the whole table instead.
MAX_IN = 500


@dataclass(frozen=True, slots=True)
class Created:
    """When a subscription was first written, by whom, and its customer."""

    recorded_at: datetime
    actor: str
    customer_id: str


@dataclass
class Rows:
    """Rows by id, each list in the order recorded; dicts in the order ids were created."""

    versions: dict[str, list[CustomerVersion]] = field(default_factory=dict)
    subscriptions: dict[str, Created] = field(default_factory=dict)
    changes: dict[str, list[Change]] = field(default_factory=dict)


def read_rows(connection: sa.Connection, as_recorded_at: datetime | None = None,
              customer_ids: Collection[str] | None = None,
              subscription_ids: Collection[str] | None = None) -> Rows:
    """Every row recorded by ``as_recorded_at`` (None: all), or only those of the given
    customers and subscriptions (and of the customers of those subscriptions), as
    records.

    A subscription's own row is written with its create row, so that says when, by whom
    and for which customer."""
    rows = Rows()
    changes = read_changes(connection, as_recorded_at, subscription_ids)
    for customer_id, change in zip(changes["customer_id"].to_pylist(), change_records(changes),
                                   strict=True):
        sub_id = change.subscription_id
        if change.kind == "create":
            rows.subscriptions[sub_id] = Created(change.recorded_at, change.actor, customer_id)
            rows.changes[sub_id] = [change]
        else:
            rows.changes[sub_id].append(change)
    if customer_ids is not None:
        customer_ids = {*customer_ids, *(s.customer_id for s in rows.subscriptions.values())}
    for version in version_records(read_versions(connection, as_recorded_at, customer_ids)):
        rows.versions.setdefault(version.customer_id, []).append(version)
    return rows


def version_records(table: pa.Table) -> list[CustomerVersion]:
    """A ``read_versions`` table's rows as records."""
    columns = [python_values(table[name]) for name in CustomerVersion._fields]
    columns[1] = [tuple(names) for names in columns[1]]  # fields
    return list(map(CustomerVersion._make, zip(*columns, strict=True)))


def change_records(table: pa.Table) -> list[Change]:
    """A ``read_changes`` table's rows as records."""
    columns = [python_values(table[name]) for name in Change._fields]
    return list(map(Change._make, zip(*columns, strict=True)))


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_DAY = EPOCH.date().toordinal()


def python_values(column: pa.ChunkedArray) -> list[Any]:
    """``column.to_pylist()``, instants and days built from their integers (pyarrow's
    own conversion of zoned timestamps is ten times slower)."""
    if pa.types.is_timestamp(column.type):
        return [None if v is None else EPOCH + timedelta(microseconds=v)
                for v in column.cast(pa.int64()).to_pylist()]
    if pa.types.is_date32(column.type):
        return [None if v is None else date.fromordinal(EPOCH_DAY + v)
                for v in column.cast(pa.int32()).to_pylist()]
    values: list[Any] = column.to_pylist()
    return values


def read_versions(connection: sa.Connection, as_recorded_at: datetime | None,
                  customer_ids: Collection[str] | None = None) -> pa.Table:
    """``customer_versions``' rows recorded by ``as_recorded_at`` (of ``customer_ids``;
    None: all), in the order recorded, as ``lake_tables.CUSTOMER_VERSIONS``."""
    t = schema.customer_versions
    table = _read(connection, t, [t.c[f.name] for f in lake_tables.CUSTOMER_VERSIONS],
                  t.c.version_id, as_recorded_at, t.c.customer_id, customer_ids,
                  {"fields": pa.string()})
    fields = pc.split_pattern(table["fields"], ",")
    return table.set_column(table.schema.get_field_index("fields"), "fields", fields)


CHANGES = lake_tables.SUBSCRIPTION_CHANGES.append(pa.field("customer_id", pa.string()))


def read_changes(connection: sa.Connection, as_recorded_at: datetime | None,
                 subscription_ids: Collection[str] | None = None) -> pa.Table:
    """``subscription_changes``' rows recorded by ``as_recorded_at`` (of
    ``subscription_ids``; None: all), in the order recorded, as
    ``lake_tables.SUBSCRIPTION_CHANGES`` and the subscription's ``customer_id``."""
    t, subs = schema.subscription_changes, schema.subscriptions
    columns = [t.c[f.name] for f in lake_tables.SUBSCRIPTION_CHANGES] + [subs.c.customer_id]
    return _read(connection, t, columns, t.c.change_id, as_recorded_at, t.c.subscription_id,
                 subscription_ids, join=(subs, t.c.subscription_id == subs.c.subscription_id))


def _read(connection: sa.Connection, table: sa.Table, columns: list[sa.Column[Any]],
          row_id: sa.Column[int], as_recorded_at: datetime | None, key: sa.Column[str],
          ids: Collection[str] | None, types: dict[str, pa.DataType] | None = None,
          join: tuple[sa.Table, sa.ColumnElement[bool]] | None = None) -> pa.Table:
    """``columns`` of ``table``'s rows recorded by ``as_recorded_at`` whose ``key`` is in
    ``ids`` (None: all), in the order recorded: by ``recorded_at``, then ``row_id``.

    The rows cross as one text of CSV lines, aggregated by the database and parsed by
    Arrow's CSV reader: no Python object per row or value, which is what reading
    100,000 customers and their subscriptions in well under a second takes."""
    dialect = connection.dialect.name
    line = _csv_line(columns, dialect)
    aggregate = (sa.func.group_concat(line, "\n") if dialect == "sqlite"
                 else sa.func.string_agg(line, "\n"))
    query = (sa.select(aggregate, sa.func.count()).join_from(table, *join) if join else
             sa.select(aggregate, sa.func.count()).select_from(table))
    if as_recorded_at is not None:
        query = query.where(table.c.recorded_at <= as_recorded_at)
    if ids is None or len(ids) > MAX_IN:
        found = [connection.execute(query).one()]
    else:
        chunk = sorted(ids)
        found = [connection.execute(query.where(key.in_(chunk[start:start + MAX_IN]))).one()
                 for start in range(0, len(chunk), MAX_IN)]
    types = {c.name: _arrow_type(c) for c in columns} | (types or {})
    parsed = _parse("\n".join(text for text, _ in found if text),
                    sum(count for _, count in found), types)
    if ids is not None and len(ids) > MAX_IN:
        parsed = parsed.filter(pc.is_in(parsed[key.name], pa.array(list(ids), pa.string())))
    # an aggregate's order is the database's choice
    return parsed.sort_by([("recorded_at", "ascending"), (row_id.name, "ascending")])


def _arrow_type(column: sa.Column[Any]) -> pa.DataType:
    for f in (*lake_tables.CUSTOMER_VERSIONS, *CHANGES):
        if f.name == column.name:
            return f.type
    raise KeyError(column.name)


def _csv_line(columns: list[sa.Column[Any]], dialect: str) -> sa.ColumnElement[str]:
    """The columns as one line of CSV: each value quoted with ``'`` (doubled inside),
    NULL as an unquoted ``NULL``; instants as ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC."""
    if dialect == "sqlite":  # printf's %Q quotes so, and SQLite keeps instants so
        return sa.func.printf(",".join(["%Q"] * len(columns)), *columns)
    line: sa.ColumnElement[str] | None = None
    for column in columns:
        text: sa.ColumnElement[Any]
        if isinstance(column.type, schema.Instant):
            text = sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD HH24:MI:SS.US")
        elif isinstance(column.type, sa.Date):
            text = sa.func.to_char(column, "YYYY-MM-DD")
        elif isinstance(column.type, sa.Boolean):
            text = sa.cast(sa.cast(column, sa.Integer), sa.Text)
        else:
            text = sa.cast(column, sa.Text)
        field = sa.func.coalesce(QUOTE.concat(sa.func.replace(text, "'", "''")).concat(QUOTE),
                                 NULL)
        line = field if line is None else line.concat(COMMA).concat(field)
    assert line is not None
    return line


QUOTE = sa.literal_column("''''", sa.Text)
COMMA = sa.literal_column("','", sa.Text)
NULL = sa.literal_column("'NULL'", sa.Text)


def _parse(text: str, rows: int, types: dict[str, pa.DataType]) -> pa.Table:
    """``rows`` CSV lines as an Arrow table of ``types``; instants are read as naive UTC.
    Arrow parses faster when no value holds a line break, the usual case."""
    schema_ = pa.schema(types.items())
    if not text:
        return schema_.empty_table()
    breaks = text.count("\n") != rows - 1 or "\r" in text
    naive = {name: pa.timestamp("us") if pa.types.is_timestamp(t) else t
             for name, t in types.items()}
    table = pcsv.read_csv(
        io.BytesIO(text.encode()),
        read_options=pcsv.ReadOptions(column_names=list(types)),
        parse_options=pcsv.ParseOptions(quote_char="'", newlines_in_values=breaks),
        convert_options=pcsv.ConvertOptions(
            column_types=naive, null_values=["NULL"], strings_can_be_null=True,
            quoted_strings_can_be_null=False, true_values=["1"], false_values=["0"]))
    return table.cast(schema_)


def external_id_owners(connection: sa.Connection,
                       external_ids: Collection[str]) -> dict[str, set[str]]:
    """The customers any of whose versions ever had each of ``external_ids``."""
    t = schema.customer_versions
    query = sa.select(t.c.external_customer_id, t.c.customer_id).where(
        t.c.external_customer_id.is_not(None)).distinct()
    owners: dict[str, set[str]] = {}
    if len(external_ids) <= MAX_IN:
        query = query.where(t.c.external_customer_id.in_(sorted(external_ids)))
    for external_id, customer_id in connection.execute(query):
        if external_id in external_ids:
            owners.setdefault(external_id, set()).add(customer_id)
    return owners


def customer_ids(connection: sa.Connection) -> list[str]:
    return list(connection.execute(sa.select(schema.customers.c.customer_id)).scalars())


def insert(connection: sa.Connection, table: sa.Table, rows: Iterable[dict[str, Any]]) -> int:
    batch = list(rows)
    if batch:
        connection.execute(table.insert(), batch)
    return len(batch)


def version_row(version: CustomerVersion) -> dict[str, Any]:
    row = version._asdict()
    del row["version_id"]
    row["fields"] = ",".join(version.fields)
    return row


def change_row(change: Change) -> dict[str, Any]:
    row = change._asdict()
    del row["change_id"]
    if change.quantity is not None:
        row["quantity"] = f"{change.quantity:f}"
    return row
