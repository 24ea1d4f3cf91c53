"""Assemble a month's invoices for N customers that all hold credit grants; time each stage.

    .venv/bin/python bench/assembly_bench.py [--customers 10000] [--repeat 3]

Every customer is on a plan in USD, EUR or JPY (8 prices: a fee and 7 usage prices)
whose adjustments are an amount discount, percentage discounts, minimums and maximums on
subsets of its prices and on the whole invoice. Some customers have more invoices in the
run: a second subscription on cycle day 15 (an invoice dated Oct 15), one starting on
Oct 12 (its fee in advance, dated Oct 12), or one in another currency. Every customer
holds 3 to 5 grants in each currency it is billed in: one expiring within the month
(Oct 20), one effective only from Oct 13, one without expiry, some expiring on Oct 15,
some not yet effective (Nov 1), with balances before the run that are full, partial
or zero.

The line items are priced once, untimed (pricing_sql, as a run does). Timed, on a
fresh DuckDB connection each round, in the order ``assemble_invoices`` runs them: the
adjustment terms (Python, billing/charges.py), the adjustment scopes
(adjustment_scopes.sql), the adjustments applied (applied_adjustments.sql), the
invoice totals (invoice_totals.sql), the credit drawdown (credit_drawdown.sql, with the
grants and balances handed over as a table), and the invoices (invoices.sql); then
``assemble_invoices`` end to end, which checks that the steps give the same tables.
Figures, before and after the steps became set-based: docs/capacity.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing.catalog import Catalog
from billing.charges import adjustment_terms, billing_windows
from billing.credits import Grant
from invoicing import assembly
from invoicing.taxes.provider import invoice_taxes
from pricing_sql.rating import price_line_items, usage_windows
from storage.duck import connect
from storage.tables import USAGE as USAGE_SCHEMA

MONTH = date(2026, 10, 1)
CURRENCIES = {"USD": Decimal("0.01"), "EUR": Decimal("0.01"), "JPY": Decimal(1)}
METRICS = [f"m{i}" for i in range(7)]


def plan(currency: str, unit: Decimal) -> dict:
    """A plan whose amounts scale with the currency's minor unit (JPY: x100 / 100)."""
    scale = unit * 100  # 1 for USD and EUR, 100 for JPY

    def money(amount: str) -> str:
        return str(Decimal(amount) * scale)

    prices = [{"id": f"{currency}_fee", "name": "Platform fee", "model_type": "unit",
               "unit_config": {"unit_amount": money("49.00")}, "fixed_price_quantity": 1}]
    for i, metric in enumerate(METRICS):
        if i % 3 == 1:
            prices.append({"id": f"{currency}_{metric}", "name": metric, "model_type": "tiered",
                           "billable_metric_id": metric, "tiered_config": {"tiers": [
                               {"first_unit": 0, "last_unit": 1000,
                                "unit_amount": money("0.01")},
                               {"first_unit": 1000, "last_unit": None,
                                "unit_amount": money("0.004")}]}})
        else:
            prices.append({"id": f"{currency}_{metric}", "name": metric, "model_type": "unit",
                           "billable_metric_id": metric,
                           "unit_config": {"unit_amount": money(f"0.00{i + 1}")}})
    ids = [p["id"] for p in prices]
    adjustments = [
        {"id": "api_off", "adjustment_type": "amount_discount",
         "amount_discount": money("5.00"), "applies_to_price_ids": ids[1:3]},
        {"id": "data_pct", "adjustment_type": "percentage_discount",
         "percentage_discount": "0.15", "applies_to_price_ids": ids[1:4]},
        {"id": "all_pct", "adjustment_type": "percentage_discount",
         "percentage_discount": "0.05"},
        {"id": "storage_min", "adjustment_type": "minimum",
         "minimum_amount": money("20.00"), "applies_to_price_ids": ids[4:6]},
        {"id": "floor", "adjustment_type": "minimum", "minimum_amount": money("60.00")},
        {"id": "compute_cap", "adjustment_type": "maximum",
         "maximum_amount": money("15.00"), "applies_to_price_ids": ids[6:8]},
        {"id": "cap", "adjustment_type": "maximum", "maximum_amount": money("400.00")},
    ]
    return {"id": f"plan_{currency}", "name": f"Plan {currency}", "currency": currency,
            "prices": prices, "adjustments": adjustments}


def currencies_of(i: int) -> list[str]:
    """The currencies customer ``i`` is billed in: its main one, and another for every
    sixth customer."""
    names = list(CURRENCIES)
    main = names[0] if i % 4 < 2 else names[1 + i % 2]
    other = [names[(names.index(main) + 1) % 3]] if i % 6 == 3 else []
    return [main, *other]


def build_catalog(customers: int) -> Catalog:
    subscriptions = []
    for i in range(customers):
        main, *other = currencies_of(i)
        subscriptions.append({"id": f"s{i}", "customer_id": f"c{i}", "plan_id": f"plan_{main}",
                              "start_date": "2026-01-01"})
        if i % 4 == 1:  # cycle day 15: an invoice dated Oct 15 as well as Nov 1
            subscriptions.append({"id": f"s{i}_15", "customer_id": f"c{i}",
                                  "plan_id": f"plan_{main}", "start_date": "2026-01-15",
                                  "billing_cycle_day": 15})
        if i % 5 == 2:  # starts Oct 12: its fee in advance on an invoice dated Oct 12
            subscriptions.append({"id": f"s{i}_new", "customer_id": f"c{i}",
                                  "plan_id": f"plan_{main}", "start_date": "2026-10-12"})
        for currency in other:
            subscriptions.append({"id": f"s{i}_{currency}", "customer_id": f"c{i}",
                                  "plan_id": f"plan_{currency}", "start_date": "2026-01-01"})
    return Catalog.model_validate({
        "metrics": [{"id": m, "name": m, "sql": "SELECT count(*) FROM events"} for m in METRICS],
        "plans": [plan(currency, unit) for currency, unit in CURRENCIES.items()],
        "customers": [{"id": f"c{i}", "name": f"c{i}", "timezone": "UTC"}
                      for i in range(customers)],
        "subscriptions": subscriptions,
    })


