"""``orb export``: the published lake tables, a manifest and warehouse DDL, to a folder or
S3, atomically; or, with ``--format iceberg``, Apache Iceberg tables kept up to date
incrementally (docs/exports.md)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from cli.options import DATA_DIR
from cli.output import console
from storage.exports import lake_export as exports
from storage.exports.ddl import DIALECTS
from storage.lake import Lake
from storage.settings import Settings
from storage.tables import PUBLISHED_TABLES
from webhooks.publish import export_succeeded


def _tables(_ctx, _param, value: str | None) -> tuple[str, ...]:
    if value is None:
        return PUBLISHED_TABLES
    names = tuple(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    unknown = sorted(set(names) - set(PUBLISHED_TABLES))
    if unknown or not names:
        raise click.BadParameter(f"unknown or unpublished: {', '.join(unknown) or '(none)'}; "
                                 f"published: {', '.join(PUBLISHED_TABLES)}")
    return names


@click.command("export")
@click.option("--to", "url", metavar="DEST",
              help="A folder or s3://bucket/prefix (ORB_S3_ENDPOINT_URL for S3-compatible "
                   "servers; credentials from the AWS_* variables or profile).")
@click.option("--format", "kind", type=click.Choice(["parquet", "iceberg"]), default="parquet",
              show_default=True, help="parquet: hive-partitioned files with a manifest and "
              "DDL; iceberg: Iceberg tables in a SQL catalog, only changed partitions written.")
@click.option("--catalog-uri", envvar="ORB_ICEBERG_CATALOG_URI", metavar="URI",
              help="With --format iceberg: the catalog, a SQLAlchemy URL (default: "
                   "sqlite:///DEST/catalog.db for a folder; S3 needs one).")
@DATA_DIR
@click.option("--tables", callback=_tables, help="Comma-separated; default: every published "
              "table.")
@click.option("--ddl", "dialect", type=click.Choice(DIALECTS),
              help="Print this dialect's CREATE TABLE statements.")
@click.option("--namespace", help="Qualify the printed DDL's tables: schema or "
              "database.schema (BigQuery: dataset or project.dataset); with --format "
              "iceberg, the Iceberg namespace (default orb).")
@click.pass_context
def export(ctx: click.Context, url: str | None, kind: str, catalog_uri: str | None,
           data_dir: Path, tables: tuple[str, ...], dialect: str | None,
           namespace: str | None) -> None:
    """Export the published lake tables as hive-partitioned Parquet with a manifest and
    CREATE TABLE DDL, to a folder or S3; readers follow DEST/_latest.json. With --ddl,
    print the DDL (without --to, nothing is exported). With --format iceberg, bring
    Iceberg tables in DEST up to date instead."""
    if url is None and dialect is None:
        raise click.UsageError("give --to DEST, --ddl DIALECT, or both")
    if kind == "iceberg" and (url is None or dialect is not None):
        raise click.UsageError("--format iceberg needs --to DEST and takes no --ddl (the DDL "
                               "describes the Parquet export; Iceberg tables carry their "
                               "schema)")
    given = ctx.get_parameter_source("catalog_uri") == click.core.ParameterSource.COMMANDLINE
    if kind == "parquet" and given:
        raise click.UsageError("--catalog-uri is for --format iceberg")
    lake = Lake(data_dir)
    if not (lake.root / "lake").is_dir():
        raise click.ClickException(f"no lake in {data_dir} (run `orb bill` or `orb demo`)")
    try:
        if kind == "iceberg" and url is not None:
            _export_iceberg(lake, url, tables, catalog_uri, namespace)
        elif url is not None:
            _export(lake, url, tables)
        if dialect is not None:
            found, _ = exports.scan(lake, tables)
            click.echo(exports.ddl(found, dialect, namespace), nl=False)
    except (exports.ExportError, ValueError, OSError) as exc:
        # pyarrow's S3 errors name the bucket and the failure, never credentials.
        raise click.ClickException(str(exc)) from exc


def _export(lake: Lake, url: str, tables: tuple[str, ...]) -> None:
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    with console.status(f"Exporting to {url}..."):
        result = exports.export(lake, url, tables)
    manifest = result.manifest
    if not result.unchanged:  # data_exports.transfer_success (webhooks)
        export_succeeded(Settings.from_env(lake.root).state_store_url, manifest, url,
                         started_at, datetime.now(UTC))
    table = Table(title=f"Export {manifest['export_id']}")
    for column in ("table", "key", "files", "rows", "size"):
        table.add_column(column, no_wrap=True,
                         justify="left" if column in ("table", "key") else "right")
    for name, entry in manifest["tables"].items():
        table.add_row(name, entry["partition_key"], f"{len(entry['files']):,}",
                      f"{entry['rows']:,}", _size(entry["bytes"]))
    console.print(table)
    if manifest["empty_tables"]:
        console.print(f"No data yet (not exported): {', '.join(manifest['empty_tables'])}")
    where = f"{url.rstrip('/')}/exports/{manifest['export_id']}/manifest.json"
    if result.unchanged:
        console.print(f"Unchanged since that export; nothing written. Manifest: {where}",
                      soft_wrap=True)
    else:
        console.print(f"Manifest: {where}; {url.rstrip('/')}/{exports.POINTER} points to it "
                      f"[{time.perf_counter() - started:.1f}s]", soft_wrap=True)


def _export_iceberg(lake: Lake, url: str, tables: tuple[str, ...], catalog_uri: str | None,
                    namespace: str | None) -> None:
    from storage.exports import iceberg_export  # pyiceberg, only for this format

    started = time.perf_counter()
    with console.status(f"Exporting Iceberg tables to {url}..."):
        result = iceberg_export.export_iceberg(lake, url, tables, catalog_uri, namespace)
    table = Table(title=f"Iceberg tables in {url}")
    for column in ("table", "partitioned by", "written", "unchanged", "removed", "rows",
                   "data files"):
        table.add_column(column, no_wrap=True,
                         justify="left" if column in ("table", "partitioned by") else "right")
    for entry in result.tables:
        table.add_row(entry.identifier, entry.partition_key if entry.partitioned
                      else f"(none; {entry.partition_key} is a column)",
                      f"{len(entry.written):,}", f"{entry.unchanged:,}",
                      f"{len(entry.removed):,}", f"{entry.rows:,}", f"{entry.data_files:,}")
    console.print(table)
    where = f"Catalog: {result.catalog_uri}, namespace {result.namespace}"
    if not any(entry.committed for entry in result.tables):
        console.print(f"Unchanged since the last export; nothing written. {where}",
                      soft_wrap=True)
    else:
        console.print(f"{where}; warehouse {result.warehouse} "
                      f"[{time.perf_counter() - started:.1f}s]", soft_wrap=True)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:,.0f} B" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"
