"""Usage rolled up per customer and UTC hour, and per UTC day, so that a month's rating
reads a few rows per customer and day instead of every event.

The rollup of an event file (one batch's events of one UTC day) holds, for each usage
request (a metric, and a grouping a price needs) that decomposes, its partial
aggregates per customer, hour and group values: ``count`` as a count, ``sum`` as a sum,
``min`` and ``max`` as themselves, ``count(DISTINCT x)`` as the distinct values of x
(a key of the rows); the day's rows combine its hours. The hour rollup keeps a
day's hours as slots of one row (rollup_slots.py). A window whose
bounds fall on UTC hours is then its whole days' rows plus its edge hours' slots, and
the metric's value is its aggregates combined (a sum of counts, a sum of sums, a min of
mins) with the metric's own arithmetic around them: the same value, of the same type,
as over the events (tests/test_rollups.py checks that with hypothesis).

Everything else is read from events (rolled_rating.py): requests that do not decompose
(``latest_by``/``earliest_by``, ``avg``, arithmetic inside an aggregate), windows whose
bounds are not on a UTC hour (half-hour zones, a change at 10:30), and windows that an
amendment or a replacing backfill touches (they deprecate single events, which a rollup
cannot take back out).

Rollups are derived data, like the key index: ``lake/event_rollups/<grain>/event_date=
<day>/<batch_id>.<spec>.<stamp>.parquet``. ``spec`` fingerprints the requests (a catalog
whose metrics change gets new rollups), ``stamp`` the event file's size and mtime (a
replayed batch's rewritten file gets new ones). Ingestion writes them with the events;
rating writes those that are missing (a lake ingested before, a new metric).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property, partial
from itertools import pairwise
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from pricing_sql.metrics import (
    AGGREGATES,
    DIALECT,
    QUANTITY_TYPE,
    compiled_parts,
    group_value,
    union_all,
    usage_columns,
)
from pricing_sql.rollup_slots import reduced, slotted_query
from storage.lake import Lake, write_atomically
from storage.tables import EVENTS

# Bump when what a rollup file holds changes: every rollup is then made again.
FORMAT = "2"
TABLE = "event_rollups"
HOUR, DAY, MONTH = "hour", "day", "month"  # MONTH: rollup_compaction.py
LOCK = "rollups"  # held by rating while it writes missing rollups
# A request's rows are cut into row groups of this many (a day file of 10,000 customers
# holds 10,000-150,000 rows a request): small enough that reading a few customers' rows
# decodes few others', big enough to read quickly.
ROW_GROUP_ROWS = 16_384
HOUR_US = 3_600_000_000
EPOCH = date(1970, 1, 1)  # a day bucket is the days since it
# The hour of an event, counted from the epoch: an integer, so that no session time zone
# and no timestamp arithmetic enters the windows' comparison with it.
BUCKET = sqlglot.parse_one(f'epoch_us("timestamp") // {HOUR_US}', read=DIALECT)

Request = tuple[str, str, tuple[str, ...]]  # (usage id, metric SQL, grouping)


@dataclass(frozen=True)
class Partial:
    column: str
    aggregate: exp.Expr  # as compiled: properties read as text or DECIMAL
    type: str  # SQL type of the partial

    @property
    def distinct(self) -> bool:
        """A count(DISTINCT x): its partial is each distinct x, as text, a grouping key
        of the rollup rows rather than an aggregate (the other partials of the same
        request stay exact: a sum over finer groups is the same sum)."""
        return isinstance(self.aggregate.this, exp.Distinct)

    def rolled_up(self) -> exp.Expr:
        """The partial, over an hour's events."""
        if self.distinct:
            return exp.cast(self.aggregate.this.expressions[0].copy(), "VARCHAR")
        return self.aggregate.copy()

    def combined(self) -> exp.Expr:
        """The aggregate over more than one hour (a day, a window), from its partials."""
        column = exp.column(self.column)
        if self.distinct:
            return exp.Count(this=exp.Distinct(expressions=[column]))
        if isinstance(self.aggregate, exp.Count):
            return exp.cast(exp.Sum(this=column), "BIGINT")
        return type(self.aggregate)(this=column)


@dataclass(frozen=True)
class Rolled:
    """A request rating reads from rollups."""

    index: int
    request: Request
    value: exp.Expr
    where: exp.Expr | None
    partials: tuple[Partial, ...]


