"""The default tax provider: the catalog's rate table, set-based in SQL
(``rate_table_taxes.sql``), each customer's rate chosen by ``billing.taxes.treatment``."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from billing.catalog import Catalog
from billing.catalog.taxes import TaxTable
from billing.taxes import treatment
from invoicing.sql import load_sql
from storage.tables import QUANTITY

TREATMENTS = pa.schema([
    ("customer_id", pa.string()),
    ("tax_rate_id", pa.string()),
    ("description", pa.string()),
    ("jurisdiction", pa.string()),
    ("percentage", QUANTITY),
    ("inclusive", pa.bool_()),
    ("reason", pa.string()),
    # the exact factor r (or r/(1+r)) as a fraction of integers; int64 is ample: a
    # percentage has at most 6 decimals and 3 digits before the point
    ("factor_num", pa.int64()),
    ("factor_den", pa.int64()),
])


@dataclass(frozen=True)
class RateTable:
    table: TaxTable

    def treatments(self, catalog: Catalog, customer_ids: set[str]) -> pa.Table:
        rows = []
        for customer_id in sorted(customer_ids):
            found = treatment(self.table, catalog.customer(customer_id))
            if found is not None:
                rows.append({"customer_id": customer_id, "tax_rate_id": found.tax_rate_id,
                             "description": found.description,
                             "jurisdiction": found.jurisdiction,
                             "percentage": found.percentage, "inclusive": found.inclusive,
                             "reason": found.reason, "factor_num": found.factor.numerator,
                             "factor_den": found.factor.denominator})
        return pa.Table.from_pylist(rows, schema=TREATMENTS)

    def taxes(self, con: duckdb.DuckDBPyConnection, taxable: pa.Table,
              catalog: Catalog) -> pa.Table:
        con.register("taxable_lines", taxable)
        con.register("tax_treatments", self.treatments(
            catalog, set(taxable.column("customer_id").to_pylist())))
        return con.sql(load_sql("rate_table_taxes"),
                       params={"per_invoice": self.table.rounding == "invoice"}).to_arrow_table()
