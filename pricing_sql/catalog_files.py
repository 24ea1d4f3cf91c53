"""Read the catalog folder (catalog as code: ``*.yaml`` files, usually in git) and check
every metric, and each usage a price adds to its metric's (a filter, a cap per event:
``price_usage.py``), before any of it runs: its SQL (``metrics.py``), then one run on an
empty events table (``metric_trial.py``). A problem names the metric or price, its file
and line.

Parsing is the slow part (every node is kept for file:line errors) and every step of a
run asks for the catalog, so the parsed catalog is kept per folder content: a step
reads and hashes the files, and parses them again only when their bytes changed. The
models are frozen, so callers can share one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import yaml

from billing.catalog import Catalog, CatalogError, parse_catalog
from pricing_sql.metric_trial import trial_problems
from pricing_sql.metrics import MetricSQLError, metric_problems
from pricing_sql.price_usage import price_dimensions, price_usages

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
    """``load_catalog``, then every metric, and every usage a price adds to its metric's
    (a filter's, a cap per event's), checked and run on an empty events table."""
    catalog, problems, price_problems = _parsed(*_read(folder))
    if problems or price_problems:
        raise CatalogError([str(problem) for problem in problems] + list(price_problems))
    return catalog


def check_metrics(folder: str | Path, sample: pa.Table | None = None
                  ) -> tuple[Catalog, dict[str, MetricProblem]]:
    """The catalog and each failing metric's problem, by metric id: the checks of every
    load, then a run on ``sample`` (``metric_trial.lake_sample``) if given."""
    fingerprint, texts = _read(folder)
    catalog, problems, price_problems = _parsed(fingerprint, texts)
    if price_problems:
        raise CatalogError(list(price_problems))
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
            ) -> tuple[Catalog, tuple[MetricProblem, ...], tuple[str, ...]]:
    """The catalog, its metrics' problems and its prices' own usages' (each a message with
    its place); a catalog error is raised, not cached."""
    catalog = parse_catalog((name, text) for (name, _), text in
                            zip(fingerprint, texts, strict=True))
    metrics = [(m.id, m.sql) for m in catalog.metrics]
    problems = metric_problems(metrics)
    problems |= trial_problems([m for m in metrics if m[0] not in problems])
    return (catalog, tuple(_located(catalog, problems, fingerprint, texts).values()),
            _price_usage_problems(catalog, set(problems), fingerprint, texts))


def _price_usage_problems(catalog: Catalog, failing_metrics: set[str],
                          fingerprint: Fingerprint, texts: tuple[str, ...]) -> tuple[str, ...]:
    """Each price whose own usages (``price_usage.py``: its filter's, the events over a cap
    per event) fail the metric checks or do not run, at its ``filter`` if it has one, else
    at its model's config; a failing metric's prices are not tried."""
    priced = [price for plan in catalog.plans for price in plan.all_prices()
              if price.billable_metric_id is not None
              and price.billable_metric_id not in failing_metrics]
    reasons: dict[str, str] = {}
    usages: dict[str, dict[str, str]] = {}
    for price in priced:
        try:
            usages[price.id] = price_usages(price, catalog.metric(
                str(price.billable_metric_id)).sql, price_dimensions(catalog, price))
        except MetricSQLError as exc:
            reasons[price.id] = str(exc)
    runs = sorted({item for own in usages.values() for item in own.items()})
    failures = trial_problems(runs) if runs else {}
    for price_id, own in usages.items():
        failed = [failures[key] for key in own if key in failures]
        if failed:
            reasons[price_id] = failed[0]
    if not reasons:
        return ()
    origins = _price_origins(fingerprint, texts)
    files = ", ".join(name for name, _ in fingerprint)
    problems = []
    for price in priced:
        if price.id in reasons:
            field = "filter" if price.filter is not None else f"{price.model_type}_config"
            file, line, path = origins.get((price.id, field), (files, 0, ""))
            where = f"{file}:{line}: {path}.{field}" if path else file
            problems.append(f"{where}: price {price.id!r}: {reasons[price.id]}")
    return tuple(problems)


def _located(catalog: Catalog, reasons: dict[str, str], fingerprint: Fingerprint,
             texts: tuple[str, ...]) -> dict[str, MetricProblem]:
    """``reasons`` (metric id -> reason) with each metric's place, in catalog order."""
    if not reasons:
        return {}
    origins = _metric_origins(fingerprint, texts)
    files = ", ".join(name for name, _ in fingerprint)
    return {m.id: MetricProblem(m.id, origins.get(m.id, files), reasons[m.id])
            for m in catalog.metrics if m.id in reasons}


def _price_origins(fingerprint: Fingerprint, texts: tuple[str, ...]
                   ) -> dict[tuple[str, str], tuple[str, int, str]]:
    """(price id, field) -> (file, line of the field, ``plans[i].prices[j]`` or
    ``plans[i].versions[k].prices[j]``) for every field of every price."""
    origins = {}
    for name, section in _sections(fingerprint, texts, "plans"):
        for index, plan in enumerate(_items(section)):
            plan_fields = _fields(plan)
            lists = [(f"plans[{index}]", plan_fields.get("prices"))] + [
                (f"plans[{index}].versions[{v}]", _fields(version).get("prices"))
                for v, version in enumerate(_items(plan_fields.get("versions")))]
            for where, prices in lists:
                for p, price in enumerate(_items(prices)):
                    price_id = _fields(price).get("id")
                    if price_id is None:
                        continue
                    for key_node, _ in price.value:  # the line of the field's name
                        origins[(price_id.value, key_node.value)] = (
                            name, key_node.start_mark.line + 1, f"{where}.prices[{p}]")
    return origins


def _sections(fingerprint: Fingerprint, texts: tuple[str, ...], wanted: str
              ) -> Iterator[tuple[str, yaml.Node]]:
    """(file name, node) of every top-level ``wanted`` section of the catalog's files,
    composed as nodes, which keep their lines."""
    for (name, _), text in zip(fingerprint, texts, strict=True):
        root = yaml.compose(text)
        for key, section in root.value if isinstance(root, yaml.MappingNode) else []:
            if key.value == wanted:
                yield name, section


def _fields(node: yaml.Node | None) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: value for key, value in node.value}


def _items(node: yaml.Node | None) -> list[yaml.Node]:
    return node.value if isinstance(node, yaml.SequenceNode) else []


def _metric_origins(fingerprint: Fingerprint, texts: tuple[str, ...]) -> dict[str, str]:
    """Metric id -> ``file:line: metrics[i].sql`` of its SQL (the files parsed already)."""
    origins = {}
    for name, section in _sections(fingerprint, texts, "metrics"):
        for index, item in enumerate(section.value):
            fields = {field.value: value for field, value in item.value}
            if "id" in fields:  # not when merged in with `<<:`: then the files are named
                line = fields.get("sql", item).start_mark.line + 1
                origins[fields["id"].value] = f"{name}:{line}: metrics[{index}].sql"
    return origins