@dataclass(frozen=True)
class RollupSpec:
    requests: tuple[Rolled, ...]

    # The SQL is made once per spec (ingestion keeps the catalog's spec with the catalog,
    # rating makes one per run): building it with sqlglot costs about 55 ms, more than
    # rolling up a 1,000-event batch (docs/capacity.md).
    @cached_property
    def hour_sql(self) -> str:
        return hour_query(self, "rollup_source").sql(dialect=DIALECT)

    @cached_property
    def day_sql(self) -> str:
        return day_query(self, "rollup_source_slots").sql(dialect=DIALECT)

    @cached_property
    def slotted_hour_sql(self) -> str:
        return slotted_hour_query(self, "rollup_source_hours").sql(dialect=DIALECT)

    @cached_property
    def fingerprint(self) -> str:
        # Not of slotted_hour_sql: made from the same partials, its shape is the code's
        # (FORMAT), and writing its SQL takes sqlglot about 0.1 s, which rating never pays.
        return hashlib.sha256((FORMAT + self.hour_sql + self.day_sql).encode()).hexdigest()[:16]

    @property
    def columns(self) -> list[Partial]:
        return [p for rolled in self.requests for p in rolled.partials]


def split_requests(requests: Sequence[Request]) -> tuple[RollupSpec, list[Request]]:
    """The requests that decompose, as a spec, and the rest (read from events)."""
    rolled: list[Rolled] = []
    rest: list[Request] = []
    for request in sorted(requests):
        value, where = compiled_parts(request[1])
        partials = _partials(value, len(rolled))
        if partials is None:
            rest.append(request)
        else:
            rolled.append(Rolled(len(rolled), request, value, where, partials))
    return RollupSpec(tuple(rolled)), rest


def _partials(value: exp.Expr, index: int) -> tuple[Partial, ...] | None:
    partials: dict[str, Partial] = {}
    for aggregate in value.find_all(*AGGREGATES):
        kind = _partial_type(aggregate)
        if kind is None:
            return None
        key = aggregate.sql(dialect=DIALECT)
        if key not in partials:
            partials[key] = Partial(f"r{index}_{len(partials)}", aggregate, kind)
    return tuple(partials.values())


def _partial_type(aggregate: exp.Expr) -> str | None:
    """The type of the aggregate's partial when the aggregate decomposes exactly and
    cannot raise while it is rolled up, else None."""
    arg = aggregate.this
    if isinstance(aggregate, exp.Count) and isinstance(arg, exp.Distinct):
        # text as DuckDB casts it (a DECIMAL(38, 9) always with its 9 places): one text
        # per distinct value; not timestamps, whose text has the session's zone
        (arg,) = arg.expressions if len(arg.expressions) == 1 else (None,)
        plain = isinstance(arg, exp.JSONExtractScalar) or _numeric(arg) or (
            isinstance(arg, exp.Column) and arg.name == "event_name")
        return "VARCHAR" if plain else None
    if isinstance(aggregate, exp.Count):
        plain = isinstance(arg, exp.Star | exp.Column | exp.JSONExtractScalar) or _numeric(arg)
        return "BIGINT" if plain else None
    if isinstance(aggregate, exp.Sum | exp.Min | exp.Max) and _numeric(arg):
        return QUANTITY_TYPE
    # avg, latest_by, earliest_by, arithmetic inside an aggregate, and min or max of
    # text (which no quantity can be)
    return None


def _numeric(arg: exp.Expr | None) -> bool:
    """A property read as a number (metrics.py: a cast of its JSON text)."""
    return isinstance(arg, exp.Cast) and isinstance(arg.this, exp.JSONExtractScalar)


def _group_values(grouping: tuple[str, ...]) -> exp.Expr:
    # as compile_metric groups the events: each key's value as text, in order
    return exp.cast(exp.Array(expressions=[group_value(key) for key in grouping]),
                    "VARCHAR[]")


def hour_query(spec: RollupSpec, source: str = "events") -> exp.Query:
    """Every rolled request's partials per customer, hour, group values (and distinct
    values) over ``source``'s events, one column per partial (NULL on the other
    requests' rows). Unordered: what is kept is made from it (the day rows, the hour
    slots), in an order of their own."""
    selects = []
    for rolled in spec.requests:
        group_values = _group_values(rolled.request[2])
        columns = [exp.alias_(p.rolled_up(), p.column) if p in rolled.partials
                   else exp.alias_(exp.cast(exp.null(), p.type), p.column)
                   for p in spec.columns]
        distinct = [p.rolled_up() for p in rolled.partials if p.distinct]
        selects.append(
            exp.select(exp.column("customer_id"), exp.alias_(BUCKET.copy(), "bucket"),
                       exp.alias_(exp.cast(exp.Literal.number(rolled.index), "INTEGER"),
                                  "request"),
                       exp.alias_(group_values, "group_values"), *columns)
            .from_(exp.to_table(source)).where(rolled.where.copy() if rolled.where else None)
            .group_by(exp.column("customer_id"), BUCKET.copy(), group_values.copy(),
                      *distinct))
    return union_all(selects)


