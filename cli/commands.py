"""The commands of ``orb`` that are not a stage's group: the demo, billing a month,
ingestion, quarantine, amendments, pricing one price and checking metrics. Imported only
when one of them runs (``cli/main.py`` lists them lazily)."""

from __future__ import annotations

import json
import shutil
import time
import warnings
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import click
import dagster as dg
import duckdb
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from assets.events import day_materializations, materializations
from assets.resources import OrbStore
from billing import money, periods
from billing.catalog import CatalogError
from cli.options import (
    DATA_DIR,
    FORMAT,
    data_dir_option,
    existing_data_dir,
    iso_instant,
    period_option,
)
from cli.output import console, emit
from cli.state import import_files
from cli.summary import print_summary, summarize
from ingestion.amendments import amended_days, record_amendment
from ingestion.batches import Window, ingest_files, replay_batch
from ingestion.quarantine import list_quarantine
from pipelines import runner
from pipelines.definitions import build_definitions
from pricing_sql.catalog_files import check_metrics
from pricing_sql.evaluate import price_breakdown
from pricing_sql.metric_trial import SAMPLE_DAYS, lake_sample
from pricing_sql.metrics import PORTABLE_DIALECTS, portability
from pricing_sql.run_catalog import current_catalog
from reports.documents import issue_and_render
from sample_data.generate import CUSTOMERS_FILE, generate, write_payments
from storage.duck import connect
from storage.settings import Settings

# Dagster flags its beta parameters each time definitions are built; not news to a user.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
# The demo owns these in its data folder; a re-run starts from scratch. The state store is
# the SQLite file unless ORB_STATE_URL names another, which the demo imports into.
GENERATED = ("catalog", CUSTOMERS_FILE, "landing", "lake", "reports", "payments", "orb.duckdb",
             "state.db", "state.db-wal", "state.db-shm")


@click.command()
@DATA_DIR
@click.option("--customers", default=100, show_default=True)
@click.option("--events", default=1_000_000, show_default=True)
@click.option("--months", default=3, show_default=True)
@click.option("--seed", default=42, show_default=True)
def demo(data_dir: Path, customers: int, events: int, months: int, seed: int) -> None:
    """Generate a sample catalog and events, bill the last complete months, and issue
    the oldest of them."""
    started = time.perf_counter()
    # the month before UTC's, as every date the pipeline takes: never the machine's zone
    last = runner.last_complete_month(datetime.now(UTC).date())
    billed = [periods.add_months(last, -i) for i in reversed(range(months))]
    for name in GENERATED:
        path = data_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    raw = generate(data_dir, customers, events, billed[0], months, seed)
    console.print(f"Generated {customers} customers and {raw:,} raw events "
                  f"({billed[0]:%Y-%m} to {billed[-1]:%Y-%m}) in {data_dir}/landing "
                  f"[{time.perf_counter() - started:.1f}s]")
    # As `orb state import data/customers.yaml` would: customers live in the state store.
    written = import_files(data_dir, [data_dir / CUSTOMERS_FILE])
    console.print(f"Imported {written.customers} customers and {written.subscriptions} "
                  f"subscriptions into the state store "
                  f"{Settings.from_env(data_dir).state_store_url} "
                  f"[{time.perf_counter() - started:.1f}s]")
    _bill(data_dir, billed, started)
    # The oldest month is closed: issue its drafts, as `orb invoices issue` would, and
    # collect most of them from a payments file, as the manual processor does.
    settings = Settings.from_env(data_dir)
    issued, folder = issue_and_render(settings, billed[0])
    console.print(f"Issued {billed[0]:%Y-%m}: {len(issued)} documents, {issued[0][0]} to "
                  f"{issued[-1][0]}, HTML and PDF in {folder}; later months stay drafts "
                  f"[{time.perf_counter() - started:.1f}s]")
    payments_file = data_dir / "payments" / "payments.csv"
    paying = write_payments(payments_file, [(n, d.head.to_row()) for n, d in issued], 0.8,
                            seed)
    defs, on = build_definitions(OrbStore.of(settings)), runner.instance()
    runner.collect_payments(defs, on)
    runner.refresh_revenue(defs, billed[0], on)
    console.print(f"Collected {paying} of them from {payments_file} (manual processor); "
                  f"billed vs collected in {settings.lake.reports / 'revenue'} "
                  f"[{time.perf_counter() - started:.1f}s]")


@click.command()
@period_option(required=True, old_month=True)
@DATA_DIR
def bill(period: date, data_dir: Path) -> None:
    """Land events and bill one month from the landing folder and catalog in DATA_DIR."""
    _bill(existing_data_dir(data_dir), [period], time.perf_counter())


