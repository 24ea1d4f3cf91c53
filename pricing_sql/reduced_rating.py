"""Lines priced again at a reduced quantity, with the run's own pricing SQL.

A usage discount takes units off a line's quantity before it is priced (Orb's order:
docs/invoicing.md#adjustments), so what it takes off is the line's amount less the
amount of the same charge priced at the reduced quantity. Each reduction is rated as a
charge of its own (``reduced_charges.sql``) by ``rate_usage.sql`` and ``line_items.sql``,
so every price model, proration and the rounding are as for any line. It runs on DuckDB,
as invoices are assembled, in a connection of its own: rating's temp tables are made
again.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from sqlglot import exp

from billing.catalog import Catalog
from billing.charges import BillingWindow
from pricing_sql.catalog_tables import billing_windows_table
from pricing_sql.engine import DuckDBEngine
from pricing_sql.rating import register_catalog
from pricing_sql.sql import load_sql

REDUCTIONS = pa.schema([
    ("reduced_id", pa.string()),
    ("invoice_id", pa.string()),
    ("window_id", pa.string()),
    ("plan_id", pa.string()),
    ("plan_version", pa.int32()),
    ("price_id", pa.string()),
    ("quantity", pa.decimal128(38, 9)),
])
REDUCED_AMOUNTS = pa.schema([("reduced_id", pa.string()), ("amount", pa.decimal128(38, 4))])


def rate_reduced(catalog: Catalog, windows: Sequence[BillingWindow],
                 reductions: pa.Table) -> pa.Table:
    """``REDUCED_AMOUNTS``: each of ``reductions`` (``REDUCTIONS``: a line of ``windows``,
    by its invoice, window, plan version and price, at a reduced quantity) priced and
    rounded as its line is."""
    if reductions.num_rows == 0:
        return REDUCED_AMOUNTS.empty_table()
    engine = DuckDBEngine()
    register_catalog(engine, catalog)
    reduced = set(reductions["window_id"].to_pylist())
    engine.register("run_windows", billing_windows_table(
        [w for w in windows if w.window_id in reduced]))
    engine.register("reductions", reductions.select(REDUCTIONS.names).cast(REDUCTIONS))
    engine.run_script(load_sql("reduced_charges"))
    for name, table in (("billing_windows", "reduced_windows"),
                        ("plan_prices", "reduced_prices"), ("usage", "reduced_usage")):
        engine.register(name, engine.query(exp.select("*").from_(table)))
    engine.run_script(load_sql("rate_usage"))
    lines = engine.query(load_sql("line_items"))
    # a reduction's line is of its subscription, which is the reduction's id
    return pa.table([lines["subscription_id"], lines["amount"]],
                    names=REDUCED_AMOUNTS.names).cast(REDUCED_AMOUNTS)