def build_usage(catalog: Catalog, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    windows = usage_windows(billing_windows(catalog, MONTH)).column("window_id").to_pylist()
    columns: dict[str, list] = {name: [] for name in USAGE_SCHEMA.names}
    for metric in METRICS:
        columns["window_id"] += windows
        columns["metric_id"] += [metric] * len(windows)
        columns["grouping"] += [[]] * len(windows)
        columns["group_values"] += [[]] * len(windows)
        columns["quantity"] += [Decimal(int(q)) for q in rng.integers(0, 8000, len(windows))]
    return pa.Table.from_pydict(columns, schema=USAGE_SCHEMA)


def build_grants(customers: int, seed: int = 2) -> tuple[list[Grant], dict[str, Decimal]]:
    """3 to 5 grants per customer and currency, and their balances before the run."""
    rng = np.random.default_rng(seed)
    grants, balances = [], {}
    kinds = [  # (effective, expiry)
        (date(2026, 9, 1), date(2026, 10, 20)),  # expires within the month
        (date(2026, 10, 13), date(2026, 12, 31)),  # only for invoices after Oct 13
        (date(2026, 8, 1), None),
        (date(2026, 7, 1), date(2026, 10, 15)),  # usable on Oct 15, expired by Nov 1
        (date(2026, 11, 1), date(2027, 11, 1)),  # not yet in effect
    ]
    for i in range(customers):
        for currency in currencies_of(i):
            unit = CURRENCIES[currency]
            count = 3 + (i % 3)
            for k, (effective, expiry) in enumerate(kinds[:count]):
                grant_id = f"g{i}_{currency}_{k}"
                amount = Decimal(int(rng.integers(1, 20_000))) * unit * 2
                grants.append(Grant(grant_id, f"c{i}", currency, amount, Decimal(1),
                                    effective, expiry))
                # its balance: the whole amount (none recorded), a half, a quarter, nothing
                share = int(rng.integers(0, 4))
                if share:
                    balances[grant_id] = (amount / 2 ** share).quantize(unit) if share < 3 \
                        else Decimal(0)
    return grants, balances


def timed(seconds: dict[str, list[float]], name: str, step: Callable[..., Any],
          *args: object) -> Any:
    started = time.perf_counter()
    result = step(*args)
    seconds.setdefault(name, []).append(time.perf_counter() - started)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    catalog = build_catalog(args.customers)
    windows = billing_windows(catalog, MONTH)
    lines = price_line_items(connect(), catalog, MONTH, build_usage(catalog)).line_items
    grants, balances = build_grants(args.customers)
    print(f"set up (catalog, usage, pricing; untimed): {time.perf_counter() - started:.1f} s")

    seconds: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        con = connect()
        terms = timed(seconds, "adjustment terms (Python, charges.py)", adjustment_terms,
                      catalog, windows)
        timed(seconds, "adjustment scopes (SQL)", assembly.adjustment_scopes, con, terms, lines,
              catalog, windows)
        adjustments = timed(seconds, "adjustments applied (SQL)", assembly.applied_adjustments,
                            con)
        timed(seconds, "invoice totals (SQL)", assembly.invoice_totals, con, lines, adjustments)
        ledger = timed(seconds, "credit drawdown (SQL)", assembly.draw_credits, con, MONTH,
                       grants, balances, {})
        timed(seconds, "taxes", invoice_taxes, con, catalog)
        invoices = timed(seconds, "invoices (SQL)", assembly.invoice_heads, con, catalog)
        whole = timed(seconds, "assemble_invoices end to end", assembly.assemble_invoices,
                      connect(), catalog, MONTH, lines, grants, balances, {})
        assert whole.invoices.equals(invoices) and whole.ledger.equals(ledger)

    per_customer = invoices.group_by("customer_id").aggregate([("invoice_id", "count")])
    most = max(per_customer.column("invoice_id_count").to_pylist())
    drawn = ledger.filter(pc.equal(ledger["entry_type"], "drawdown")).num_rows
    credited = invoices.group_by("currency").aggregate([("credits_applied", "sum")])
    print(f"customers: {args.customers:,}  invoices: {invoices.num_rows:,} (up to {most} a "
          f"customer)  line items: {lines.num_rows:,}  grants: {len(grants):,}  "
          f"adjustments applied: {adjustments.num_rows:,}")
    print(f"ledger: {drawn:,} drawdowns, {ledger.num_rows - drawn:,} expiries; "
          f"credits applied: " + ", ".join(
              f"{row['currency']} {row['credits_applied_sum']:,}"
              for row in credited.sort_by("currency").to_pylist()))
    for name, runs in seconds.items():
        print(f"{name:<40} median {statistics.median(runs):7.3f} s  "
              f"(min {min(runs):.3f}, max {max(runs):.3f}, {len(runs)} runs)")


if __name__ == "__main__":
    main()
