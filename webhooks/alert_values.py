"""What alerts compare with their thresholds (docs/webhooks.md#alerts): each subscription's
upcoming invoice so far (its usage per metric and its cost), and each customer's prepaid
balance per currency.

The subscriptions of one evaluation are rated in one pass, with the billing run's own
usage and pricing SQL (``pricing_sql.rating``) over the events of their customers only
(a DuckDB filter on the Parquet scan, as ``pricing_sql.customer_rating`` narrows one
customer): an evaluation after a batch costs one scan, not one per customer. Each
subscription's windows are renamed apart (``customer_rating.renamed``) and cut at now.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

import duckdb

from billing import periods
from billing.catalog import Catalog, Customer, Subscription
from billing.charges import BillingWindow, adjustment_terms, billing_windows
from invoicing import credit_grants
from invoicing.assembly import totals_by_key
from pricing_sql.customer_rating import renamed
from pricing_sql.engine import DuckDBEngine
from pricing_sql.rating import price_windows, window_usage
from storage.duck import connect
from storage.lake import Lake


@dataclass(frozen=True)
class Period:
    start: datetime  # the usage billing period under way, as instants
    end: datetime
    usage: dict[str, Decimal]  # metric: quantity so far
    cost: Decimal  # the invoice so far, with its adjustments, before prepaid credits


class CustomersEngine(DuckDBEngine):
    """DuckDB, with ``active_events`` over some customers' events only."""

    def __init__(self, customer_ids: Collection[str], con: duckdb.DuckDBPyConnection):
        super().__init__(con)
        self.customer_ids = sorted(customer_ids)

    def register_active_events(self, lake: Lake, event_files: list[str]) -> None:
        super().register_active_events(lake, event_files)
        # active_events.sql reads ``lake_events`` by name when queried: this one
        self.con.read_parquet(event_files, hive_partitioning=False).filter(
            duckdb.ColumnExpression("customer_id").isin(
                *(duckdb.ConstantExpression(c) for c in self.customer_ids))
        ).create_view("lake_events", replace=True)


def covering(catalog: Catalog, subscription_id: str, today: date) -> list[BillingWindow]:
    """The subscription's windows whose service days include ``today``, from every run
    that can invoice one (at a window's start, or at its cycle's end)."""
    longest = max((p.cadence_months for plan in catalog.plans for p in plan.all_prices()),
                  default=1)
    first = periods.add_months(today.replace(day=1), -longest - 1)
    found: dict[tuple[str, str], BillingWindow] = {}
    for months in range(2 * longest + 3):
        for w in billing_windows(catalog, periods.add_months(first, months)):
            if w.subscription_id == subscription_id and w.service_start <= today < w.service_end:
                found[(w.invoice_id, w.window_id)] = w
    return list(found.values())


Wanted = tuple[str, str | None]  # (subscription id, currency or None: every currency)


def subscription_periods(lake: Lake, catalog: Catalog,
                         wanted: Mapping[Wanted, Customer], now: datetime,
                         ) -> tuple[dict[Wanted, Period], dict[str, str]]:
    """Each wanted subscription's upcoming invoice so far (one it does not bill today is
    left out), and the customers whose events make rating raise, with the error."""
    chosen: list[BillingWindow] = []
    terms = []
    spans: dict[str, tuple[Customer, list[BillingWindow]]] = {}
    own = _own_catalogs(catalog, {c.id for c in wanted.values()})
    for index, ((subscription_id, currency), customer) in enumerate(wanted.items()):
        today = periods.local_day(now, customer.timezone)
        windows = [w for w in covering(own[customer.id], subscription_id, today)
                   if currency is None or w.currency == currency]
        if not windows:
            continue
        key = str(index)
        spans[key] = (customer, windows)
        chosen += [renamed(w, key, end=now) for w in windows]
        terms += [replace(t, invoice_id=f"{t.invoice_id}@{key}",
                          subscription_id=f"{t.subscription_id}@{key}")
                  for t in adjustment_terms(own[customer.id], windows)]
    if not chosen:
        return {}, {}
    customers = {c.id for c, _ in spans.values()}
    rating = Catalog.model_construct(
        metrics=catalog.metrics, plans=catalog.plans, coupons=catalog.coupons,
        customers=[c for c in catalog.customers if c.id in customers],
        subscriptions=[s for c in customers for s in own[c].subscriptions])
    with closing(connect()) as con:
        engine = CustomersEngine(customers, con)
        rated = window_usage(engine, lake, rating, chosen)
        failures = {row["customer_id"]: row["error"] for row in rated.exclusions.to_pylist()}
        priced = price_windows(engine, rating, chosen, rated.usage, set(failures))
        failures |= priced.failures
        lines = priced.line_items
        costs = totals_by_key(con, terms, lines, rating, chosen)
    usage = priced.usage if priced.usage is not None else rated.usage
    quantities: defaultdict[str, dict[str, Decimal]] = defaultdict(dict)
    for row in usage.to_pylist():
        if not row["grouping"]:
            quantities[row["window_id"]][row["metric_id"]] = row["quantity"] or Decimal(0)
    found: dict[Wanted, Period] = {}
    for index, (wanted_key, _customer) in enumerate(wanted.items()):
        key = str(index)
        if key not in spans or spans[key][0].id in failures:
            continue
        customer, windows = spans[key]
        found[wanted_key] = _period(customer, windows, key, quantities, costs.get(key, Decimal(0)))
    return found, failures


def _own_catalogs(catalog: Catalog, customer_ids: Collection[str]) -> dict[str, Catalog]:
    """``customer_rating.customer_catalog`` of each customer, the catalog's customers and
    subscriptions read once rather than once per customer."""
    subscriptions: defaultdict[str, list[Subscription]] = defaultdict(list)
    for sub in catalog.subscriptions:
        if sub.customer_id in customer_ids:
            subscriptions[sub.customer_id].append(sub)
    return {c.id: Catalog.model_construct(
        metrics=catalog.metrics, plans=catalog.plans, coupons=catalog.coupons, customers=[c],
        subscriptions=subscriptions[c.id]) for c in catalog.customers if c.id in customer_ids}


def _period(customer: Customer, windows: Sequence[BillingWindow], key: str,
            quantities: Mapping[str, dict[str, Decimal]], cost: Decimal) -> Period:
    """Each metric counted over the shortest usage cycle under way (the latest start)."""
    arrears = sorted((w for w in windows if not w.in_advance), key=lambda w: w.service_start)
    usage: dict[str, Decimal] = {}
    for window in arrears:  # a later start overrides an earlier one
        usage |= quantities.get(f"{window.window_id}@{key}", {})
    span = arrears or list(windows)
    start = max(w.service_start for w in span)
    end = min(w.service_end for w in span if w.service_start == start)
    return Period(periods.local_midnight(start, customer.timezone),
                  periods.local_midnight(end, customer.timezone), usage, cost)


def balances(lake: Lake, wanted: Collection[tuple[str, str]],
             customers: Mapping[str, Customer], now: datetime) -> dict[tuple[str, str], Decimal]:
    """Each wanted (customer, currency)'s prepaid balance now
    (``credit_grants.balances_in_effect``, which top-ups compare too)."""
    return credit_grants.balances_in_effect(lake, wanted, customers, now)
