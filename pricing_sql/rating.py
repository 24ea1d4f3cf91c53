"""Rate one billing run: usage per usage window and metric, then priced line items.

Each step is set-based SQL over all customers at once; Python only supplies the
catalog tables (one row per charge or price tier) and the lake files to read.
Both steps take a DuckDB connection (as always) or an engine (``pricing_sql/engine.py``):
the same SQL runs on DuckDB or, transpiled with sqlglot, on Spark. A customer whose
values make either step raise is left out of the month and reported, and everyone
else is rated (``pricing_sql/isolation.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp

from billing.catalog import Catalog
from billing.charges import BillingWindow, billing_windows
from pricing_sql.catalog_tables import (
    billing_windows_table,
    instants,
    plan_prices_table,
    price_cells_table,
    price_terms_table,
    price_tiers_table,
)
from pricing_sql.engine import DuckDBEngine, Engine, as_engine
from pricing_sql.isolation import (
    PRICING_STEP,
    USAGE_STEP,
    customer_list,
    customers_of,
    exclusions_table,
    poison_events,
    rate_apart,
)
from pricing_sql.metrics import compile_usage_query, numeric_properties
from pricing_sql.price_usage import price_dimensions, price_usages
from pricing_sql.rolled_rating import rolled_usage_query
from pricing_sql.sql import load_sql
from storage.lake import Lake
from storage.tables import RATING_EXCLUSIONS, USAGE

WINDOWS = pa.schema([
    ("window_id", pa.string()),
    ("customer_id", pa.string()),
    ("period_start", pa.timestamp("us", tz="UTC")),
    ("period_end", pa.timestamp("us", tz="UTC")),
])


def usage_windows(windows: Sequence[BillingWindow]) -> pa.Table:
    """The distinct windows billed in arrears, where usage is counted (a fixed fee's
    piece, ``price_id`` set, counts none)."""
    rows = sorted({w.window_id: (w.window_id, w.customer_id, w.period_start, w.period_end)
                   for w in windows if not w.in_advance and w.price_id is None}.values())
    ids, customers, starts, ends = zip(*rows, strict=True) if rows else ((), (), (), ())
    return pa.Table.from_arrays([pa.array(ids, pa.string()), pa.array(customers, pa.string()),
                                 instants(starts), instants(ends)], schema=WINDOWS)


def event_days(windows: pa.Table) -> list[date]:
    """The UTC day partitions that hold events of any window."""
    if windows.num_rows == 0:
        return []
    first = pc.min(windows.column("period_start")).as_py().date()
    last = (pc.max(windows.column("period_end")).as_py() - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# A list in order, a missing value (NULL) after every value: DuckDB and Spark order the
# NULLs inside lists differently, so the order is spelled out on the values.
LIST_ORDER = sqlglot.parse_one("list_transform(x, lambda v: coalesce('0' || v, '1'))",
                               read="duckdb")


def list_order(column: str) -> exp.Expr:
    return LIST_ORDER.transform(
        lambda node: exp.column(column) if isinstance(node, exp.Column) and node.name == "x"
        else node)


@dataclass(frozen=True)
class RatedUsage:
    usage: pa.Table  # one row per (usage window, metric[, group])
    exclusions: pa.Table  # RATING_EXCLUSIONS: customers left out, usually none

    @property
    def excluded(self) -> set[str]:
        return customers_of(self.exclusions)


def compute_usage(con: duckdb.DuckDBPyConnection | Engine, lake: Lake, catalog: Catalog,
                  month: date) -> RatedUsage:
    """One row per (usage window, metric[, group]) with the metric's value over the
    window, for every customer but those on whose events a metric raises. On DuckDB,
    read from the events' rollups where they serve (``rolled_rating.py``)."""
    return window_usage(con, lake, catalog, billing_windows(catalog, month), rollups=True)


