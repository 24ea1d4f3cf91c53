"""Read the catalog folder (catalog as code: ``*.yaml`` files, usually in git) and check
every metric before any of it runs: its SQL (``metrics.py``), then one run on an empty
events table (``metric_trial.py``). A problem names the metric, its file and line.

Parsing is the slow part (every node is kept for file:line errors) and every step of a
run asks for the catalog, so the parsed catalog is kept per folder content: a step
reads and hashes the files, and parses them again only when their bytes changed. The
models are frozen, so callers can share one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import yaml

from billing.catalog import Catalog, CatalogError, parse_catalog
from pricing_sql.metric_trial import trial_problems
from pricing_sql.metrics import metric_problems

# (file name, SHA-256 of its bytes) for each file, in name order
Fingerprint = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class MetricProblem:
    """Why a metric would fail a run, and where it is (``metrics.yaml:4: metrics[1].sql``,
    as every catalog error names its place)."""

    metric_id: str
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: metric {self.metric_id!r}: {self.reason}"


def load_catalog(folder: str | Path) -> Catalog:
    """The catalog of ``folder``'s ``*.yaml`` files, read in name order."""
    return _parsed(*_read(folder))[0]


def load_checked_catalog(folder: str | Path) -> Catalog:
    """``load_catalog``, then every metric checked and run on an empty events table."""
    catalog, problems = _parsed(*_read(folder))
    if problems:
        raise CatalogError([str(problem) for problem in problems])
    return catalog


def check_metrics(folder: str | Path, sample: pa.Table | None = None
                  ) -> tuple[Catalog, dict[str, MetricProblem]]:
    """The catalog and each failing metric's problem, by metric id: the checks of every
    load, then a run on ``sample`` (``metric_trial.lake_sample``) if given."""
    fingerprint, texts = _read(folder)
    catalog, problems = _parsed(fingerprint, texts)
    found = {problem.metric_id: problem for problem in problems}
    if sample is not None:
        passing = [(m.id, m.sql) for m in catalog.metrics if m.id not in found]
        found |= _located(catalog, trial_problems(passing, sample), fingerprint, texts)
    return catalog, found


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
def _parsed(fingerprint: Fingerprint, texts: tuple[str, ...]
            ) -> tuple[Catalog, tuple[MetricProblem, ...]]:
    """The catalog and its metrics' problems; a catalog error is raised, not cached."""
    catalog = parse_catalog((name, text) for (name, _), text in
                            zip(fingerprint, texts, strict=True))
    metrics = [(m.id, m.sql) for m in catalog.metrics]
    problems = metric_problems(metrics)
    problems |= trial_problems([m for m in metrics if m[0] not in problems])
    return catalog, tuple(_located(catalog, problems, fingerprint, texts).values())


def _located(catalog: Catalog, reasons: dict[str, str], fingerprint: Fingerprint,
             texts: tuple[str, ...]) -> dict[str, MetricProblem]:
    """``reasons`` (metric id -> reason) with each metric's place, in catalog order."""
    if not reasons:
        return {}
    origins = _metric_origins(fingerprint, texts)
    files = ", ".join(name for name, _ in fingerprint)
    return {m.id: MetricProblem(m.id, origins.get(m.id, files), reasons[m.id])
            for m in catalog.metrics if m.id in reasons}


def _metric_origins(fingerprint: Fingerprint, texts: tuple[str, ...]) -> dict[str, str]:
    """Metric id -> ``file:line: metrics[i].sql`` of its SQL (the files parsed already)."""
    origins = {}
    for (name, _), text in zip(fingerprint, texts, strict=True):
        root = yaml.compose(text)
        sections = root.value if isinstance(root, yaml.MappingNode) else []
        for key, section in sections:
            if key.value != "metrics":
                continue
            for index, item in enumerate(section.value):
                fields = {field.value: value for field, value in item.value}
                if "id" in fields:  # not when merged in with `<<:`: then the files are named
                    line = fields.get("sql", item).start_mark.line + 1
                    origins[fields["id"].value] = f"{name}:{line}: metrics[{index}].sql"
    return origins
