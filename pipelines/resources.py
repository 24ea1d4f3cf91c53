"""The one resource every asset uses: where the data lives and which catalog to bill from."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dagster as dg

from billing.catalog import Catalog, CatalogError, load_catalog
from pricing_sql.metrics import metric_problems
from storage.ingest import Window
from storage.lake import Lake

DEFAULT_DATA_DIR = "data"
DEFAULT_ISSUER = "Example Cloud, Inc."


class OrbStore(dg.ConfigurableResource):
    """The data directory (lake, landing folder, reports) and the catalog folder.

    ``catalog_dir`` defaults to ``<data_dir>/catalog``, where the sample generator
    writes; point it at your own catalog-as-code repository in production."""

    data_dir: str = DEFAULT_DATA_DIR
    catalog_dir: str = ""
    issuer: str = DEFAULT_ISSUER
    # Ingestion rejects events older than this (and more than an hour in the future).
    max_event_age_days: int = 400
    # Where usage and prices are rated: duckdb, or spark beyond one machine (docs/engines.md).
    engine: str = "duckdb"

    @classmethod
    def from_env(cls, data_dir: str | Path | None = None) -> OrbStore:
        """Settings from ORB_* variables; ``data_dir`` overrides ORB_DATA_DIR."""
        return cls(
            data_dir=str(data_dir or os.environ.get("ORB_DATA_DIR", DEFAULT_DATA_DIR)),
            catalog_dir=os.environ.get("ORB_CATALOG_DIR", ""),
            issuer=os.environ.get("ORB_ISSUER", DEFAULT_ISSUER),
            max_event_age_days=int(os.environ.get("ORB_MAX_EVENT_AGE_DAYS", "400")),
            engine=os.environ.get("ORB_ENGINE", "duckdb"),
        )

    @property
    def lake(self) -> Lake:
        return Lake(self.data_dir)

    @property
    def window(self) -> Window:
        """The timestamps ingestion accepts."""
        return Window(max_age=timedelta(days=self.max_event_age_days))

    def catalog(self) -> Catalog:
        """The catalog, with every metric's SQL checked before any of it runs."""
        catalog = load_catalog(Path(self.catalog_dir or Path(self.data_dir) / "catalog"))
        if problems := metric_problems([(m.id, m.sql) for m in catalog.metrics]):
            raise CatalogError(problems)
        return catalog
