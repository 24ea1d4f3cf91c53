"""Warehouse exports: the published lake tables as hive-partitioned Parquet with a
manifest and DDL, to a local folder or ``s3://bucket/prefix``, atomically.

Layout under the destination (docs/exports.md)::

    _latest.json                                    the newest complete export (written last)
    exports/<export_id>/manifest.json               files, rows, bytes, sha256, schemas
    exports/<export_id>/tables/<table>/<key>=<value>/<file>.parquet
    exports/<export_id>/ddl/<dialect>.sql

Object stores have no atomic rename, so each export goes to a new folder and becomes
visible only when its manifest, then the pointer, is written: a reader that follows
``_latest.json`` never sees a half-written export, and an interrupted one is never
pointed to. Lake files are copied byte for byte (the checksums are the lake's).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from storage.exports.ddl import DIALECTS, ddl_script
from storage.lake import Lake, fsync_path, write_atomically
from storage.tables import PUBLISHED_TABLES, TABLES

FORMAT = "orb-export/1"
POINTER = "_latest.json"
_CHUNK = 8 << 20
_WORKERS = 8  # copies wait on the network, not the CPU


class ExportError(RuntimeError):
    pass


@dataclass(frozen=True)
class SourceFile:
    table: str
    key: str
    value: str
    path: Path
    rows: int
    size: int
    schema: pa.Schema
    sha256: str | None  # None when only the schema was needed

    @property
    def relative(self) -> str:
        return f"tables/{self.table}/{self.key}={self.value}/{self.path.name}"


@dataclass(frozen=True)
class LakeTable:
    name: str
    key: str
    files: list[SourceFile]
    schema: pa.Schema  # the files' schemas unified, plus the partition column


@dataclass(frozen=True)
class Destination:
    fs: pafs.FileSystem
    root: str  # a path inside ``fs``

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}" if self.root else relative


@dataclass(frozen=True)
class ExportResult:
    manifest: dict
    unchanged: bool  # the latest export already held exactly these files; nothing written


def destination(url: str) -> Destination:
    """A local folder, or ``s3://bucket/prefix`` on AWS or an S3-compatible server."""
    if url.startswith("s3://"):
        bucket_and_prefix = url.removeprefix("s3://").strip("/")
        if not bucket_and_prefix:
            raise ExportError(f"{url!r} names no bucket: use s3://bucket/prefix")
        return Destination(_s3(), bucket_and_prefix)
    if "://" in url:
        raise ExportError(f"unsupported destination {url!r}: use a folder or s3://bucket/prefix")
    return Destination(pafs.LocalFileSystem(), str(Path(url).resolve()))


def _s3() -> pafs.S3FileSystem:
    """Credentials come from AWS's usual chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
    AWS_PROFILE, instance roles); ORB_S3_ENDPOINT_URL points at MinIO, R2, moto, ..."""
    options: dict[str, str] = {}
    if endpoint := os.environ.get("ORB_S3_ENDPOINT_URL"):
        scheme, _, host = endpoint.rpartition("://")
        options.update(endpoint_override=host.rstrip("/"), scheme=scheme or "https")
    if region := os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"):
        options["region"] = region
    # Delayed open: a file smaller than a part is one PUT, not a three-request multipart
    # upload; errors surface when the file is closed, which every write waits for.
    return pafs.S3FileSystem(allow_delayed_open=True, **options)


def scan(lake: Lake, tables: Iterable[str] = PUBLISHED_TABLES, checksums: bool = False,
         ) -> tuple[dict[str, LakeTable], list[str]]:
    """The tables that have files (with their footers, and checksums if asked), and
    the names of those that have none yet."""
    tables = list(tables)
    refused = sorted(set(tables) - set(PUBLISHED_TABLES))
    if refused:
        raise ExportError(f"not published: {', '.join(refused)} "
                          f"(published: {', '.join(PUBLISHED_TABLES)})")
    paths = [(table, Path(path)) for table in tables for path in lake.all_files(table)]
    with ThreadPoolExecutor(_WORKERS) as pool:
        files = list(pool.map(lambda item: _source(item[0], item[1], checksums), paths))
    found = {table: _lake_table(table, [f for f in files if f.table == table])
             for table in tables if any(f.table == table for f in files)}
    return found, [table for table in tables if table not in found]


def _source(table: str, path: Path, checksum: bool) -> SourceFile:
    """One file's footer and, from the same open file, its checksum: both describe the
    same bytes even if the pipeline replaces the file meanwhile."""
    key, value = path.parent.name.split("=", 1)
    with open(path, "rb") as handle:
        metadata = pq.read_metadata(handle)
        digest = _sha256(handle) if checksum else None
        size = os.fstat(handle.fileno()).st_size
    return SourceFile(table, key, value, path, metadata.num_rows, size,
                      metadata.schema.to_arrow_schema().remove_metadata(), digest)


def _sha256(handle) -> str:
    handle.seek(0)
    digest = hashlib.sha256()
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _lake_table(name: str, files: list[SourceFile]) -> LakeTable:
    key = TABLES[name].key
    strays = sorted({f.key for f in files} - {key})
    if strays:
        raise ExportError(f"table {name!r} is partitioned by {key!r} (storage/tables.py), "
                          f"not by {', '.join(strays)}")
    try:
        schema = pa.unify_schemas([f.schema for f in files])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ExportError(f"table {name!r}: its files disagree on the schema: {exc}") from exc
    if key not in schema.names:
        schema = schema.append(partition_field(key))
    return LakeTable(name, key, files, schema)


