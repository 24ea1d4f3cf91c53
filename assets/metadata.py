"""Dagster's standard metadata for the lake tables the assets write: row count, column
schema from ``storage/tables.py``, money totals per currency, and check failures as
tables (docs/operations.md#materialization-metadata).

Money is never a float here: each total is text holding the exact decimal and, for
plotting across partitions, an int of minor units when the total is a whole number of
them (``billed_minor_usd`` = 2683 for 26.83 USD)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow as pa

from billing.money import exponent
from storage.tables import TABLES

OWNERS = ["team:billing"]


def column_schema(table: str) -> dg.TableSchema:
    """The declared Parquet schema of a lake table, as Dagster shows it."""
    schema = TABLES[table].schema
    if schema is None:
        raise ValueError(f"lake table {table!r} has no Parquet schema")
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


def table_metadata(table: str, rows: pa.Table, path: Path) -> dict[str, dg.RawMetadataValue]:
    """What every materialization of a lake table carries."""
    return {"dagster/row_count": dg.MetadataValue.int(rows.num_rows),
            "dagster/column_schema": dg.MetadataValue.table_schema(column_schema(table)),
            "path": dg.MetadataValue.path(str(path))}


def money_totals(rows: pa.Table, columns: dict[str, str]) -> dict[str, dg.RawMetadataValue]:
    """Per currency, the sum of each money column as ``<name>_<currency>`` (exact decimal
    text) and ``<name>_minor_<currency>`` (int of minor units, only when exact).
    ``columns``: metadata name -> column of ``rows``, which has a ``currency`` column."""
    sums = rows.group_by("currency").aggregate([(c, "sum") for c in columns.values()])
    metadata: dict[str, dg.RawMetadataValue] = {}
    for row in sums.to_pylist():
        currency = row["currency"]
        digits = exponent(currency)
        for name, column in columns.items():
            amount: Decimal = row[f"{column}_sum"]
            minor = amount.scaleb(digits)
            key = f"{name}_{currency.lower()}"
            if minor == minor.to_integral_value():
                metadata[key] = dg.MetadataValue.text(f"{amount:.{digits}f}")
                metadata[f"{name}_minor_{currency.lower()}"] = dg.MetadataValue.int(int(minor))
            else:  # finer than the minor unit (normalized MRR): the decimal alone
                metadata[key] = dg.MetadataValue.text(f"{amount.normalize():f}")
    return metadata


def failures_table(columns: Sequence[str], rows: Sequence[tuple]) -> dg.TableMetadataValue:
    """A check's failing rows, each value as text (dates, decimals and lists included)."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord({c: str(v) for c, v in zip(columns, row, strict=True)})
                 for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(c) for c in columns]))
