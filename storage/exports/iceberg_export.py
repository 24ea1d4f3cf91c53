"""Warehouse exports as Apache Iceberg tables, incremental by lake partition.

Each published table becomes ``<namespace>.<table>`` (namespace ``orb`` by default) in a
SQL catalog (pyiceberg's ``SqlCatalog``; by default a SQLite file in the destination),
its data and metadata in the destination folder or ``s3://bucket/prefix``. The schema is
the table's declaration in ``storage/tables.py`` plus its partition key when that is
only in the lake's paths, exactly as the Parquet export describes it (decimals keep
their precision and scale, instants are ``timestamptz``). Tables keyed by a month or a
day get an identity partition on that column; tables keyed by an id (a batch, a grant,
an issuing run, a payment record) would get one Iceberg partition per id, i.e. one
file per row for ``payment_attempts``, so they are unpartitioned and keep the key as a
column.

An export writes only the lake partitions that changed since the last one: each
partition's fingerprint (its files' names and SHA-256) is kept in a JSON file that a
table property names, committed with the data. A table with a changed, new or removed
partition gets one snapshot that drops the Iceberg data files holding that partition
(copy-on-write: the other rows of an unpartitioned table's files are written again)
and adds the partition's rows, one data file per partition (per table, unpartitioned)
up to Iceberg's target file size. An unchanged table gets no snapshot; earlier
snapshots stay readable (time travel). See docs/exports.md#apache-iceberg.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg import types as it
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import In, Reference
from pyiceberg.expressions.literals import literal
from pyiceberg.io.pyarrow import _dataframe_to_data_files  # the writer of Table.overwrite
from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table as IcebergTable
from pyiceberg.transforms import IdentityTransform
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from storage.exports.ddl import UnsupportedType
from storage.exports.lake_export import ExportError, SourceFile, destination, partition_field, scan
from storage.lake import Lake
from storage.tables import PUBLISHED_TABLES, TABLES

FORMAT = "orb-iceberg/1"
CATALOG_NAME = "orb"
CATALOG_FILE = "catalog.db"  # the default catalog, in a local destination
NAMESPACE = "orb"
# A table property: where the JSON of the partitions' fingerprints of the current
# snapshot is. Kept in a file, not in the properties themselves, because every reader
# reads a table's metadata and a table keyed by record id has one partition per row.
FINGERPRINTS = "orb.partition-fingerprints"
_PARTITION_FIELD_ID = 1000  # Iceberg's first partition field id

_PLAIN: dict[pa.DataType, it.IcebergType] = {
    pa.string(): it.StringType(), pa.bool_(): it.BooleanType(), pa.int32(): it.IntegerType(),
    pa.int64(): it.LongType(), pa.date32(): it.DateType(),
}


@dataclass(frozen=True)
class TableExport:
    name: str
    identifier: str  # namespace.table
    partition_key: str
    partitioned: bool  # an identity partition on the key; otherwise the key is a column
    written: tuple[str, ...]  # the lake partitions written (new or changed)
    removed: tuple[str, ...]  # partitions gone from the lake, deleted from the table
    unchanged: int  # partitions left as they were
    snapshot_id: int | None  # the current snapshot (None: the table never had rows)
    rows: int  # in the current snapshot
    data_files: int
    metadata_location: str

    @property
    def committed(self) -> bool:
        return bool(self.written or self.removed)


@dataclass(frozen=True)
class IcebergExport:
    catalog_uri: str  # without its password
    warehouse: str
    namespace: str
    tables: list[TableExport]


def arrow_schema(table: str) -> pa.Schema:
    """The declared schema plus the partition key when it is only in the lake's paths
    (a date for the monthly and daily keys, text otherwise), as the Parquet export adds it."""
    declared, key = TABLES[table].schema, TABLES[table].key
    assert declared is not None  # every published table is Parquet
    return declared if key in declared.names else declared.append(partition_field(key))


def iceberg_schema(schema: pa.Schema) -> Schema:
    """The Iceberg schema of an Arrow schema; every column optional, as in the lake."""
    ids = itertools.count(1)
    fields = []
    for field in schema:
        field_id = next(ids)
        try:
            kind = _iceberg_type(field.type, ids)
        except UnsupportedType as exc:
            raise UnsupportedType(f"column {field.name!r}: {exc}") from exc
        fields.append(it.NestedField(field_id, field.name, kind, required=False))
    return Schema(*fields)


def _iceberg_type(arrow: pa.DataType, ids: Iterator[int]) -> it.IcebergType:
    if arrow in _PLAIN:
        return _PLAIN[arrow]
    if pa.types.is_decimal128(arrow):
        return it.DecimalType(arrow.precision, arrow.scale)
    if pa.types.is_timestamp(arrow) and arrow.unit == "us":
        return it.TimestamptzType() if arrow.tz else it.TimestampType()
    if pa.types.is_list(arrow):
        element_id = next(ids)
        return it.ListType(element_id, _iceberg_type(arrow.value_type, ids),
                           element_required=False)
    raise UnsupportedType(f"Arrow type {arrow} has no Iceberg mapping")


def partitioned(key: str) -> bool:
    """A month or a day: one Iceberg partition each. An id would make one per row."""
    return pa.types.is_date32(partition_field(key).type)


def open_catalog(url: str, catalog_uri: str | None = None) -> tuple[SqlCatalog, str]:
    """The SQL catalog of a destination and its warehouse location. A folder's default
    catalog is ``<folder>/catalog.db``; S3 cannot hold SQLite, so an S3 destination
    needs ``catalog_uri`` (a SQLite file on this machine, or a PostgreSQL database)."""
    dest = destination(url)
    if dest.local:
        Path(dest.root).mkdir(parents=True, exist_ok=True)
        warehouse = Path(dest.root).as_uri()
        catalog_uri = catalog_uri or f"sqlite:///{Path(dest.root) / CATALOG_FILE}"
    else:
        warehouse = f"s3://{dest.root}"
        if catalog_uri is None:
            raise ExportError(f"an Iceberg export to {url} needs a catalog URI: SQLite cannot "
                              "live in S3 (e.g. sqlite:////var/lib/orb/iceberg.db, or "
                              "postgresql+psycopg://user@host/db)")
    try:
        return SqlCatalog(CATALOG_NAME, uri=catalog_uri, warehouse=warehouse,
                          **_s3_properties()), warehouse
    except SQLAlchemyError as exc:
        raise ExportError(f"catalog {_shown(catalog_uri)}: {exc}") from exc


def _shown(catalog_uri: str) -> str:
    try:
        return make_url(catalog_uri).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(an invalid URI)"


def _s3_properties() -> dict[str, str]:
    """The settings of the Parquet export's S3 (docs/exports.md#s3-configuration);
    credentials come from AWS's usual chain, through pyarrow."""
    properties = {}
    if endpoint := os.environ.get("ORB_S3_ENDPOINT_URL"):
        properties["s3.endpoint"] = endpoint if "://" in endpoint else f"https://{endpoint}"
    if region := os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"):
        properties["s3.region"] = region
    return properties


