"""What a billing run produced, read back from the lake for the terminal."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from billing import money
from storage.duck import connect
from storage.lake import Lake

MONTH_TOTALS = """
SELECT billing_month, currency, count(*) AS invoices, sum(total) AS billed
FROM read_parquet($files)
GROUP BY ALL ORDER BY billing_month, currency
"""
REJECTED = "SELECT reject_reason, count(*) FROM read_parquet($files) GROUP BY 1 ORDER BY 1"


@dataclass
class RunSummary:
    totals: list[tuple[date, str, int, Decimal]]
    events: int
    rejected: dict[str, int]
    lake: Lake

    @property
    def invoices(self) -> int:
        return sum(row[2] for row in self.totals)


def summarize(lake: Lake, months: list[date]) -> RunSummary:
    con = connect()
    files = lake.files_in("invoices", "billing_month", months)
    totals = con.execute(MONTH_TOTALS, {"files": files}).fetchall() if files else []
    events = lake.all_files("events")
    counted = con.execute("SELECT count(*) FROM read_parquet($f)", {"f": events}).fetchone()
    assert counted is not None  # an aggregate without GROUP BY is one row
    count = counted[0]
    rejected_files = lake.all_files("quarantine")
    rejected = dict(con.execute(REJECTED, {"files": rejected_files}).fetchall()) if (
        rejected_files) else {}
    return RunSummary(totals, count, rejected, lake)


def print_summary(summary: RunSummary, console: Console) -> None:
    table = Table(title="Invoices by billing month")
    for column in ("month", "currency", "invoices", "billed"):
        table.add_column(column, justify="right" if column in ("invoices", "billed") else "left")
    for month, currency, invoices, billed in summary.totals:
        table.add_row(f"{month:%Y-%m}", currency, str(invoices),
                      money.format_money(billed, currency))
    console.print(table)
    console.print(f"{summary.invoices} invoices from {summary.events:,} clean events; "
                  f"{sum(summary.rejected.values()):,} raw events rejected "
                  f"({', '.join(f'{k}: {v}' for k, v in summary.rejected.items()) or 'none'})")
    lake = summary.lake
    console.print(f"Lake:      {lake.root / 'lake'}")
    console.print(f"Invoices:  {lake.reports / 'invoices'}")
    console.print(f"Revenue:   {lake.reports / 'revenue'}")
    console.print(f"DuckDB:    {lake.duckdb_path}  (try: SELECT * FROM invoices LIMIT 5)")
    # the venv's own orb, so the lines work as printed without an activated venv
    orb, data = Path(sys.executable).parent / "orb", lake.root
    console.print(f"API:       {orb} serve --data-dir {data}  (Orb's REST API on "
                  f"http://127.0.0.1:8089/v1, docs/api.md); then, in another shell:\n"
                  f"           KEY=$({orb} keys create --role read_only --data-dir {data} "
                  f"| tail -n 1)\n"
                  f"           curl -H \"Authorization: Bearer $KEY\" "
                  f"'http://127.0.0.1:8089/v1/invoices?limit=1'", soft_wrap=True,
                  markup=False, highlight=False)