def day_query(spec: RollupSpec, source: str) -> exp.Select:
    """The hours' partials combined per UTC day (distinct values stay keys), from
    ``source``'s hour slots (``slotted_hour_query``), which hold a row per day already:
    each row's slots combined."""
    day = exp.IntDiv(this=exp.column("first_hour"), expression=exp.Literal.number(24))
    return (exp.select(exp.column("customer_id"), exp.alias_(day, "bucket"),
                       exp.column("request"), exp.column("group_values"),
                       *(exp.column(p.column) if p.distinct
                         else exp.alias_(reduced(p, exp.column(p.column)), p.column)
                         for p in spec.columns))
            .from_(exp.to_table(source)).order_by(*_order(spec)))


def slotted_hour_query(spec: RollupSpec, source: str, slots: int = 24) -> exp.Query:
    """The hours' partials as a row per UTC day with a slot per hour (rollup_slots.py):
    what an hour rollup file holds, since only windows starting or ending inside a day
    read it, and they read a range of its hours. No slots: its schema, quickly."""
    first = exp.Mul(this=exp.IntDiv(this=exp.column("bucket"), expression=exp.Literal.number(24)),
                    expression=exp.Literal.number(24))
    return slotted_query(spec, source, first, slots, ("first_hour", "hours"))


def _order(spec: RollupSpec) -> list[str]:
    # By request first, so that each request's rows are row groups of their own and
    # rating, which reads each request on its own, skips the others' groups
    # (``write_rows``); then a total order, so that the same events give the same file.
    return ["request", "customer_id", "bucket", "group_values",
            *(p.column for p in spec.columns if p.distinct)]


def roll_up(con: duckdb.DuckDBPyConnection, spec: RollupSpec,
            events: pa.Table | duckdb.DuckDBPyRelation) -> tuple[pa.Table, pa.Table]:
    """The hour and day rollups of ``events`` (an event file's rows): each day's hours as
    slots of a row, and a row per day."""
    _register_hours(con, spec, events)
    slots = con.sql(spec.slotted_hour_sql).to_arrow_table()
    return slots, _days(con, spec, slots)


def empty_rollup(con: duckdb.DuckDBPyConnection, spec: RollupSpec, grain: str) -> pa.Table:
    """A rollup of ``grain`` (``HOUR`` or ``DAY``) with no rows, in the spec's schema."""
    _register_hours(con, spec, EVENTS.empty_table())
    slotless = slotted_hour_query(spec, "rollup_source_hours", slots=0).sql(dialect=DIALECT)
    slots = con.sql(slotless).to_arrow_table()
    return _days(con, spec, slots) if grain == DAY else slots


def _days(con: duckdb.DuckDBPyConnection, spec: RollupSpec, slots: pa.Table) -> pa.Table:
    con.register("rollup_source_slots", slots)
    return con.sql(spec.day_sql).to_arrow_table()


def _register_hours(con: duckdb.DuckDBPyConnection, spec: RollupSpec,
                    events: pa.Table | duckdb.DuckDBPyRelation) -> None:
    """``rollup_source_hours``: the hour rows of ``events``, one per bucket."""
    if isinstance(events, pa.Table):
        con.register("rollup_source", events)
    else:
        events.create_view("rollup_source", replace=True)
    con.register("rollup_source_hours", con.sql(spec.hour_sql).to_arrow_table())


def rollup_files(lake: Lake, spec: RollupSpec, event_file: str | Path) -> tuple[Path, Path]:
    """Where the (hour, day) rollups of one event file, as it is now, are kept."""
    path = Path(event_file)
    stat = path.stat()
    name = f"{path.stem}.{spec.fingerprint}.{stat.st_size}-{stat.st_mtime_ns}.parquet"
    base = lake.table_dir(TABLE)
    return (base / HOUR / path.parent.name / name, base / DAY / path.parent.name / name)


def stale_rollups(lake: Lake, batch_id: str) -> list[Path]:
    """Every rollup of a batch's event files, under any spec."""
    return sorted(lake.table_dir(TABLE).glob(f"*/*=*/{batch_id}.*.parquet"))


