"""Bulk import of customers and subscriptions: catalog YAML (its ``customers`` and
``subscriptions`` sections, parsed by ``billing.catalog.parse_catalog``), CSV or Parquet
(columns in docs/state.md#import). Every problem names its place: ``file:line`` for
YAML, ``file:row N: field`` for CSV and Parquet (N counts data rows from 1).

A customer already in the store gets a new version with the fields that differ (or
nothing); a subscription already in the store must have the same terms. The rows are
written by ``StateStore.apply`` as one transaction: nothing when any is bad.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import yaml
from pydantic import ValidationError

from billing.catalog.adjustments import ADJUSTMENT_TYPES
from billing.catalog.loader import CatalogError, parse_catalog
from billing.catalog.models import Catalog, Customer, Subscription
from state.errors import StateError
from state.operations import (
    AddCustomer,
    CreateSubscription,
    Effective,
    Operation,
    Where,
    parse_effective,
)

YAML_SECTIONS = ("customers", "subscriptions")
CUSTOMER_COLUMNS = ("id", "name", "external_customer_id", "email", "timezone", "net_terms",
                    "billing_address", "shipping_address", "tax_id", "effective_at")
SUBSCRIPTION_COLUMNS = ("id", "customer_id", "plan_id", "plan_version", "start_date",
                        "phases", "end_date", "trial_end_date", "billing_cycle_day",
                        "align_billing_with_subscription_start_date", "coupons",
                        "adjustments")
JSON_COLUMNS = ("phases", "coupons", "adjustments")
CUSTOMER_JSON_COLUMNS = ("billing_address", "shipping_address", "tax_id")
Model = TypeVar("Model", Customer, Subscription)
# libyaml's composer when PyYAML has it (five times faster); lines are the same
COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_files(paths: Sequence[Path], references: Catalog,
               store_customers: Collection[str]) -> list[Operation]:
    """The operations that import ``paths``, in order; raises ``StateError`` with every
    problem the files themselves show (references to the store are checked when the
    operations are applied). ``references``: the catalog's plans and coupons."""
    problems: list[str] = []
    operations: list[Operation] = []
    yaml_files = [p for p in paths if p.suffix.lower() in (".yaml", ".yml")]
    if yaml_files:
        try:
            operations += _yaml_operations(yaml_files, references, store_customers)
        except StateError as exc:
            problems += exc.problems
    for path in paths:
        if path in yaml_files:
            continue
        try:
            operations += _table_operations(path, _read_table(path))
        except StateError as exc:
            problems += exc.problems
    if problems:
        raise StateError(problems)
    return operations


def actor_of(path: Path) -> str:
    return f"import:{path}"


# -- YAML ------------------------------------------------------------------------------


def _yaml_operations(paths: list[Path], references: Catalog,
                     store_customers: Collection[str]) -> list[Operation]:
    texts = []
    places: dict[str, list[tuple[Path, Where]]] = {section: [] for section in YAML_SECTIONS}
    problems = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
            root = yaml.compose(text, Loader=COMPOSER)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problems.append(f"{path}: cannot read: {exc}")
            continue
        texts.append((str(path), text))
        if not isinstance(root, yaml.MappingNode):
            continue  # parse_catalog says what is wrong with it
        for key, node in root.value:
            if key.value not in YAML_SECTIONS:
                problems.append(f"{path}:{key.start_mark.line + 1}: {key.value} are catalog as "
                                "code and stay in the catalog folder; an import takes "
                                "customers and subscriptions")
            elif isinstance(node, yaml.SequenceNode):
                places[key.value] += [(path, _yaml_where(path, key.value, index, item))
                                      for index, item in enumerate(node.value)]
    if problems:
        raise StateError(problems)
    known = Catalog.model_construct(
        metrics=references.metrics, plans=references.plans, coupons=references.coupons,
        customers=[Customer.model_construct(id=c, name=c) for c in store_customers],
        subscriptions=[])
    try:
        catalog = parse_catalog(texts, known=known)
    except CatalogError as exc:
        raise StateError(exc.problems) from exc
    operations: list[Operation] = [
        AddCustomer(customer, actor_of(path), where=where, existing_ok=True)
        for customer, (path, where) in zip(catalog.customers, places["customers"],
                                           strict=True)]
    operations += [
        CreateSubscription(sub, actor_of(path), where=where, existing_ok=True)
        for sub, (path, where) in zip(catalog.subscriptions, places["subscriptions"],
                                      strict=True)]
    return operations


