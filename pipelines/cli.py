"""The ``orb`` command line."""

from __future__ import annotations

import shutil
import time
from datetime import date
from pathlib import Path

import click
from rich.console import Console

from billing import periods
from pipelines import runner
from pipelines.definitions import build_definitions
from pipelines.resources import OrbStore
from pipelines.summary import print_summary, summarize
from sample_data.generate import generate

console = Console()
GENERATED = ("catalog", "landing", "lake", "reports", "orb.duckdb")


def _month(_ctx, _param, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(f"{value}-01")
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM, got {value!r}") from exc


@click.group()
def main() -> None:
    """Orb: usage-based billing on DuckDB, Parquet and Dagster."""


@main.command()
@click.option("--data-dir", default="data", show_default=True, type=click.Path(path_type=Path))
@click.option("--customers", default=100, show_default=True)
@click.option("--events", default=1_000_000, show_default=True)
@click.option("--months", default=3, show_default=True)
@click.option("--seed", default=42, show_default=True)
def demo(data_dir: Path, customers: int, events: int, months: int, seed: int) -> None:
    """Generate a sample catalog and events, then bill the last complete months."""
    started = time.perf_counter()
    last = runner.last_complete_month(date.today())
    billed = [periods.add_months(last, -i) for i in reversed(range(months))]
    for name in GENERATED:  # the demo owns these; a re-run starts from scratch
        path = data_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    raw = generate(data_dir, customers, events, billed[0], months, seed)
    console.print(f"Generated {customers} customers and {raw:,} raw events "
                  f"({billed[0]:%Y-%m} to {billed[-1]:%Y-%m}) in {data_dir}/landing "
                  f"[{time.perf_counter() - started:.1f}s]")
    _bill(data_dir, billed, started)


@main.command()
@click.option("--month", required=True, callback=_month, help="Billing month, YYYY-MM.")
@click.option("--data-dir", default="data", show_default=True, type=click.Path(path_type=Path))
def bill(month: date, data_dir: Path) -> None:
    """Land events and bill one month from the landing folder and catalog in DATA_DIR."""
    _bill(data_dir, [month], time.perf_counter())


def _bill(data_dir: Path, months: list[date], started: float) -> None:
    defs = build_definitions(OrbStore(data_dir=str(data_dir)))
    with console.status("Running the billing pipeline through Dagster..."):
        runner.bill_months(defs, months, runner.instance())
    print_summary(summarize(OrbStore(data_dir=str(data_dir)).lake, months), console)
    console.print(f"Done in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
