"""What a costs, usage or upcoming-invoice request computes: one customer's billing
windows rated on demand from the lake with the billing run's own SQL
(``pricing_sql.customer_rating``), the run's adjustments and credits (``invoicing``)
applied, never the last run's tables (docs/api.md#costs-usage-and-the-upcoming-invoice).

Every data point of a request is rated in the same one pass: each point's windows are
renamed apart (``customer_rating.renamed``) and cut at the point's end."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from api.views import View
from billing import periods
from billing.catalog import Catalog, Customer, Subscription
from billing.charges import BillingWindow, adjustment_terms, billing_windows
from invoicing.assembly import totals_by_key
from invoicing.document_model import Draft
from invoicing.issuing import computed_drafts, invoice_run
from pricing_sql.customer_rating import customer_catalog, rate_customer, rate_usage, renamed
from pricing_sql.run_catalog import current_catalog
from storage.duck import connect
from storage.lake import Lake
from storage.settings import Settings

MAX_DAYS = 366  # days one request may ask for: each is rated


def run_month(invoice_date: date) -> date:
    """The billing month whose run makes an invoice dated ``invoice_date``: a run's
    invoice dates are (first of its month, first of the next]."""
    return (invoice_date - timedelta(days=1)).replace(day=1)


def read_view(deployment: Settings, now: datetime) -> View:
    """The tenant's deployment as it is now, for a request that shapes no customer or
    subscription (``created_at`` is left empty): built from ``current_catalog``, which is
    read again only when the state store changed, rather than from a snapshot of the whole
    store per request (seconds at 10,000 customers)."""
    catalog = current_catalog(deployment)
    files = [path.stat().st_mtime for path in Path(deployment.catalog_path).glob("*.y*ml")]
    return View(Catalog.model_construct(
                    metrics=catalog.metrics, plans=catalog.plans, coupons=catalog.coupons,
                    dimensional_price_groups=catalog.dimensional_price_groups),
                catalog.customers, catalog.subscriptions, {},
                datetime.fromtimestamp(max(files, default=0), UTC), now)


def catalog_of(references: Catalog, customers: Sequence[Customer],
               subscriptions: Sequence[Subscription], customer_id: str) -> Catalog:
    """The catalog's plans, metrics and coupons with one customer and its subscriptions."""
    return customer_catalog(Catalog.model_construct(
        metrics=references.metrics, plans=references.plans, coupons=references.coupons,
        dimensional_price_groups=references.dimensional_price_groups,
        customers=list(customers), subscriptions=list(subscriptions)), customer_id)


def windows_over(catalog: Catalog, first: date, end: date) -> list[BillingWindow]:
    """The windows of ``catalog`` whose service days meet ``[first, end)``, from every
    run that can bill one (a window is invoiced at its start or its cycle's end)."""
    longest = max((p.cycle.months_spanned for plan in catalog.plans
                   for p in plan.all_prices()), default=1)
    month = periods.add_months(run_month(first), -longest)
    last = periods.add_months(run_month(end), longest)
    found: list[BillingWindow] = []
    while month <= last:
        found += [w for w in billing_windows(catalog, month)
                  if w.service_start < end and w.service_end > first]
        month = periods.add_months(month, 1)
    return found


@dataclass(frozen=True)
class PriceCost:
    price_id: str
    plan_id: str
    plan_version: int
    currency: str
    quantity: Decimal
    subtotal: Decimal


@dataclass(frozen=True)
class CostPoint:
    """Costs over the customer's days ``[start, end)``."""

    start: date
    end: date
    prices: tuple[PriceCost, ...]
    subtotal: Decimal  # the lines
    total: Decimal  # with the invoices' adjustments (minimums, discounts), before credits


def cumulative_costs(lake: Lake, catalog: Catalog, customer: Customer, days: Sequence[date],
                     subscription_id: str | None, currency: str | None) -> list[CostPoint]:
    """For each of ``days``: the costs of the billing periods under way that day, from
    their start to the day's end, as their invoices would charge them (Orb's cumulative
    view). A day no subscription bills is left out. Raises ValueError for a customer
    billed in two currencies when ``currency`` is not given."""
    windows = [w for w in windows_over(catalog, days[0], days[-1] + timedelta(days=1))
               if subscription_id is None or w.subscription_id == subscription_id]
    currencies = sorted({w.currency for w in windows})
    if currency is not None:
        windows = [w for w in windows if w.currency == currency]
    elif len(currencies) > 1:
        raise ValueError(f"the customer is billed in {' and '.join(currencies)}: give "
                         "currency")
    chosen: list[BillingWindow] = []
    terms = []
    starts: dict[str, tuple[date, date]] = {}
    for index, day in enumerate(days):
        covering = [w for w in windows if w.service_start <= day < w.service_end]
        if not covering:
            continue
        key, end = str(index), day + timedelta(days=1)
        cutoff = periods.local_midnight(end, customer.timezone)
        chosen += [renamed(w, key, end=cutoff) for w in covering]
        terms += [replace(term, invoice_id=f"{term.invoice_id}@{key}",
                          subscription_id=f"{term.subscription_id}@{key}")
                  for term in adjustment_terms(catalog, covering)]
        starts[key] = (min(w.service_start for w in covering), end)
    if not chosen:
        return []
    con = connect()
    lines = rate_customer(lake, catalog, customer.id, chosen, con).line_items
    totals = totals_by_key(con, terms, lines, catalog, chosen)
    prices: defaultdict[str, dict[str, PriceCost]] = defaultdict(dict)
    for row in lines.select(["invoice_id", "price_id", "plan_id", "plan_version", "currency",
                             "quantity", "amount"]).to_pylist():
        key = row["invoice_id"].rsplit("@", 1)[1]
        before = prices[key].get(row["price_id"])
        quantity, amount = row["quantity"] or Decimal(0), row["amount"]
        prices[key][row["price_id"]] = PriceCost(
            row["price_id"], row["plan_id"], row["plan_version"], row["currency"],
            quantity + (before.quantity if before else 0),
            amount + (before.subtotal if before else 0))
    return [CostPoint(start, end, tuple(prices[key].values()),
                      sum((p.subtotal for p in prices[key].values()), Decimal(0)),
                      totals.get(key, Decimal(0)))
            for key, (start, end) in starts.items()]