def _bill(data_dir: Path, months: list[date], started: float) -> None:
    settings = Settings.from_env(data_dir)
    with console.status("Running the billing pipeline through Dagster..."):
        runner.bill_months(build_definitions(OrbStore.of(settings)), months,
                           runner.instance())
    print_summary(summarize(settings.lake, months), console)
    console.print(f"Done in {time.perf_counter() - started:.1f}s")


@click.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DATA_DIR
def ingest(files: tuple[Path, ...], data_dir: Path) -> None:
    """Ingest event files (Parquet, JSON Lines, CSV; gzip accepted) as batches."""
    settings = Settings.from_env(data_dir)
    with Progress(*Progress.get_default_columns(), console=console) as progress:
        task = progress.add_task("Ingesting", total=len(files))
        results = ingest_files(connect(), settings.lake, current_catalog(settings), list(files),
                               datetime.now(UTC), Window.of(settings),
                               progress=lambda _: progress.advance(task))
    _report(materializations(results))
    _print_batches(results)


def _report(reports: list, on: dg.DagsterInstance | None = None) -> None:
    """Tell the Dagster instance what a command changed, as a run would."""
    on = on or runner.instance()
    for report in reports:
        on.report_runless_asset_event(report)


def _print_batches(results) -> None:
    table = Table(title="Batches")
    for column in ("file", "batch", "status", "rows", "accepted", "rejected", "duplicates",
                   "late"):
        table.add_column(column, justify="right" if column in ("rows", "accepted", "rejected",
                                                                "duplicates", "late") else "left")
    for r in results:
        table.add_row(r.file, r.batch_id, r.status, str(r.rows), str(r.accepted),
                      str(r.rejected), str(r.duplicates), str(r.late))
    console.print(table)


@click.group()
def quarantine() -> None:
    """Events that failed a check, kept with the reason and their place."""


@quarantine.command("list")
@DATA_DIR
@click.option("--batch", "batch_id", help="Only this batch.")
@click.option("--reason", help="Only reasons containing this text.")
@click.option("--limit", default=50, show_default=True)
@FORMAT
def quarantine_list(data_dir: Path, batch_id: str | None, reason: str | None,
                    limit: int, output_format: str) -> None:
    """Show quarantined events, newest batch files first, with counts by reason."""
    lake = Settings.from_env(existing_data_dir(data_dir)).lake
    rows, counts = list_quarantine(connect(), lake, batch_id, reason, limit)
    fields = ("batch_id", "source_file", "source_row", "reject_reason", "reject_detail",
              "idempotency_key")
    emit(output_format, f"Quarantined events (showing {len(rows)})", fields, rows,
         ("batch", "file", "row", "reason", "detail", "idempotency_key"),
         lambda row: [str(row[f]) if row[f] is not None else "" for f in fields],
         right=("row",))
    if output_format == "table":  # json and csv stay one document
        console.print(", ".join(f"{k}: {v}" for k, v in counts.items())
                      or "nothing quarantined")


@quarantine.command("replay")
@click.argument("batch_ids", nargs=-1, required=True)
@DATA_DIR
def quarantine_replay(batch_ids: tuple[str, ...], data_dir: Path) -> None:
    """Check batches again against the catalog and the state store as they are now (e.g.
    after adding a customer)."""
    settings = Settings.from_env(existing_data_dir(data_dir))
    catalog = current_catalog(settings)
    try:
        results = [replay_batch(connect(), settings.lake, catalog, batch_id, datetime.now(UTC),
                                Window.of(settings)) for batch_id in batch_ids]
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    _report(materializations(results))
    _print_batches(results)


@click.command()
@click.option("--customer", "customer_id", help="The customer whose events to amend.")
@click.option("--all-customers", is_flag=True, help="Amend every customer's events.")
@click.option("--start", required=True, callback=iso_instant, help="Inclusive, ISO 8601.")
@click.option("--end", required=True, callback=iso_instant, help="Exclusive, ISO 8601.")
@click.option("--event", "idempotency_key", help="Only the event with this idempotency key.")
@click.option("--reason", required=True, help="Why, for the audit trail.")
@click.option("--replace-with", "replacement", type=click.Path(exists=True, dir_okay=False,
                                                               path_type=Path),
              help="A batch of replacement events, ingested after the amendment.")
