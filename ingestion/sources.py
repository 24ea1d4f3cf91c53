"""Read raw event batches of every supported format into the shape check_batch.sql checks.

Supported in the landing folder: Parquet (``.parquet``), JSON Lines (``.jsonl``,
``.ndjson``) and CSV with a header (``.csv``); the text formats may be gzipped
(``.gz``). Every raw event keeps where it came from: the file (relative to the
landing folder) and its row, which is the 1-based line for JSON Lines, the 1-based
record after the header for CSV and the 1-based row for Parquet. A file that cannot
be read at all becomes one rejected row with the reason, so nothing is dropped
silently. Blank lines in JSON Lines are not events and are skipped (in check_batch.sql).
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

FIELDS = ("event_name", "timestamp", "customer_id", "external_customer_id", "idempotency_key",
          "properties")
JSON_LINES = (".jsonl", ".ndjson")
SUFFIXES = (".parquet", *JSON_LINES, ".csv")

LINES_SCHEMA = pa.schema([("source_file", pa.string()), ("source_row", pa.int64()),
                          ("line", pa.large_string())])
RECORDS_SCHEMA = pa.schema([("source_file", pa.string()), ("source_row", pa.int64()),
                            ("file_error", pa.string()),
                            *((name, pa.string()) for name in FIELDS)])


@dataclass
class Sources:
    """The landing folder split by how each file is read."""

    parquet: list[str]
    json_lines: pa.Table  # one row per line: source_file, source_row, line
    records: pa.Table  # CSV records and unreadable files, already in columns


def _format(path: Path) -> str | None:
    name = path.name.lower().removesuffix(".gz")
    suffix = next((s for s in SUFFIXES if name.endswith(s)), None)
    if suffix == ".parquet" and path.name.lower().endswith(".gz"):
        return None  # Parquet compresses itself; a gzipped Parquet file is a mistake
    return suffix


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.lower().endswith(".gz") else data


def _lines(data: bytes, relative: str) -> pa.Table:
    """Every line with its 1-based number, as Arrow strings over the file's own bytes:
    the line ends are found with numpy, not a Python loop. Invalid UTF-8 raises."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n")) + 1
    if data and not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    lines = pa.LargeStringArray.from_buffers(len(ends), pa.py_buffer(offsets),
                                             pa.py_buffer(data))
    lines.validate(full=True)
    return pa.table({
        "source_file": pa.repeat(relative, len(ends)).cast(pa.string()),
        "source_row": pa.array(np.arange(1, len(ends) + 1, dtype=np.int64)),
        "line": pc.utf8_rtrim(lines, "\r\n"),
    }, schema=LINES_SCHEMA)


def _csv(data: bytes, relative: str) -> pa.Table:
    options = pcsv.ConvertOptions(
        column_types={name: pa.string() for name in FIELDS},
        include_columns=list(FIELDS), include_missing_columns=True,
        strings_can_be_null=True)
    table = pcsv.read_csv(io.BytesIO(data), convert_options=options)
    columns = {
        "source_file": pa.array([relative] * table.num_rows, pa.string()),
        "source_row": pa.array(range(1, table.num_rows + 1), pa.int64()),
        "file_error": pa.nulls(table.num_rows, pa.string()),
        **{name: table[name] for name in FIELDS},
    }
    return pa.table(columns, schema=RECORDS_SCHEMA)


def _unreadable(relative: str, reason: str) -> pa.Table:
    row = {"source_file": relative, "source_row": 0, "file_error": reason}
    return pa.Table.from_pylist([row], schema=RECORDS_SCHEMA)


def read_landing(files: list[Path], landing: Path) -> Sources:
    parquet, lines, records = [], [LINES_SCHEMA.empty_table()], [RECORDS_SCHEMA.empty_table()]
    for path in files:
        relative = str(path.relative_to(landing))
        kind = _format(path)
        if kind is None:
            records.append(_unreadable(relative, "unsupported file type (expected .parquet, "
                                       ".jsonl, .ndjson or .csv; text formats may be .gz)"))
            continue
        if kind == ".parquet":
            parquet.append(str(path))
            continue
        try:
            data = _read_bytes(path)
            if kind in JSON_LINES:
                lines.append(_lines(data, relative))
            else:
                records.append(_csv(data, relative))
        except (OSError, EOFError, zlib.error, pa.ArrowInvalid, pa.ArrowTypeError,
                UnicodeDecodeError) as exc:
            records.append(_unreadable(relative, f"cannot read file: {exc}"))
    return Sources(parquet, pa.concat_tables(lines), pa.concat_tables(records))


def parquet_relation(con: duckdb.DuckDBPyConnection, files: list[str],
                     landing: Path) -> duckdb.DuckDBPyRelation:
    """Parquet batches with every field as text (null where a file lacks the column)."""
    if not files:
        return con.from_arrow(RECORDS_SCHEMA.empty_table()).select(
            *(duckdb.ColumnExpression(name) for name in RECORDS_SCHEMA.names))
    raw = con.read_parquet(files, filename=True, file_row_number=True, union_by_name=True)
    text = duckdb.sqltype("VARCHAR")

    def field(name: str) -> duckdb.Expression:
        if name in raw.columns:
            return duckdb.ColumnExpression(name).cast(text).alias(name)
        return duckdb.ConstantExpression(None).cast(text).alias(name)

    prefix = len(str(landing)) + 2  # cut "<landing>/" to keep lineage relative
    return raw.select(
        duckdb.FunctionExpression("substr", duckdb.ColumnExpression("filename"),
                                  duckdb.ConstantExpression(prefix)).alias("source_file"),
        (duckdb.ColumnExpression("file_row_number") + duckdb.ConstantExpression(1))
        .cast(duckdb.sqltype("BIGINT")).alias("source_row"),
        duckdb.ConstantExpression(None).cast(text).alias("file_error"),
        *(field(name) for name in FIELDS),
    )