def periodic(points: Sequence[CostPoint]) -> list[CostPoint]:
    """Orb's periodic view: each day's costs, the difference of its cumulative point with
    the day before's in the same billing period."""
    result = []
    for before, point in zip([None, *points], points, strict=False):
        if before is None or before.start != point.start:
            result.append(replace(point, start=point.end - timedelta(days=1)))
            continue
        earlier = {p.price_id: p for p in before.prices}
        result.append(CostPoint(point.end - timedelta(days=1), point.end, tuple(
            replace(p, quantity=p.quantity - (earlier[p.price_id].quantity
                                              if p.price_id in earlier else 0),
                    subtotal=p.subtotal - (earlier[p.price_id].subtotal
                                           if p.price_id in earlier else 0))
            for p in point.prices), point.subtotal - before.subtotal,
            point.total - before.total))
    return result


@dataclass(frozen=True)
class MetricUsage:
    metric_id: str
    points: tuple[tuple[date, date, Decimal], ...]  # (start, end, quantity), local days


def subscription_usage(lake: Lake, catalog: Catalog, customer: Customer, subscription_id: str,
                       spans: Sequence[tuple[date, date]], cumulative: bool,
                       ) -> list[MetricUsage]:
    """Each billable metric of the subscription's usage prices over each of ``spans``
    (the customer's days ``[start, end)``; ``cumulative``: from the start of the billing
    period under way on its first day), counted as a billing run counts it; a span the
    subscription does not bill is left out."""
    windows = [w for w in windows_over(catalog, spans[0][0], spans[-1][1])
               if w.subscription_id == subscription_id and not w.in_advance]
    chosen: list[BillingWindow] = []
    metrics: set[str] = set()
    kept: dict[str, tuple[date, date]] = {}
    for index, (start, end) in enumerate(spans):
        if cumulative:
            start = min((w.service_start for w in windows
                         if w.service_start <= start < w.service_end), default=start)
        meeting = [w for w in windows if w.service_start < end and w.service_end > start]
        if not meeting:
            continue
        metrics |= {price.billable_metric_id for w in meeting
                    for price in catalog.plan(w.plan_id).version(w.plan_version).prices
                    if price.billable_metric_id}
        # one window over the span, cut to the days the subscription bills
        chosen.append(meeting[0]._replace(
            window_id=f"usage@{index}",
            period_start=max(min(w.period_start for w in meeting),
                             periods.local_midnight(start, customer.timezone)),
            period_end=min(max(w.period_end for w in meeting),
                           periods.local_midnight(end, customer.timezone))))
        kept[f"usage@{index}"] = (start, end)
    if not chosen or not metrics:
        return []
    usage = rate_usage(lake, catalog, customer.id, chosen, connect())
    quantities = {(row["window_id"], row["metric_id"]): row["quantity"]
                  for row in usage.to_pylist() if not row["grouping"]}
    return [MetricUsage(metric, tuple((start, end, quantities.get((window, metric),
                                                                  Decimal(0)))
                                      for window, (start, end) in kept.items()))
            for metric in sorted(metrics)]


def upcoming_drafts(lake: Lake, catalog: Catalog, customer_id: str, month: date,
                    ) -> tuple[list[Draft], pa.Table]:
    """The drafts the run for ``month`` would make for the customer now, and their line
    items: its windows rated, adjustments and prepaid credits applied as the run applies
    them (``invoicing.issuing.invoice_run``)."""
    con = connect()
    lines = rate_customer(lake, catalog, customer_id, billing_windows(catalog, month),
                          con).line_items
    invoiced = invoice_run(con, lake, catalog, month, lines)
    return computed_drafts(con, invoiced.invoices, lines, invoiced.adjustments), lines