def export_iceberg(lake: Lake, url: str, tables: Iterable[str] = PUBLISHED_TABLES,
                   catalog_uri: str | None = None,
                   namespace: str | None = None) -> IcebergExport:
    """Bring every table in ``tables`` up to date in ``namespace`` (default ``orb``) of
    the destination's catalog; a table whose partitions are all unchanged is not written."""
    tables, namespace = list(tables), namespace or NAMESPACE
    found, _ = scan(lake, tables, checksums=True)
    catalog, warehouse = open_catalog(url, catalog_uri)
    shown = _shown(str(catalog.properties["uri"]))
    results = []
    try:
        catalog.create_namespace_if_not_exists(namespace)
        for name in tables:
            try:
                results.append(_export_table(catalog, namespace, name,
                                             found[name].files if name in found else []))
            except CommitFailedException as exc:
                raise ExportError(f"{namespace}.{name}: another writer committed to it "
                                  f"during the export; run it again ({exc})") from exc
    except SQLAlchemyError as exc:
        raise ExportError(f"catalog {shown}: {exc}") from exc
    return IcebergExport(shown, warehouse, namespace, results)


def _export_table(catalog: SqlCatalog, namespace: str, name: str,
                  files: list[SourceFile]) -> TableExport:
    key, schema = TABLES[name].key, arrow_schema(name)
    table = _table(catalog, namespace, name, schema, key)
    current = _fingerprints(files)
    stored = _stored_fingerprints(table)
    written = tuple(sorted(v for v, digest in current.items() if stored.get(v) != digest))
    removed = tuple(sorted(set(stored) - set(current)))
    if written or removed:
        sources: dict[str, list[SourceFile]] = defaultdict(list)
        for source in files:
            sources[source.value].append(source)
        _commit(table, schema, key, [(value, sources[value]) for value in written],
                [*written, *removed], current)
    snapshot = table.current_snapshot()
    summary = snapshot.summary if snapshot is not None and snapshot.summary else None
    return TableExport(
        name, f"{namespace}.{name}", key, partitioned(key), written, removed,
        len(current) - len(written), None if snapshot is None else snapshot.snapshot_id,
        int(summary["total-records"] or 0) if summary else 0,
        int(summary["total-data-files"] or 0) if summary else 0, table.metadata_location)


