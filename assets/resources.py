"""The assets' resources: the deployment's settings (``storage/settings.py``) and the
payment processor (``payments/config.py``) as Dagster config, so the UI's launchpad can
point a run at another lake, catalog or processor. ``pipelines/definitions.py`` makes them."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.partitions import billing_month, billing_run_id
from billing.catalog import Catalog
from ingestion.batches import Window
from payments.config import DEFAULT_KEY_PREFIX, DEFAULT_PROCESSOR, PaymentSettings
from payments.processor import PaymentProcessor
from pricing_sql.run_catalog import billing_catalog, current_catalog
from storage.lake import Lake
from storage.settings import (
    DEFAULT_DATA_DIR,
    DEFAULT_ENGINE,
    DEFAULT_ISSUER,
    DEFAULT_MAX_EVENT_AGE_DAYS,
    Settings,
)


class OrbStore(dg.ConfigurableResource):
    """The data directory (lake, landing folder, reports) and the catalog folder: the
    fields of ``Settings``, declared again because Dagster reads a resource's config from
    its own (pydantic) fields."""

    data_dir: str = DEFAULT_DATA_DIR
    catalog_dir: str = ""
    issuer: str = DEFAULT_ISSUER
    max_event_age_days: int = DEFAULT_MAX_EVENT_AGE_DAYS
    engine: str = DEFAULT_ENGINE
    state_url: str = ""

    @classmethod
    def from_env(cls, data_dir: str | Path | None = None) -> OrbStore:
        """Settings from ORB_* variables; ``data_dir`` overrides ORB_DATA_DIR."""
        return cls.of(Settings.from_env(data_dir))

    @classmethod
    def of(cls, settings: Settings) -> OrbStore:
        return cls(data_dir=settings.data_dir, catalog_dir=settings.catalog_dir,
                   issuer=settings.issuer, max_event_age_days=settings.max_event_age_days,
                   engine=settings.engine, state_url=settings.state_url)

    @property
    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir, catalog_dir=self.catalog_dir,
                        issuer=self.issuer, max_event_age_days=self.max_event_age_days,
                        engine=self.engine, state_url=self.state_url)

    @property
    def lake(self) -> Lake:
        return self.settings.lake

    @property
    def catalog_path(self) -> Path:
        return self.settings.catalog_path

    @property
    def state_store_url(self) -> str:
        return self.settings.state_store_url

    @property
    def window(self) -> Window:
        """The timestamps ingestion accepts."""
        return Window.of(self.settings)

    def billing_catalog(self, context: dg.AssetExecutionContext
                        | dg.AssetCheckExecutionContext) -> Catalog:
        """The catalog of the partition's month: the catalog folder (metric SQL checked)
        with the customers and subscriptions of this run's state snapshot, else of the
        month's newest (``pricing_sql/run_catalog.py``)."""
        return billing_catalog(self, billing_month(context), billing_run_id(context))

    def current_catalog(self) -> Catalog:
        """The catalog with the state store's customers and subscriptions as they are
        now, for work that is not a month's billing (ingestion, payments)."""
        return current_catalog(self)


class PaymentsConfig(dg.ConfigurableResource):
    """Which payment processor collects issued invoices: ``PaymentSettings``' fields
    (``payments/config.py``)."""

    processor: str = DEFAULT_PROCESSOR
    payments_file: str = ""
    key_prefix: str = DEFAULT_KEY_PREFIX

    @classmethod
    def from_env(cls) -> PaymentsConfig:
        """ORB_PAYMENT_PROCESSOR, ORB_PAYMENTS_FILE, ORB_PAYMENT_KEY_PREFIX."""
        settings = PaymentSettings.from_env()
        return cls(processor=settings.processor, payments_file=settings.payments_file,
                   key_prefix=settings.key_prefix)

    def build(self, store: OrbStore) -> PaymentProcessor:
        return PaymentSettings(processor=self.processor, payments_file=self.payments_file,
                               key_prefix=self.key_prefix).build(store.data_dir)
