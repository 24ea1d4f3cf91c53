"""Read the catalog folder (catalog as code: ``*.yaml`` files, usually in git) and check
every metric's SQL before any of it runs.

Parsing is the slow part (every node is kept for file:line errors) and every step of a
run asks for the catalog, so the parsed catalog is kept per folder content: a step
reads and hashes the files, and parses them again only when their bytes changed. The
models are frozen, so callers can share one.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from billing.catalog import Catalog, CatalogError, parse_catalog
from pricing_sql.metrics import metric_problems

# (file name, SHA-256 of its bytes) for each file, in name order
Fingerprint = tuple[tuple[str, str], ...]


def load_catalog(folder: str | Path) -> Catalog:
    """The catalog of ``folder``'s ``*.yaml`` files, read in name order."""
    return _parsed(*_read(folder))[0]


def load_checked_catalog(folder: str | Path) -> Catalog:
    """``load_catalog``, then every metric's SQL checked (``pricing_sql/metrics.py``)."""
    catalog, problems = _parsed(*_read(folder))
    if problems:
        raise CatalogError(problems)
    return catalog


def _read(folder: str | Path) -> tuple[Fingerprint, tuple[str, ...]]:
    folder = Path(folder)
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise CatalogError([f"{folder}: no *.yaml catalog files found"])
    contents = [path.read_bytes() for path in files]
    fingerprint = tuple((path.name, hashlib.sha256(data).hexdigest())
                        for path, data in zip(files, contents, strict=True))
    return fingerprint, tuple(data.decode("utf-8") for data in contents)


@lru_cache(maxsize=4)
def _parsed(fingerprint: Fingerprint, texts: tuple[str, ...]) -> tuple[Catalog, tuple[str, ...]]:
    """The catalog and its metric SQL problems; a catalog error is raised, not cached."""
    catalog = parse_catalog((name, text) for (name, _), text in
                            zip(fingerprint, texts, strict=True))
    return catalog, tuple(metric_problems([(m.id, m.sql) for m in catalog.metrics]))
