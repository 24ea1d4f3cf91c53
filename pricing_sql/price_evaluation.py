"""A price evaluated over one customer's events (Orb's ``POST /prices/{price_id}/evaluate``,
docs/api.md#prices): the price's usage over ``[start, end)``, optionally narrowed by a
filter and split by event properties, each group priced.

The usage is counted as a billing run counts it: the customer's active events
(``CustomerEngine``: de-duplicated, amended, deprecated), ``usage_events.sql`` for the
period, and the metric compiled by ``metrics.compile_metric`` with the price's own filter
and dimension values and the request's filter added as syntax trees. Every group is then
priced in one pass of the run's pricing SQL (``evaluate.price_breakdowns``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
from sqlglot import exp

from billing.catalog import Catalog
from billing.catalog.prices import Price
from pricing_sql.customer_rating import CustomerEngine
from pricing_sql.evaluate import EVALUATE, Usage, price_breakdowns
from pricing_sql.metrics import compile_metric, filtered_metric
from pricing_sql.price_usage import price_dimensions, usage_filter
from pricing_sql.rating import WINDOWS, event_days
from pricing_sql.sql import load_sql
from storage.lake import Lake

MAX_GROUPS = 1000  # Orb's limit on the groups one evaluation returns


@dataclass(frozen=True)
class EvaluatedGroup:
    grouping_values: tuple[str | None, ...]  # in the order of the grouping keys
    quantity: Decimal  # the price's usage in the group
    amount: Decimal  # rounded to the currency's minor unit


class TooManyGroups(ValueError):
    pass


def evaluate_for_customer(lake: Lake, catalog: Catalog, price: Price, currency: str,
                          customer_id: str, start: datetime, end: datetime,
                          grouping_keys: Sequence[str] = (),
                          filter_sql: str | None = None) -> list[EvaluatedGroup]:
    """``price`` (of a plan in ``currency``) over ``customer_id``'s events in
    ``[start, end)``, one group per distinct value of ``grouping_keys``; raises
    ``MetricSQLError`` for a bad filter or key, ``ValueError`` for a price that cannot be
    evaluated for a total (``evaluate``'s rules)."""
    keys = tuple(grouping_keys)
    own = price.grouping()  # a grouped or matrix price's own keys, priced within a group
    if price.billable_metric_id is None:  # a fixed fee: its quantity, whatever the events
        quantity = price.fixed_price_quantity or Decimal(1)
        return _priced(price, currency, {(None,) * len(keys): [((), quantity)]}, own)
    sql = catalog.metric(price.billable_metric_id).sql
    for condition in (usage_filter(price, price_dimensions(catalog, price)), filter_sql):
        if condition:
            sql = filtered_metric(sql, condition)
    columns = keys + tuple(key for key in own if key not in keys)
    query = compile_metric(EVALUATE, sql, "period_events", columns)
    rows = _usage(lake, customer_id, start, end, query)
    groups: dict[tuple[str | None, ...], list[tuple[tuple[str | None, ...], Decimal]]] = {}
    for row in rows:
        values = dict(zip(columns, row["group_values"], strict=True))
        groups.setdefault(tuple(values[k] for k in keys), []).append(
            (tuple(values[k] for k in own), row["quantity"]))
    if not groups and not keys:  # no events: the price at no usage (a minimum still bills)
        groups[()] = [] if own else [((), Decimal(0))]
    if len(groups) > MAX_GROUPS:
        raise TooManyGroups(f"grouping_keys: {len(groups)} groups, at most {MAX_GROUPS}; "
                            "narrow the timeframe or the filter")
    return _priced(price, currency, groups, own)


def _usage(lake: Lake, customer_id: str, start: datetime, end: datetime,
           query: exp.Select) -> list[dict[str, Any]]:
    windows = pa.Table.from_pylist([{"window_id": EVALUATE, "customer_id": customer_id,
                                     "period_start": start, "period_end": end}],
                                   schema=WINDOWS)
    files = lake.files_in("events", "event_date", event_days(windows))
    if not files:
        return []
    engine = CustomerEngine(customer_id)
    engine.register("usage_windows", windows)
    engine.register_active_events(lake, files)
    engine.run_script(load_sql("usage_events"))
    rows: list[dict[str, Any]] = engine.query(query).to_pylist()
    return rows


def _priced(price: Price, currency: str,
            groups: dict[tuple[str | None, ...], list[tuple[tuple[str | None, ...], Decimal]]],
            own: tuple[str, ...]) -> list[EvaluatedGroup]:
    ordered = sorted(groups.items(), key=lambda item: [(v is None, v or "") for v in item[0]])
    usages: list[Usage] = [
        [{"group": dict(zip(own, values, strict=True)), "quantity": quantity}
         for values, quantity in rows] if own else sum((q for _, q in rows), Decimal(0))
        for _, rows in ordered]
    priced = price_breakdowns(price_json(price, currency), usages)
    return [EvaluatedGroup(values, sum((q for _, q in rows), Decimal(0)), breakdown.amount)
            for (values, rows), breakdown in zip(ordered, priced, strict=True)]


def price_json(price: Price, currency: str) -> dict[str, Any]:
    """``price`` as ``evaluate`` takes it: Orb's shape, in its plan's ``currency`` (or, in
    a custom pricing unit, converted to it)."""
    shaped = price.model_dump(mode="json", exclude_none=True)
    if price.currency is None:
        return shaped | {"currency": currency}
    return shaped | {"invoicing_currency": currency}
