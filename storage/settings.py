"""The deployment's settings, read from ``ORB_*`` variables: where the data and the
catalog live and how a run behaves. A plain object, so the CLI, the HTTP server and
re-rating need no Dagster; the Dagster resource (``assets/resources.py``) wraps it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from storage.lake import Lake

DEFAULT_DATA_DIR = "data"
DEFAULT_ISSUER = "Example Cloud, Inc."
DEFAULT_MAX_EVENT_AGE_DAYS = 400
DEFAULT_ENGINE = "duckdb"
DEFAULT_INGEST_IDLE_TIMEOUT = 5
DEFAULT_INGEST_BODY_TIMEOUT = 30
DEFAULT_INGEST_BUFFER_EVENTS = 100_000
DEFAULT_INGEST_FLUSH_SECONDS = 1.0


@dataclass(frozen=True)
class Settings:
    """``catalog_dir`` defaults to ``<data_dir>/catalog``, where the sample generator
    writes; point it at your own catalog-as-code repository in production."""

    data_dir: str = DEFAULT_DATA_DIR
    catalog_dir: str = ""
    issuer: str = DEFAULT_ISSUER
    # Ingestion rejects events older than this (and more than an hour in the future).
    max_event_age_days: int = DEFAULT_MAX_EVENT_AGE_DAYS
    # Where usage and prices are rated: duckdb, or spark beyond one machine (docs/engines.md).
    engine: str = DEFAULT_ENGINE
    # The state store of customers and subscriptions (docs/state.md), a SQLAlchemy URL;
    # empty: the SQLite file ``<data_dir>/state.db``.
    state_url: str = ""
    # ``orb serve``, in seconds: how long a connection may wait without a request
    # under way (before its first, between two, while its headers arrive), and how long
    # a request's body may take to arrive (docs/ingestion.md).
    ingest_idle_timeout: int = DEFAULT_INGEST_IDLE_TIMEOUT
    ingest_body_timeout: int = DEFAULT_INGEST_BODY_TIMEOUT
    # ``orb serve``'s ingest buffer (docs/ingestion.md#http-ingestion): a segment is
    # sealed and landed as one batch at this many events, or this many seconds old.
    ingest_buffer_events: int = DEFAULT_INGEST_BUFFER_EVENTS
    ingest_flush_seconds: float = DEFAULT_INGEST_FLUSH_SECONDS
    # Days after its date a draft invoice is issued by itself (invoicing/auto_issue.py);
    # None: never, drafts wait for ``orb invoices issue``.
    auto_issue_grace_days: int | None = None

    @classmethod
    def from_env(cls, data_dir: str | Path | None = None) -> Settings:
        """Settings from ORB_* variables; ``data_dir`` overrides ORB_DATA_DIR."""
        return cls(
            data_dir=str(data_dir or os.environ.get("ORB_DATA_DIR", DEFAULT_DATA_DIR)),
            catalog_dir=os.environ.get("ORB_CATALOG_DIR", ""),
            issuer=os.environ.get("ORB_ISSUER", DEFAULT_ISSUER),
            max_event_age_days=int(os.environ.get("ORB_MAX_EVENT_AGE_DAYS",
                                                  str(DEFAULT_MAX_EVENT_AGE_DAYS))),
            engine=os.environ.get("ORB_ENGINE", DEFAULT_ENGINE),
            state_url=os.environ.get("ORB_STATE_URL", ""),
            ingest_idle_timeout=_seconds("ORB_INGEST_IDLE_TIMEOUT", DEFAULT_INGEST_IDLE_TIMEOUT),
            ingest_body_timeout=_seconds("ORB_INGEST_BODY_TIMEOUT", DEFAULT_INGEST_BODY_TIMEOUT),
            ingest_buffer_events=_positive("ORB_INGEST_BUFFER_EVENTS",
                                           DEFAULT_INGEST_BUFFER_EVENTS, int),
            ingest_flush_seconds=_positive("ORB_INGEST_FLUSH_SECONDS",
                                           DEFAULT_INGEST_FLUSH_SECONDS, float),
            auto_issue_grace_days=_grace_days(),
        )

    @property
    def lake(self) -> Lake:
        return Lake(self.data_dir)

    @property
    def catalog_path(self) -> Path:
        return Path(self.catalog_dir or Path(self.data_dir) / "catalog")

    @property
    def state_store_url(self) -> str:
        """``state_url``, or the SQLite file ``<data_dir>/state.db``."""
        return self.state_url or f"sqlite:///{Path(self.data_dir) / 'state.db'}"


def _seconds(variable: str, default: int) -> int:
    text = os.environ.get(variable, str(default))
    if not text.strip().isdigit() or int(text) == 0:
        raise ValueError(f"{variable} must be a whole number of seconds, 1 or more, "
                         f"not {text!r}")
    return int(text)


N = TypeVar("N", int, float)


def _positive(variable: str, default: N, kind: type[N]) -> N:
    text = os.environ.get(variable, "").strip()
    try:
        value = kind(text) if text else default
    except ValueError:
        value = kind(0)
    if not value > 0:
        raise ValueError(f"{variable} must be a {kind.__name__} above 0, not {text!r}")
    return value


def _grace_days() -> int | None:
    text = os.environ.get("ORB_AUTO_ISSUE_GRACE_DAYS", "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"ORB_AUTO_ISSUE_GRACE_DAYS must be a whole number of days, 0 or "
                         f"more, or unset (off), not {text!r}")
    return int(text)


class Deployment(Protocol):
    """Where a command reads and writes: ``Settings``, or the Dagster resource that wraps
    them (``assets/resources.py``), so the same function serves the CLI and an asset."""

    @property
    def lake(self) -> Lake: ...

    @property
    def catalog_path(self) -> Path: ...

    @property
    def issuer(self) -> str: ...

    @property
    def state_store_url(self) -> str: ...