def _table(catalog: SqlCatalog, namespace: str, name: str, schema: pa.Schema,
           key: str) -> IcebergTable:
    """The catalog's table, created on the first export; refused if it is not the lake's."""
    iceberg = iceberg_schema(schema)
    spec = UNPARTITIONED_PARTITION_SPEC
    if partitioned(key):
        spec = PartitionSpec(PartitionField(source_id=iceberg.find_field(key).field_id,
                                            field_id=_PARTITION_FIELD_ID,
                                            transform=IdentityTransform(), name=key))
    table = catalog.create_table_if_not_exists(
        f"{namespace}.{name}", iceberg, partition_spec=spec,
        properties={"comment": TABLES[name].description})
    have = [(field.name, str(field.field_type)) for field in table.schema().fields]
    want = [(field.name, str(field.field_type)) for field in iceberg.fields]
    keys = [field.name for field in table.spec().fields]
    if have != want or keys != ([key] if partitioned(key) else []):
        raise ExportError(
            f"{namespace}.{name} in the catalog has columns {_columns(have, want)} and "
            f"partitions {keys or 'none'}; the lake declares {_columns(want, have)} "
            f"(storage/tables.py): export to a new namespace or destination")
    return table


def _columns(these: list[tuple[str, str]], others: list[tuple[str, str]]) -> str:
    differ = [f"{name} {kind}" for name, kind in these if (name, kind) not in others]
    return ", ".join(differ) or "in another order"


def _fingerprints(files: list[SourceFile]) -> dict[str, str]:
    """Each lake partition's fingerprint: its files' names and checksums."""
    by_partition: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for source in files:
        by_partition[source.value].append((source.path.name, source.sha256))
    return {value: hashlib.sha256(json.dumps([FORMAT, sorted(entries)]).encode()).hexdigest()[:32]
            for value, entries in sorted(by_partition.items())}


def _stored_fingerprints(table: IcebergTable) -> dict[str, str]:
    location = table.properties.get(FINGERPRINTS)
    if location is None:
        return {}
    with table.io.new_input(location).open() as stream:
        return dict(json.loads(stream.read())["partitions"])


