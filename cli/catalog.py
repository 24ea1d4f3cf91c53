"""``orb catalog import --from orb-json DIR --to CATALOG_DIR``: plans and prices exported
from Orb's API as this project's catalog YAML (docs/pricing.md#importing-an-orb-catalog)."""

from __future__ import annotations

import json
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path

import click
import yaml

from billing.catalog import CatalogError
from billing.catalog.orb_import import Conversion, Finding, convert
from pricing_sql.catalog_files import load_checked_catalog


@click.group("catalog")
def catalog() -> None:
    """The catalog of plans, prices and metrics."""


@catalog.command("import")
@click.option("--from", "source", type=click.Choice(["orb-json"]), required=True,
              help="orb-json: Orb API responses (plans.list / prices.list pages, or one "
                   "plan or price per file).")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--to", "catalog_dir", required=True, type=click.Path(path_type=Path),
              help="The catalog folder to create (it must hold no *.yaml yet).")
def import_catalog(source: str, folder: Path, catalog_dir: Path) -> None:
    """Convert every FOLDER/*.json to CATALOG_DIR/plans.yaml and metrics.yaml, check them
    with the catalog loader, and list every field not imported. Nothing is written if
    any field is refused or the result does not load."""
    files = sorted(folder.glob("*.json"))
    if not files:
        raise click.ClickException(f"{folder}: no *.json files found")
    if catalog_dir.is_dir() and any(catalog_dir.glob("*.yaml")):
        raise click.ClickException(f"{catalog_dir} already holds *.yaml files: import into a "
                                   "new folder, then merge by hand")
    documents, unreadable = _read(files)
    conversion = convert(documents)
    conversion.findings[:0] = unreadable
    _show(conversion.findings)
    if conversion.refused:
        raise click.ClickException(f"{len(conversion.refused)} field(s) refused: nothing "
                                   "written")
    with tempfile.TemporaryDirectory() as staging:
        _write(Path(staging), conversion)
        try:
            loaded = load_checked_catalog(staging)
        except CatalogError as exc:
            raise click.ClickException(f"the converted catalog does not load, nothing "
                                       f"written:\n{exc}") from exc
        catalog_dir.mkdir(parents=True, exist_ok=True)
        for name in ("metrics.yaml", "plans.yaml"):
            shutil.copyfile(Path(staging, name), catalog_dir / name)
    prices = sum(len(plan.all_prices()) for plan in loaded.plans)
    click.echo(f"wrote {len(loaded.plans)} plan(s) with {prices} price(s) to "
                  f"{catalog_dir / 'plans.yaml'}")
    if conversion.metrics:
        click.echo(f"{catalog_dir / 'metrics.yaml'} holds {len(conversion.metrics)} "
                      "PLACEHOLDER metric(s) that count nothing: Orb's plans do not carry "
                      "metric definitions, so write each one's SQL before billing: "
                      + ", ".join(m["id"] for m in conversion.metrics))


def _read(files: list[Path]) -> tuple[list[tuple[str, object]], list[Finding]]:
    documents: list[tuple[str, object]] = []
    unreadable = []
    for path in files:
        try:
            documents.append((path.name, json.loads(path.read_text("utf-8"),
                                                    parse_float=Decimal)))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "$"
            unreadable.append(Finding(path.name, where, f"not JSON: {exc}", True))
    return documents, unreadable


def _write(folder: Path, conversion: Conversion) -> None:
    header = "# Imported from Orb by `orb catalog import`.\n"
    (folder / "plans.yaml").write_text(
        header + yaml.safe_dump({"plans": conversion.plans}, sort_keys=False), "utf-8")
    (folder / "metrics.yaml").write_text(
        header + "# PLACEHOLDERS: Orb's plans name their metrics but not their definitions; "
        "write each metric's SQL (docs/pricing.md#billable-metrics).\n"
        + yaml.safe_dump({"metrics": conversion.metrics}, sort_keys=False), "utf-8")


def _show(findings: list[Finding]) -> None:
    """One line per field not imported: ``file: path: refused|dropped: reason``."""
    for finding in findings:
        click.echo(str(finding))