@DATA_DIR
def amend(customer_id, all_customers, start, end, idempotency_key, reason, replacement,
          data_dir) -> None:
    """Deprecate past events (they stay in the lake) and optionally ingest replacements."""
    if bool(customer_id) == all_customers:
        raise click.UsageError("give exactly one of --customer and --all-customers")
    settings = Settings.from_env(data_dir)
    catalog = current_catalog(settings)
    if customer_id and customer_id not in {c.id for c in catalog.customers}:
        raise click.ClickException(f"unknown customer {customer_id!r}")
    try:
        amendment = record_amendment(settings.lake, customer_id, start, end, reason,
                                     datetime.now(UTC), idempotency_key)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    reports = day_materializations(amended_days(amendment),
                                   {"amendment": amendment.amendment_id, "reason": reason})
    results = []
    if replacement:
        results = ingest_files(connect(), settings.lake, catalog, [replacement],
                               datetime.now(UTC), Window.of(settings))
        reports += materializations(results)
    _report(reports)
    console.print(f"Amendment {amendment.amendment_id}: events of "
                  f"{customer_id or 'every customer'}"
                  f"{' with key ' + idempotency_key if idempotency_key else ''} in "
                  f"[{start.isoformat()}, {end.isoformat()}) no longer count. "
                  "Re-rate the months it touches (orb bill, or a backfill in the UI).")
    if results:
        _print_batches(results)


@click.command()
@click.option("--price", "price_file", required=True, type=click.File(),
              help="An Orb-shaped price as JSON: model_type and <model_type>_config.")
@click.option("--quantity", type=str,
              help="The usage quantity: 0 or more, at most 9 decimal places.")
@click.option("--usage", "usage_file", type=click.File(),
              help='Grouped usage as JSON: [{"group": {...}, "quantity": ...}, ...].')
def price(price_file, quantity: str | None, usage_file) -> None:
    """Price one usage quantity with the pipeline's SQL and show the breakdown."""
    if (quantity is None) == (usage_file is None):
        raise click.UsageError("give exactly one of --quantity and --usage")
    try:
        usage = quantity if quantity is not None else _json(usage_file)
        breakdown = price_breakdown(_json(price_file), usage)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise click.ClickException(str(exc)) from exc
    table = Table(title="Breakdown")
    for column in ("group", "tier", "from (excl.)", "to (incl.)", "quantity", "rate", "amount"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for sub in breakdown.sub_line_items:
        table.add_row(", ".join(str(v) for v in sub["group_values"]) or "-",
                      str(sub["tier_index"] + 1), _number(sub["first_unit"]),
                      _number(sub["last_unit"]), _number(sub["quantity"]),
                      _number(sub["unit_amount"]), _number(sub["amount"]))
    console.print(table)
    console.print(f"Amount: {money.format_money(breakdown.amount, breakdown.currency)} "
                  f"({breakdown.amount} {breakdown.currency}; precise "
                  f"{_number(breakdown.precise_amount)})")


def _json(file: TextIO) -> Any:
    try:
        return json.load(file)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file.name}: not JSON: {exc}") from exc


def _number(value: Decimal | None) -> str:
    return "-" if value is None else f"{value.normalize():f}"


@click.group()
def metrics() -> None:
    """Billable metrics."""


@metrics.command("check")
@click.option("--catalog", "catalog_dir", envvar="ORB_CATALOG_DIR", show_envvar=True,
              type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="The catalog folder [default: DATA_DIR/catalog].")
@data_dir_option(help="Each metric also runs on a sample of this lake's newest events.")
def metrics_check(catalog_dir: Path | None, data_dir: Path) -> None:
    """Check every metric's SQL, run it on an empty events table and on a sample of the
    lake's events, and show which warehouses it transpiles to."""
    settings = Settings.from_env(data_dir)
    lake = settings.lake
    catalog_dir = catalog_dir or settings.catalog_path
    if not catalog_dir.is_dir():
        raise click.ClickException(f"no catalog folder at {catalog_dir}")
    try:
        sample = lake_sample(lake)
    except duckdb.Error as exc:  # the metrics can still be checked without it
        console.print(Text(f"cannot sample the events of {data_dir}: {exc}", style="yellow"))
        sample = None
    try:
        catalog, problems = check_metrics(catalog_dir, sample)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from exc
    table = Table(title=f"Metrics in {catalog_dir}")
    table.add_column("metric")
    table.add_column("checks")
    for dialect in PORTABLE_DIALECTS:
        table.add_column(dialect)
    for metric in catalog.metrics:
        if problem := problems.get(metric.id):
            table.add_row(metric.id, Text(f"{problem.where}: {problem.reason}", style="red"),
                          *["-"] * len(PORTABLE_DIALECTS))
            continue
        table.add_row(metric.id, "ok", *(
            "[red]no[/red]" if sql.startswith("ERROR") else "[green]yes[/green]"
            for sql in portability(metric.sql).values()))
    console.print(table)
    console.print("Each ran on an empty events table and " + (
        f"on {sample.num_rows:,} events of the newest {SAMPLE_DAYS} days in {lake.root}"
        if sample is not None else f"on no events: {lake.root} has none"))
    if problems:
        raise SystemExit(1)