def _commit(table: IcebergTable, schema: pa.Schema, key: str,
            written: list[tuple[str, list[SourceFile]]], changed: list[str],
            fingerprints: dict[str, str]) -> None:
    """One snapshot: drop the data files holding ``changed`` partitions, add the written
    partitions' rows (and, unpartitioned, the other rows of the dropped files)."""
    commit_uuid, counter = uuid.uuid4(), itertools.count()
    dropped = _data_files_of(table, key, changed)
    if partitioned(key):  # the dropped files hold only changed partitions
        added = [data_file for value, sources in written
                 for data_file in _write(table, _lake_rows(table, schema, key, value, sources),
                                         commit_uuid, counter)]
    else:  # one file for all: what the dropped files keep, then the new partitions
        batches = itertools.chain(
            _kept_rows(table, schema, key, dropped, set(changed)),
            (batch for value, sources in written
             for batch in _lake_rows(table, schema, key, value, sources).to_batches()))
        rows = (batch for batch in batches if batch.num_rows)  # an empty one is a file
        added = _write(table, pa.RecordBatchReader.from_batches(schema, rows), commit_uuid,
                       counter)
    location = f"{table.metadata.location}/metadata/orb-partitions-{commit_uuid}.json"
    with table.io.new_output(location).create() as stream:
        stream.write(json.dumps({"format": FORMAT, "partitions": fingerprints}).encode())
    summary = {"orb.export": FORMAT, "orb.partitions-written": str(len(written)),
               "orb.partitions-removed": str(len(changed) - len(written))}
    with table.transaction() as transaction:
        if dropped or added:
            with transaction.update_snapshot(snapshot_properties=summary).overwrite(
                    commit_uuid=commit_uuid) as snapshot:
                for data_file in dropped:
                    snapshot.delete_data_file(data_file)
                for data_file in added:
                    snapshot.append_data_file(data_file)
        transaction.set_properties({FINGERPRINTS: location})


def _data_files_of(table: IcebergTable, key: str, values: list[str]) -> list[DataFile]:
    """The current snapshot's data files that may hold rows of these partitions (exactly
    theirs when partitioned; by the key column's bounds otherwise)."""
    if table.current_snapshot() is None:
        return []
    literals = {literal(date.fromisoformat(v)) if partitioned(key) else literal(v)
                for v in values}
    tasks = list(table.scan(row_filter=In(term=Reference(key), values=literals)).plan_files())
    if any(task.delete_files for task in tasks):
        raise ExportError(f"{table.name()} has delete files, which orb export never writes: "
                          "another engine wrote to it; export to a new namespace or destination")
    return [task.file for task in tasks]


def _write(table: IcebergTable, rows: pa.Table | pa.RecordBatchReader, commit_uuid: uuid.UUID,
           counter: itertools.count[int]) -> list[DataFile]:
    if isinstance(rows, pa.Table) and rows.num_rows == 0:
        return []
    return list(_dataframe_to_data_files(table.metadata, rows, table.io, commit_uuid, counter))


def _lake_rows(table: IcebergTable, schema: pa.Schema, key: str, value: str,
               sources: list[SourceFile]) -> pa.Table:
    """A lake partition's rows in the table's schema, from the bytes that were
    checksummed: a file replaced by the pipeline meanwhile fails the export."""
    parts = [schema.empty_table()]
    for source in sources:
        data = source.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != source.sha256:
            raise ExportError(f"{source.path} changed during the export; run it again")
        try:
            rows = pq.read_table(pa.BufferReader(data), partitioning=None)
            if undeclared := [name for name in rows.column_names if name not in schema.names]:
                raise KeyError(f"undeclared columns {', '.join(undeclared)}")
            if key not in rows.column_names:  # only in the path
                rows = rows.append_column(key, pa.array([value] * rows.num_rows).cast(
                    schema.field(key).type))
            for field in schema:  # declared since the file was written: null, as Iceberg
                if field.name not in rows.column_names:  # reads a column added later
                    rows = rows.append_column(field.name, pa.nulls(rows.num_rows, field.type))
            parts.append(rows.select(schema.names).cast(schema))
        except (KeyError, pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise ExportError(f"{source.path} does not hold the columns {table.name()[-1]} "
                              f"declares in storage/tables.py: {exc.args[0]}") from exc
    return pa.concat_tables(parts)


def _kept_rows(table: IcebergTable, schema: pa.Schema, key: str, dropped: list[DataFile],
               changed: set[str]) -> Iterator[pa.RecordBatch]:
    """The rows of other partitions in the data files about to be dropped."""
    values = pa.array(sorted(changed), pa.string())
    for data_file in dropped:
        with table.io.new_input(data_file.file_path).open() as stream:
            rows = pq.read_table(stream)
        rows = rows.filter(pc.invert(pc.is_in(rows[key], value_set=values)))
        yield from rows.select(schema.names).cast(schema).to_batches()
