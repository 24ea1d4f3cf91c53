"""The tax provider interface, applied in assembly after adjustments and prepaid credits
(Orb's order): the taxable lines of every invoice of the run go to the catalog's
provider at once, which returns the run's tax lines (``invoice_taxes``). Without a
``taxes`` section in the catalog nothing is taxed."""

from __future__ import annotations

from typing import Protocol

import duckdb
import pyarrow as pa

from billing.catalog import Catalog
from billing.catalog.taxes import TaxTable
from invoicing.sql import load_sql
from invoicing.taxes.rate_table import RateTable
from invoicing.taxes.stripe_tax import StripeTax
from storage.tables import INVOICE_TAXES

TAXABLE = pa.schema([
    ("invoice_id", pa.string()),
    ("customer_id", pa.string()),
    ("currency", pa.string()),
    ("currency_exponent", pa.int32()),
    ("line_key", pa.string()),
    ("amount", INVOICE_TAXES.field("taxable").type),
])


class TaxProvider(Protocol):
    def taxes(self, con: duckdb.DuckDBPyConnection, taxable: pa.Table,
              catalog: Catalog) -> pa.Table:
        """``INVOICE_TAXES`` rows (without run_id) for the ``TAXABLE`` rows, every invoice
        of the run at once."""
        ...


def provider_for(table: TaxTable) -> TaxProvider:
    """The provider the catalog's ``taxes`` names."""
    if table.provider == "stripe_tax":
        return StripeTax.from_env(table)
    return RateTable(table)


def taxable_lines(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Every invoice's taxable lines (taxable_lines.sql), from ``invoice_totals``,
    ``line_items``, ``invoice_adjustments`` and ``credit_entries`` registered."""
    return con.sql(load_sql("taxable_lines")).to_arrow_table().cast(TAXABLE)


def invoice_taxes(con: duckdb.DuckDBPyConnection, catalog: Catalog,
                  provider: TaxProvider | None = None) -> pa.Table:
    """The run's tax lines, registered as ``invoice_taxes``; none without a tax table.
    ``provider``: instead of the one the catalog names (a test's)."""
    taxes = INVOICE_TAXES.empty_table()
    if catalog.taxes is not None:
        taxes = (provider or provider_for(catalog.taxes)).taxes(
            con, taxable_lines(con), catalog).cast(INVOICE_TAXES)
    con.register("invoice_taxes", taxes)
    return taxes
