"""Read raw event batches of every supported format into the shape check_batch.sql checks.

Supported in the landing folder: Parquet (``.parquet``), JSON Lines (``.jsonl``,
``.ndjson``) and CSV with a header (``.csv``); the text formats may be gzipped
(``.gz``). Every raw event keeps where it came from: the file (relative to the
landing folder) and its row, which is the 1-based line for JSON Lines, the 1-based
record after the header for CSV and the 1-based row for Parquet. Blank lines in JSON
Lines are not events and are skipped (in check_batch.sql).

Nothing is dropped silently, and no file stops the others. A file that cannot be read
at all (empty, not of its format, a broken gzip stream, a Parquet file whose footer is
unreadable or names no event field) becomes one rejected row, ``cannot read file: …``,
at row 0. The text formats are kept line by line: a line or CSV record that is not
UTF-8, or a CSV record without the header's number of fields, is rejected alone, and
a gzip stream cut short keeps every complete line before the cut, the cut being one
more rejected row just after them. Corrupt Parquet data past a sound footer is found
while the batch is checked (``parquet_read_error``).
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

FIELDS = ("event_name", "timestamp", "customer_id", "external_customer_id", "idempotency_key",
          "properties")
JSON_LINES = (".jsonl", ".ndjson")
SUFFIXES = (".parquet", *JSON_LINES, ".csv")

LINES_SCHEMA = pa.schema([("source_file", pa.string()), ("source_row", pa.int64()),
                          ("line", pa.large_string()), ("line_error", pa.string())])
RECORDS_SCHEMA = pa.schema([("source_file", pa.string()), ("source_row", pa.int64()),
                            ("file_error", pa.string()),
                            *((name, pa.string()) for name in FIELDS)])

UNREADABLE = "cannot read file: "
EMPTY = "the file is empty"
TRUNCATED = ("truncated gzip stream (it ends before its end marker); every complete row "
             "before this one was read")
LINE_NOT_UTF8 = "line is not valid UTF-8"
RECORD_NOT_UTF8 = "record is not valid UTF-8"
RECORD_FIELDS = "record does not have as many fields as the header"
# What reading a file raises when the file is at fault (gzip.BadGzipFile is an OSError).
READ_ERRORS = (OSError, EOFError, zlib.error, pa.ArrowInvalid, pa.ArrowTypeError,
               pa.ArrowNotImplementedError)


class Unreadable(Exception):
    """A file that reads, but not as a batch of events: empty, or without any event field."""


@dataclass
class Sources:
    """The landing folder split by how each file is read."""

    parquet: list[str]
    json_lines: pa.Table  # one row per line: source_file, source_row, line, line_error
    records: pa.Table  # CSV records and unreadable files, already in columns

    @classmethod
    def unreadable(cls, relative: str, reason: str) -> Sources:
        return cls([], LINES_SCHEMA.empty_table(), _unreadable(relative, UNREADABLE + reason))


def _format(path: Path) -> str | None:
    name = path.name.lower().removesuffix(".gz")
    suffix = next((s for s in SUFFIXES if name.endswith(s)), None)
    if suffix == ".parquet" and path.name.lower().endswith(".gz"):
        return None  # Parquet compresses itself; a gzipped Parquet file is a mistake
    return suffix


def _read_text(path: Path) -> tuple[bytes, bool]:
    """The file's bytes, gunzipped, and whether its gzip stream was cut short. Of a cut
    stream only the complete lines are kept: a partial last line could still parse (a
    number cut to fewer digits, say). Corrupt compressed data fails the whole file:
    what decompressed before it is not to be trusted."""
    data = path.read_bytes()
    if not path.name.lower().endswith(".gz"):
        return data, False
    try:
        return gzip.decompress(data), False
    except EOFError:
        pass
    read = bytearray()
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream, suppress(EOFError):
        while chunk := stream.read1(1 << 20):  # read() would drop the chunk the cut is in
            read += chunk
    return bytes(read[:read.rfind(b"\n") + 1]), True


def _utf8(values: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """Binary values as text, and which were not UTF-8 (None: all were), those decoded
    with U+FFFD for what is not, so that their other fields can still be shown."""
    text = pa.large_string() if values.type == pa.large_binary() else pa.string()
    try:
        return values.cast(text), None
    except pa.ArrowInvalid:
        pass
    bad = np.zeros(len(values), dtype=bool)
    step = 4096  # only the blocks that fail are looked at value by value
    for start in range(0, len(values), step):
        block = values.slice(start, step)
        if not _casts(block, text):
            bad[start:start + len(block)] = [v is not None and not _decodes(v)
                                             for v in block.to_pylist()]
    mended = [v.decode(errors="replace").encode() for v in values.filter(bad).to_pylist()]
    return pc.replace_with_mask(values, pa.array(bad), pa.array(mended, values.type)) \
        .cast(text), bad


def _casts(values: pa.Array, text: pa.DataType) -> bool:
    try:
        values.cast(text)
    except pa.ArrowInvalid:
        return False
    return True


def _decodes(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def _errors(bad: np.ndarray | None, count: int, reason: str) -> pa.Array:
    if bad is None:
        return pa.nulls(count, pa.string())
    return pc.if_else(pa.array(bad), pa.scalar(reason), pa.scalar(None, pa.string()))


def _lines(data: bytes, relative: str) -> pa.Table:
    """Every line with its 1-based number, as Arrow strings over the file's own bytes:
    the line ends are found with numpy, not a Python loop."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n")) + 1
    if data and not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    lines, bad = _utf8(pa.Array.from_buffers(pa.large_binary(), len(ends), [
        None, pa.py_buffer(offsets), pa.py_buffer(data)]))
    return pa.table({
        "source_file": pa.repeat(relative, len(ends)).cast(pa.string()),
        "source_row": pa.array(np.arange(1, len(ends) + 1, dtype=np.int64)),
        "line": pc.utf8_rtrim(lines, "\r\n"),
        "line_error": _errors(bad, len(ends), LINE_NOT_UTF8),
    }, schema=LINES_SCHEMA)