def window_usage(con: duckdb.DuckDBPyConnection | Engine, lake: Lake, catalog: Catalog,
                 windows: Sequence[BillingWindow], rollups: bool = False) -> RatedUsage:
    """``compute_usage`` over ``windows`` (a month's, or one customer's:
    ``pricing_sql/customer_rating.py``), from events, or with ``rollups`` from them
    where they serve. A value that raises on the rollups is rated again from events,
    where the customers it raises on are found and left out."""
    engine = as_engine(con)
    requests = usage_requests(catalog)
    if rollups and isinstance(engine, DuckDBEngine) and catalog.metrics:
        rolled = _rolled_usage(engine, lake, requests, usage_windows(windows))
        if rolled is not None:
            return RatedUsage(rolled, RATING_EXCLUSIONS.empty_table())
    if not _register_period_events(engine, lake, catalog, windows):
        return RatedUsage(USAGE.empty_table(), RATING_EXCLUSIONS.empty_table())

    def usage_of(source: str) -> pa.Table:
        return _ordered_usage(engine, compile_usage_query(requests, source=source))

    def rate(customers: list[str] | None) -> pa.Table:
        if customers is None:
            return usage_of("period_events")
        engine.register("subset_customers", customer_list(customers))
        engine.run_script(load_sql("subset_events"))
        return usage_of("subset_events")

    distinct = exp.select("customer_id").distinct().from_("period_events").order_by(
        "customer_id")
    usage, failures = rate_apart(
        rate, lambda: engine.query(distinct)["customer_id"].to_pylist(),
        engine.arithmetic_errors)
    events = poison_events(engine, _numeric_keys(catalog), list(failures), usage_of)
    return RatedUsage(usage, exclusions_table(USAGE_STEP, failures, events))


def _ordered_usage(engine: Engine, union: exp.Query) -> pa.Table:
    # A total order, so the same events always give byte-identical partitions.
    query = exp.select("*").from_(union.subquery("usage")).order_by(
        "window_id", "metric_id", "grouping", list_order("group_values"))
    return engine.query(query).cast(USAGE)


def _rolled_usage(engine: DuckDBEngine, lake: Lake,
                  requests: list[tuple[str, str, tuple[str, ...]]],
                  windows: pa.Table) -> pa.Table | None:
    """The usage read from rollups where they serve; None when they serve no window or
    request, or a value raises (a lake with values ingestion did not check)."""
    files = lake.files_in("events", "event_date", event_days(windows))
    if not files:
        return None
    try:
        query = rolled_usage_query(engine, lake, requests, windows, files)
        return None if query is None else _ordered_usage(engine, query)
    except engine.arithmetic_errors:
        return None


def _register_period_events(engine: Engine, lake: Lake, catalog: Catalog,
                            billed: Sequence[BillingWindow]) -> bool:
    """``usage_windows``, ``active_events`` and ``period_events`` (usage_events.sql) of
    the ``billed`` windows; False when there is nothing to rate."""
    windows = usage_windows(billed)
    files = lake.files_in("events", "event_date", event_days(windows))
    if not files or not catalog.metrics:
        return False
    engine.register("usage_windows", windows)
    engine.register_active_events(lake, files)
    engine.run_script(load_sql("usage_events"))
    return True


def _numeric_keys(catalog: Catalog) -> list[str]:
    return numeric_properties(list(usage_metrics(catalog).values()))


def usage_metrics(catalog: Catalog) -> dict[str, str]:
    """Usage id -> SQL of every usage a run computes: each metric, and what prices need
    beyond it (``price_usage.py``: a filter's, the events over a per-event cap)."""
    metrics = {metric.id: metric.sql for metric in catalog.metrics}
    for plan in catalog.plans:
        for price in plan.all_prices():
            if price.billable_metric_id:
                metrics |= price_usages(price, catalog.metric(price.billable_metric_id).sql,
                                        price_dimensions(catalog, price))
    return metrics


