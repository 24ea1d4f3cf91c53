"""Read the catalog folder (catalog as code: ``*.yaml`` files, usually in git) and check
every metric's SQL before any of it runs."""

from __future__ import annotations

from pathlib import Path

from billing.catalog import Catalog, CatalogError, parse_catalog
from pricing_sql.metrics import metric_problems


def load_catalog(folder: str | Path) -> Catalog:
    """The catalog of ``folder``'s ``*.yaml`` files, read in name order."""
    folder = Path(folder)
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise CatalogError([f"{folder}: no *.yaml catalog files found"])
    return parse_catalog((path.name, path.read_text(encoding="utf-8")) for path in files)


def load_checked_catalog(folder: str | Path) -> Catalog:
    """``load_catalog``, then every metric's SQL checked (``pricing_sql/metrics.py``)."""
    catalog = load_catalog(folder)
    if problems := metric_problems([(m.id, m.sql) for m in catalog.metrics]):
        raise CatalogError(problems)
    return catalog