def write_rollups(lake: Lake, spec: RollupSpec, event_file: str | Path,
                  rollups: tuple[pa.Table, pa.Table]) -> None:
    for target, rows in zip(rollup_files(lake, spec, event_file), rollups, strict=True):
        write_atomically(target, partial(write_rows, rows))


def write_rows(rows: pa.Table, path: Path) -> None:
    """``rows``, in request order, with each request's rows in row groups of their own:
    a rating query reads one request, and skips the groups of the others by their
    statistics. Cut only by size, the few thousand rows of a day's small requests shared
    groups, and each request's read decoded the others' slots as well (docs/capacity.md)."""
    # Text in dictionaries: a count DISTINCT's values repeat within each customer's rows,
    # and reading them from dictionary pages took a third off its read (docs/capacity.md).
    text = [field.name if pa.types.is_string(field.type) else f"{field.name}.list.element"
            for field in rows.schema
            if pa.types.is_string(field.type) or pa.types.is_list(field.type)]
    with pq.ParquetWriter(path, rows.schema, compression="zstd", compression_level=1,
                          use_dictionary=text) as writer:
        for part in _request_runs(rows):
            writer.write_table(part, row_group_size=ROW_GROUP_ROWS)


def _request_runs(rows: pa.Table) -> list[pa.Table]:
    """``rows`` cut where ``request`` changes (all of them, when none are): where
    Arrow's run-end encoding of the column ends its runs."""
    if rows.num_rows == 0:
        return [rows]
    ends = pc.run_end_encode(rows["request"].combine_chunks()).run_ends.to_pylist()
    return [rows.slice(start, end - start) for start, end in pairwise([0, *ends])]


def ensure_rollups(con: duckdb.DuckDBPyConnection, lake: Lake, spec: RollupSpec,
                   event_files: Sequence[str]) -> list[tuple[str, Path, Path]]:
    """(event file, its hour rollup, its day rollup) of each file, rolled up now where
    they are missing (a lake ingested before, or under other metrics)."""
    found = [(file, *rollup_files(lake, spec, file)) for file in event_files]
    missing = [file for file, hour, day in found if not (hour.exists() and day.exists())]
    if missing:
        # an ingestion's recovery removes rollup scratch files under this lock only
        with lake.lock(LOCK):
            for file in missing:
                events = con.read_parquet(file, hive_partitioning=False)
                write_rollups(lake, spec, file, roll_up(con, spec, events))
    return found


def remove_rollup_scratch(lake: Lake) -> None:
    """Remove the scratch files of rollup writes that were killed: an ingestion's
    recovery calls it, holding the ingest lock (ingestion's own writers) and taking the
    rollup lock (rating's)."""
    with lake.lock(LOCK):
        for grain in (HOUR, DAY, MONTH):
            lake.remove_scratch(lake.table_dir(TABLE) / grain)


def rolled_query(spec: RollupSpec, source: str = "rolled_rows") -> exp.Query:
    """Each rolled request's usage per window and group values from ``source``'s rollup
    rows (rolled_rows.sql), in compile_metric's columns: its aggregates combined from
    their partials, the metric's arithmetic around them as written. Rows are grouped by
    the window's number, and by group values only where the request groups: hashing
    the window's text id and an empty list per rollup row cost a third of the read
    (docs/capacity.md); split_windows.sql gives the ids back."""
    selects = []
    for rolled in spec.requests:
        usage_id, _, grouping = rolled.request
        partial_of = {p.aggregate.sql(dialect=DIALECT): p for p in rolled.partials}

        def combined(node: exp.Expr, partial_of: dict[str, Partial] = partial_of) -> exp.Expr:
            if isinstance(node, AGGREGATES):
                return partial_of[node.sql(dialect=DIALECT)].combined()
            return node

        value = rolled.value.transform(combined)
        keys = [exp.column("window_no")]
        group_values = _group_values(())
        if grouping:
            group_values = exp.column("group_values")
            keys.append(group_values)
        selects.append(
            exp.select(*usage_columns(usage_id, grouping, group_values, value, "window_no"))
            .from_(exp.to_table(source))
            .where(exp.column("request").eq(exp.Literal.number(rolled.index)))
            .group_by(*keys))
    usage = union_all(selects).subquery("u")
    return (exp.select(exp.column("window_id", "w"), *(exp.column(c, "u") for c in
                       ("metric_id", "grouping", "group_values", "quantity")))
            .from_(usage).join(exp.to_table("split_windows").as_("w"), using=["window_no"]))
