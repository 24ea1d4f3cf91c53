"""One customer rated on demand (the API's costs, usage and upcoming invoice,
docs/api.md#costs-usage-and-the-upcoming-invoice): the billing run's own usage and
pricing SQL (``rating.window_usage``, ``rating.price_windows``) over that customer's
windows, reading only that customer's events.

The events are narrowed by a DuckDB parameter on the Parquet scan (never text in the
SQL), so the files' statistics can skip row groups without an event of the customer;
docs/capacity.md says what that is worth for each lake layout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from billing.catalog import Catalog
from billing.charges import BillingWindow
from pricing_sql.engine import DuckDBEngine
from pricing_sql.rating import price_windows, window_usage
from storage.lake import Lake


class RatingRefused(ValueError):
    """The customer's own events make rating raise (a billing run would leave the
    customer out of the month: ``rating_exclusions``)."""


class CustomerEngine(DuckDBEngine):
    """DuckDB, with ``active_events`` over one customer's events only."""

    def __init__(self, customer_id: str, con: duckdb.DuckDBPyConnection | None = None):
        super().__init__(con)
        self.customer_id = customer_id

    def register_active_events(self, lake: Lake, event_files: list[str]) -> None:
        super().register_active_events(lake, event_files)
        # The same view, narrowed: active_events.sql reads ``lake_events`` by name when
        # it is queried, so it reads this one.
        self.con.read_parquet(event_files, hive_partitioning=False).filter(
            duckdb.ColumnExpression("customer_id")
            == duckdb.ConstantExpression(self.customer_id)).create_view("lake_events",
                                                                        replace=True)


def customer_catalog(catalog: Catalog, customer_id: str) -> Catalog:
    """``catalog`` with one customer and its subscriptions: its billing windows are
    that customer's only."""
    return Catalog.model_construct(
        metrics=catalog.metrics, plans=catalog.plans, coupons=catalog.coupons,
        dimensional_price_groups=catalog.dimensional_price_groups,
        customers=[c for c in catalog.customers if c.id == customer_id],
        subscriptions=[s for s in catalog.subscriptions if s.customer_id == customer_id])


def renamed(window: BillingWindow, key: str, start: datetime | None = None,
            end: datetime | None = None) -> BillingWindow:
    """``window`` as one of several rated together (``key`` apart, on its invoice,
    subscription and window ids, which name its line items), its usage counted over
    ``[start, end)`` cut to its own period."""
    return window._replace(
        invoice_id=f"{window.invoice_id}@{key}",
        subscription_id=f"{window.subscription_id}@{key}",
        window_id=f"{window.window_id}@{key}",
        period_start=window.period_start if start is None else max(window.period_start, start),
        period_end=window.period_end if end is None else min(window.period_end, end))


@dataclass(frozen=True)
class CustomerLines:
    usage: pa.Table  # USAGE rows of the windows
    line_items: pa.Table  # LINE_ITEMS rows, priced and rounded as a run prices them


def rate_usage(lake: Lake, catalog: Catalog, customer_id: str,
               windows: Sequence[BillingWindow],
               con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """The usage of ``windows`` (all of ``customer_id``), as a billing run counts it."""
    rated = window_usage(CustomerEngine(customer_id, con), lake, catalog, windows)
    if rated.exclusions.num_rows:
        raise RatingRefused(_refusal(customer_id, rated.exclusions))
    return rated.usage


def rate_customer(lake: Lake, catalog: Catalog, customer_id: str,
                  windows: Sequence[BillingWindow],
                  con: duckdb.DuckDBPyConnection | None = None) -> CustomerLines:
    """Usage and priced line items of ``windows`` (all of ``customer_id``), as a billing
    run makes them."""
    engine = CustomerEngine(customer_id, con)
    usage = rate_usage(lake, catalog, customer_id, windows, engine.con)
    priced = price_windows(engine, catalog, windows, usage)
    if priced.failures:
        raise RatingRefused(f"pricing customer {customer_id!r} raised "
                            f"{priced.failures[customer_id]!r}")
    return CustomerLines(usage, priced.line_items)


def _refusal(customer_id: str, exclusions: pa.Table) -> str:
    row = exclusions.to_pylist()[0]
    keys = ", ".join(row["idempotency_keys"]) or "no single one (they overflow together)"
    return (f"rating customer {customer_id!r} raised {row['error']!r}; events: {keys}; "
            "amend or fix them")