def _yaml_where(path: Path, section: str, index: int, node: yaml.Node) -> Where:
    """The place of a field of a section's item, as the catalog loader names it."""

    def where(*field: str | int) -> str:
        found = node
        for part in field:
            child = None
            if isinstance(found, yaml.MappingNode):
                child = next((v for k, v in found.value if k.value == part), None)
            elif isinstance(found, yaml.SequenceNode) and isinstance(part, int):
                child = found.value[part] if part < len(found.value) else None
            if child is None:
                break
            found = child
        return f"{path}:{found.start_mark.line + 1}: {section}[{index}]{_path(field)}"

    return where


def _path(field: Sequence[str | int]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in field)


# -- CSV and Parquet -------------------------------------------------------------------


def _read_table(path: Path) -> pa.Table:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            names = pcsv.read_csv(path).column_names
            return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True))
        if suffix == ".parquet":
            return pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise StateError([f"{path}: cannot read: {exc}"]) from exc
    raise StateError([f"{path}: unsupported file type (expected .yaml, .yml, .csv or "
                      ".parquet)"])


def _table_operations(path: Path, table: pa.Table) -> list[Operation]:
    columns = set(table.column_names)
    kind, allowed = (("subscriptions", SUBSCRIPTION_COLUMNS) if "customer_id" in columns
                     else ("customers", CUSTOMER_COLUMNS))
    if unknown := sorted(columns - set(allowed)):
        raise StateError([f"{path}: unknown columns {unknown} for {kind} (expected some of "
                          f"{list(allowed)})"])
    if "id" not in columns:
        raise StateError([f"{path}: no id column"])
    problems: list[str] = []
    operations: list[Operation] = []
    make = _subscription_operation if kind == "subscriptions" else _customer_operation
    for number, row in enumerate(table.to_pylist(), start=1):
        where = _row_where(path, number)
        values = {k: v for k, v in row.items() if v is not None and v != ""}
        try:
            operations.append(make(path, values, where))
        except StateError as exc:
            problems += exc.problems
    if problems:
        raise StateError(problems)
    return operations


def _row_where(path: Path, number: int) -> Where:
    def where(*field: str | int) -> str:
        if not field:
            return f"{path}:row {number}"
        head, *rest = field
        return f"{path}:row {number}: {head}{_path(rest)}"

    return where


def _customer_operation(path: Path, values: dict[str, Any], where: Where) -> Operation:
    effective = _effective(values.pop("effective_at", None), where)
    for name in CUSTOMER_JSON_COLUMNS:
        if isinstance(value := values.get(name), str):
            values[name] = _json(name, value, where)
    customer = _validated(Customer, values, where)
    return AddCustomer(customer, actor_of(path), effective, where, existing_ok=True)


def _subscription_operation(path: Path, values: dict[str, Any], where: Where) -> Operation:
    for name in JSON_COLUMNS:
        if isinstance(value := values.get(name), str):
            values[name] = _json(name, value, where)
    subscription = _validated(Subscription, values, where)
    return CreateSubscription(subscription, actor_of(path), where, existing_ok=True)


def _json(name: str, text: str, where: Where) -> Any:
    if name == "coupons" and not text.lstrip().startswith("["):
        # a list of coupon ids, the easy way to write it in a spreadsheet
        return [{"coupon_id": c.strip()} for c in text.replace(";", ",").split(",")
                if c.strip()]
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError([f"{where(name)}: not valid JSON: {exc}"]) from exc


def _validated(model: type[Model], values: dict[str, Any], where: Where) -> Model:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise StateError([f"{where(*(p for p in err['loc'] if p not in ADJUSTMENT_TYPES))}: "
                          f"{err['msg']}" for err in exc.errors()]) from exc


def _effective(value: Any, where: Where) -> Effective:
    if value is None or isinstance(value, date | datetime):
        if isinstance(value, datetime) and value.tzinfo is None:
            raise StateError([f"{where('effective_at')}: needs a UTC offset"])
        return value
    try:
        return parse_effective(str(value))
    except ValueError as exc:
        raise StateError([f"{where('effective_at')}: {exc}"]) from exc
