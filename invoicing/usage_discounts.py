"""What each usage discount takes off each line it covers (Orb's usage discount: units
off a line's quantity before it is priced, the first adjustment in Orb's order).

Set-based, over every invoice of the run at once: ``usage_discount_steps.sql`` gives each
line's quantity after each of its usage discounts, ``pricing_sql/reduced_rating.py``
prices those charges again with the run's own pricing SQL, and
``usage_discount_lines.sql`` turns the amounts into what each discount took off. The
rules: docs/invoicing.md#adjustments.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from billing.catalog import Catalog
from billing.catalog.adjustments import reducible
from billing.charges import BillingWindow
from invoicing.sql import load_sql
from pricing_sql.reduced_rating import rate_reduced

USAGE_DISCOUNT_LINES = pa.schema([
    ("invoice_id", pa.string()),
    ("subscription_id", pa.string()),
    ("source", pa.string()),
    ("adjustment_id", pa.string()),
    ("line_item_id", pa.string()),
    ("amount", pa.decimal128(38, 4)),
])


def usage_discount_lines(con: duckdb.DuckDBPyConnection, catalog: Catalog,
                         windows: Sequence[BillingWindow]) -> pa.Table:
    """``USAGE_DISCOUNT_LINES`` of the usage discounts in the temp table
    ``adjustment_lines`` (adjustment_lines.sql), whose lines are of ``windows``."""
    steps = con.sql(load_sql("usage_discount_steps")).to_arrow_table()
    if steps.num_rows == 0:
        return USAGE_DISCOUNT_LINES.empty_table()
    _check_reducible(catalog, steps)
    con.register("usage_discount_steps", steps)
    con.register("reduced_amounts", rate_reduced(catalog, windows, steps))
    return con.sql(load_sql("usage_discount_lines")).to_arrow_table().cast(
        USAGE_DISCOUNT_LINES)


def _check_reducible(catalog: Catalog, steps: pa.Table) -> None:
    """The catalog and the store refuse a usage discount on a price it cannot reduce;
    a plan changed since a subscription's discount was written can still bring one."""
    prices = {price.id: price for plan in catalog.plans for price in plan.all_prices()}
    for adjustment_id, price_id in sorted(set(zip(steps["adjustment_id"].to_pylist(),
                                                  steps["price_id"].to_pylist(), strict=True))):
        if (why := reducible(prices[price_id])) is not None:
            raise ValueError(f"usage discount {adjustment_id!r} cannot apply to price "
                             f"{price_id!r}: {why}")
