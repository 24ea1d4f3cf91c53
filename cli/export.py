"""``orb export``: the published lake tables, a manifest and warehouse DDL, to a folder or
S3, atomically (docs/exports.md)."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from storage.exports import lake_export as exports
from storage.exports.ddl import DIALECTS
from storage.lake import Lake
from storage.tables import PUBLISHED_TABLES

console = Console()


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
@click.option("--data-dir", default="data", show_default=True, type=click.Path(path_type=Path))
@click.option("--tables", callback=_tables, help="Comma-separated; default: every published "
              "table.")
@click.option("--ddl", "dialect", type=click.Choice(DIALECTS),
              help="Print this dialect's CREATE TABLE statements.")
@click.option("--namespace", help="Qualify the printed DDL's tables: schema or "
              "database.schema (BigQuery: dataset or project.dataset).")
def export(url: str | None, data_dir: Path, tables: tuple[str, ...], dialect: str | None,
           namespace: str | None) -> None:
    """Export the published lake tables as hive-partitioned Parquet with a manifest and
    CREATE TABLE DDL, to a folder or S3; readers follow DEST/_latest.json. With --ddl,
    print the DDL (without --to, nothing is exported)."""
    if url is None and dialect is None:
        raise click.UsageError("give --to DEST, --ddl DIALECT, or both")
    lake = Lake(data_dir)
    if not (lake.root / "lake").is_dir():
        raise click.ClickException(f"no lake in {data_dir} (run `orb bill` or `orb demo`)")
    try:
        if url is not None:
            _export(lake, url, tables)
        if dialect is not None:
            found, _ = exports.scan(lake, tables)
            click.echo(exports.ddl(found, dialect, namespace), nl=False)
    except (exports.ExportError, ValueError, OSError) as exc:
        # pyarrow's S3 errors name the bucket and the failure, never credentials.
        raise click.ClickException(str(exc)) from exc


def _export(lake: Lake, url: str, tables: tuple[str, ...]) -> None:
    started = time.perf_counter()
    with console.status(f"Exporting to {url}..."):
        result = exports.export(lake, url, tables)
    manifest = result.manifest
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


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:,.0f} B" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"