def _no_field(columns: list[str]) -> Unreadable:
    return Unreadable(f"none of its columns ({', '.join(columns) or 'none'}) is an event "
                      f"field ({', '.join(FIELDS)})")


def _parse_csv(data: bytes, use_threads: bool) -> tuple[pa.Table, list[int]]:
    """The records, every field as binary, and the row number of each record that does
    not have the header's number of fields (the header is row 1; blank lines are not
    counted; a number is known only when the file is read in one thread)."""
    invalid: list[int] = []

    def skip(row: pcsv.InvalidRow) -> str:
        invalid.append(row.number)
        return "skip"

    table = pcsv.read_csv(
        io.BytesIO(data), read_options=pcsv.ReadOptions(use_threads=use_threads),
        parse_options=pcsv.ParseOptions(invalid_row_handler=skip),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.binary() for name in FIELDS},
            include_columns=list(FIELDS), include_missing_columns=True,
            strings_can_be_null=True))
    return table, invalid


def _csv(data: bytes, relative: str) -> pa.Table:
    end = data.find(b"\n")
    header = data[:end if end >= 0 else len(data)].rstrip(b"\r").decode(errors="replace")
    columns = next(csv.reader([header]), [])
    if not set(columns) & set(FIELDS):
        raise _no_field(columns)
    table, invalid = _parse_csv(data, use_threads=True)
    if invalid:  # rare: read again in one thread to learn which records they were
        table, invalid = _parse_csv(data, use_threads=False)
    skipped = np.array(sorted(invalid), dtype=np.int64) - 1
    read = np.ones(table.num_rows + len(skipped), dtype=bool)
    read[skipped - 1] = False
    rows = np.flatnonzero(read) + 1  # the numbers of the records read
    fields, bad = {}, np.zeros(table.num_rows, dtype=bool)
    for name in FIELDS:
        fields[name], wrong = _utf8(table[name].combine_chunks())
        if wrong is not None:
            bad |= wrong
    good = pa.table({
        "source_file": pa.repeat(relative, table.num_rows).cast(pa.string()),
        "source_row": pa.array(rows, pa.int64()),
        "file_error": _errors(bad if bad.any() else None, table.num_rows, RECORD_NOT_UTF8),
        **fields,
    }, schema=RECORDS_SCHEMA)
    short = pa.Table.from_pylist([
        {"source_file": relative, "source_row": row, "file_error": RECORD_FIELDS}
        for row in skipped.tolist()], schema=RECORDS_SCHEMA)
    return pa.concat_tables([good, short])


def _check_parquet(path: Path) -> None:
    """Raise unless the file has a Parquet footer naming an event field: only the footer
    is read (a few KB whatever the file's size), so a broken file never joins a read."""
    if path.stat().st_size == 0:
        raise Unreadable(EMPTY)
    columns = pq.read_schema(path).names
    if not set(columns) & set(FIELDS):
        raise _no_field(columns)


def _unreadable(relative: str, reason: str, row: int = 0) -> pa.Table:
    rejected = {"source_file": relative, "source_row": row, "file_error": reason}
    return pa.Table.from_pylist([rejected], schema=RECORDS_SCHEMA)


def read_landing(files: list[Path], landing: Path) -> Sources:
    parquet, lines, records = [], [LINES_SCHEMA.empty_table()], [RECORDS_SCHEMA.empty_table()]
    for path in files:
        relative = str(path.relative_to(landing))
        kind = _format(path)
        if kind is None:
            records.append(_unreadable(relative, "unsupported file type (expected .parquet, "
                                       ".jsonl, .ndjson or .csv; text formats may be .gz)"))
            continue
        try:
            if kind == ".parquet":
                _check_parquet(path)
                parquet.append(str(path))
                continue
            data, cut = _read_text(path)
            if not data and not cut:
                raise Unreadable(EMPTY)
            read = _lines(data, relative) if kind in JSON_LINES else _csv(data, relative)
            (lines if kind in JSON_LINES else records).append(read)
            if cut:
                records.append(_unreadable(relative, UNREADABLE + TRUNCATED, len(read) + 1))
        except (Unreadable, *READ_ERRORS) as exc:
            records.append(_unreadable(relative, f"{UNREADABLE}{exc}"))
    return Sources(parquet, pa.concat_tables(lines), pa.concat_tables(records))


def parquet_read_error(con: duckdb.DuckDBPyConnection, path: Path) -> str | None:
    """Why DuckDB cannot read a Parquet file's event fields as the check does (corrupt
    data past a sound footer), or None when it can. The whole file is read, a chunk at a
    time: only after a check of its batch failed."""
    try:
        for _ in parquet_relation(con, [str(path)], path.parent).to_arrow_reader():
            pass
    except duckdb.Error as exc:
        # DuckDB may quote the bad bytes: keep the reason printable
        return "".join(c if c.isprintable() else "?" for c in f"corrupt Parquet data ({exc})")
    return None


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