def usage_requests(catalog: Catalog) -> list[tuple[str, str, tuple[str, ...]]]:
    """Each usage ungrouped (``usage_metrics``), plus each (usage, grouping) a matrix or
    grouped price needs."""
    metrics = usage_metrics(catalog)
    requests: set[tuple[str, str, tuple[str, ...]]] = {(usage_id, sql, ())
                                                       for usage_id, sql in metrics.items()}
    for plan in catalog.plans:
        for price in plan.all_prices():
            if price.usage_metric_id and price.grouping():
                usage_id = price.usage_metric_id
                requests.add((usage_id, metrics[usage_id], price.grouping()))
    return sorted(requests)


@dataclass(frozen=True)
class PricedLines:
    line_items: pa.Table  # one row per charge, rounded
    sub_line_items: pa.Table  # the breakdown by usage group and tier, unrounded
    # customers left out because pricing them raised, with the error
    failures: dict[str, str] = field(default_factory=dict)
    usage: pa.Table | None = None  # with failures: the usage less theirs, to keep instead


def price_line_items(con: duckdb.DuckDBPyConnection | Engine, catalog: Catalog, month: date,
                     usage: pa.Table, excluded: Collection[str] = ()) -> PricedLines:
    """Every charge of the run for ``month``, priced and rounded, but those of the
    ``excluded`` customers (left out of the month by the usage step) and of customers
    whose amounts overflow."""
    return price_windows(con, catalog, billing_windows(catalog, month), usage, excluded)


def register_catalog(engine: Engine, catalog: Catalog) -> None:
    """The catalog tables rate_usage.sql joins the windows and usage to."""
    engine.register("plan_prices", plan_prices_table(catalog))
    engine.register("price_terms", price_terms_table(catalog))
    engine.register("price_tiers", price_tiers_table(catalog))
    engine.register("price_cells", price_cells_table(catalog))


def price_windows(con: duckdb.DuckDBPyConnection | Engine, catalog: Catalog,
                  billed: Sequence[BillingWindow], usage: pa.Table,
                  excluded: Collection[str] = ()) -> PricedLines:
    """``price_line_items`` of the ``billed`` windows."""
    engine = as_engine(con)
    windows = [w for w in billed if w.customer_id not in excluded]
    register_catalog(engine, catalog)
    engine.register("usage", usage)

    def rate(customers: list[str] | None) -> PricedLines:
        chosen = set(customers) if customers is not None else None
        engine.register("billing_windows", billing_windows_table(
            [w for w in windows if chosen is None or w.customer_id in chosen]))
        engine.run_script(load_sql("rate_usage"))
        return PricedLines(engine.query(load_sql("line_items")),
                           engine.query(load_sql("line_item_details")))

    priced, failures = rate_apart(rate, lambda: sorted({w.customer_id for w in windows}),
                                  engine.arithmetic_errors)
    if not failures:
        return priced
    # a customer left out has no usage in the month either, for no later sum to count
    theirs = pa.array(sorted({w.window_id for w in windows if w.customer_id in failures}),
                      pa.string())
    return PricedLines(priced.line_items, priced.sub_line_items, failures,
                       usage.filter(pc.invert(pc.is_in(usage["window_id"], theirs))))


def pricing_exclusions(con: duckdb.DuckDBPyConnection | Engine, lake: Lake, catalog: Catalog,
                       month: date, failures: dict[str, str]) -> pa.Table:
    """``rating_exclusions`` rows of the customers pricing left out (``failures``), with
    their events beyond the limit ingestion sets today, if any."""
    engine = as_engine(con)
    if not failures:
        return RATING_EXCLUSIONS.empty_table()
    events = (poison_events(engine, _numeric_keys(catalog), list(failures))
              if _register_period_events(engine, lake, catalog, billing_windows(catalog, month))
              else {})
    return exclusions_table(PRICING_STEP, failures, events)