def partition_field(key: str) -> pa.Field:
    """The hive column of a table whose files do not hold it: a date for the monthly and
    daily partitions (as DuckDB and Polars infer it), text otherwise."""
    daily_or_monthly = key == "billing_month" or key.endswith("_date")
    return pa.field(key, pa.date32() if daily_or_monthly else pa.string())


def ddl(tables: dict[str, LakeTable], dialect: str, namespace: str | None = None) -> str:
    return ddl_script({t.name: (t.schema, t.key) for t in tables.values()}, dialect, namespace)


def export(lake: Lake, url: str, tables: Iterable[str] = PUBLISHED_TABLES,
           now: datetime | None = None) -> ExportResult:
    """Export ``tables`` to ``url``, or nothing if the latest export there is identical."""
    dest = destination(url)
    found, empty = scan(lake, tables, checksums=True)
    scripts = {dialect: ddl(found, dialect) for dialect in DIALECTS}
    fingerprint = _fingerprint(found, scripts)
    latest = read_latest(dest)
    if latest is not None and latest["fingerprint"] == fingerprint:
        return ExportResult(latest, unchanged=True)
    now = now or datetime.now(UTC)
    export_id = f"{now:%Y%m%dT%H%M%S}Z-{fingerprint[:8]}"
    prefix = f"exports/{export_id}"
    files = [f for table in found.values() for f in table.files]
    with ThreadPoolExecutor(_WORKERS) as pool:
        list(pool.map(lambda f: _copy(f, dest, f"{prefix}/{f.relative}"), files))
    for dialect, script in scripts.items():
        _write(dest, f"{prefix}/ddl/{dialect}.sql", script.encode())
    manifest = _manifest(export_id, now, fingerprint, found, empty)
    # The manifest completes the export; the pointer, last, publishes it.
    _write(dest, f"{prefix}/manifest.json", _json(manifest))
    _write(dest, POINTER, _json({"format": FORMAT, "export_id": export_id,
                                 "manifest": f"{prefix}/manifest.json",
                                 "fingerprint": fingerprint,
                                 "created_at": manifest["created_at"]}))
    return ExportResult(manifest, unchanged=False)


def _fingerprint(found: dict[str, LakeTable], scripts: dict[str, str]) -> str:
    """What an export holds: every file's place and checksum, and the DDL."""
    content = [FORMAT, sorted((f.relative, f.sha256) for t in found.values() for f in t.files),
               scripts]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def _copy(source: SourceFile, dest: Destination, relative: str) -> None:
    """Copy a lake file and check it is still the file that was checksummed."""
    target = dest.path(relative)
    if dest.local:
        dest.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
    digest = hashlib.sha256()
    with open(source.path, "rb") as reader, \
            dest.fs.open_output_stream(target, compression=None) as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
    if digest.hexdigest() != source.sha256:
        raise ExportError(f"{source.path} changed during the export; run it again")
    if dest.local:  # on disk before the manifest that vouches for it
        fsync_path(target)


def _write(dest: Destination, relative: str, data: bytes) -> None:
    """Write a whole file atomically: an S3 PUT appears whole or not at all; on disk,
    a scratch file is flushed and renamed into place."""
    target = dest.path(relative)
    if dest.local:
        write_atomically(Path(target), lambda scratch: scratch.write_bytes(data))
        return
    with dest.fs.open_output_stream(target, compression=None) as writer:
        writer.write(data)


def _json(document: dict) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode()


def _manifest(export_id: str, now: datetime, fingerprint: str,
              found: dict[str, LakeTable], empty: list[str]) -> dict:
    return {
        "format": FORMAT,
        "export_id": export_id,
        "created_at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "fingerprint": fingerprint,
        "tables": {name: _table_entry(table) for name, table in found.items()},
        "empty_tables": empty,
        "ddl": {dialect: f"ddl/{dialect}.sql" for dialect in DIALECTS},
    }


def _table_entry(table: LakeTable) -> dict:
    return {
        "path": f"tables/{table.name}",
        "partition_key": table.key,
        "partitions": len({f.value for f in table.files}),
        "rows": sum(f.rows for f in table.files),
        "bytes": sum(f.size for f in table.files),
        "schema": [{"name": field.name, "type": str(field.type), "nullable": field.nullable,
                    "partition": field.name == table.key} for field in table.schema],
        "files": [{"path": f.relative, "partition": f.value, "rows": f.rows,
                   "bytes": f.size, "sha256": f.sha256} for f in table.files],
    }


def read_json(dest: Destination, relative: str) -> dict | None:
    try:
        with dest.fs.open_input_stream(dest.path(relative)) as reader:
            return json.loads(reader.read())
    except FileNotFoundError:
        return None


def read_latest(dest: Destination) -> dict | None:
    """The manifest of the newest complete export, or None before the first export."""
    pointer = read_json(dest, POINTER)
    return None if pointer is None else read_json(dest, pointer["manifest"])


def export_root(dest: Destination, manifest: dict) -> str:
    """Where a manifest's files are: its paths are relative to this folder."""
    return dest.path(f"exports/{manifest['export_id']}")


def dataset(dest: Destination, manifest: dict, table: str) -> pads.Dataset:
    """One table of an export as a pyarrow dataset: exactly the manifest's files, with
    the partition column typed as the manifest says (pyarrow would infer text)."""
    entry = manifest["tables"][table]
    base = f"{export_root(dest, manifest)}/{entry['path']}"
    key = next(column for column in entry["schema"] if column["partition"])
    partitioning = pads.partitioning(
        pa.schema([(key["name"], pa.type_for_alias(key["type"]))]), flavor="hive")
    return pads.dataset([f"{export_root(dest, manifest)}/{f['path']}" for f in entry["files"]],
                        filesystem=dest.fs, format="parquet", partitioning=partitioning,
                        partition_base_dir=base)
