"""Parse a catalog's YAML files, with errors that name the file, line and field.

Pure: it takes each file's name and text (``pricing_sql/catalog_files.py`` reads the
folder). Every file may hold any of the top-level lists
``metrics``, ``plans``, ``customers``, ``subscriptions``, ``coupons`` and
``dimensional_price_groups``; the lists are
concatenated, ids must be unique, and every reference must resolve. One file may hold
``seller``, a mapping: who issues the documents; one may hold ``taxes``, a mapping: how
invoices are taxed (``billing/catalog/taxes.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import yaml
from pydantic import TypeAdapter, ValidationError

from billing.catalog.adjustments import ADJUSTMENT_TYPES, Coupon, usage_discount_problems
from billing.catalog.models import (
    MODEL_TYPES,
    Catalog,
    Customer,
    Metric,
    Plan,
    PlanVersion,
    Subscription,
)
from billing.catalog.parties import Seller
from billing.catalog.price_groups import DimensionalPriceGroup
from billing.catalog.prices import Price
from billing.catalog.taxes import TaxTable

# What a catalog's sections list.
Item = Metric | Plan | Customer | Subscription | Coupon | DimensionalPriceGroup

SECTIONS: dict[str, type[Item]] = {
    "metrics": Metric,
    "plans": Plan,
    "customers": Customer,
    "subscriptions": Subscription,
    "coupons": Coupon,
    "dimensional_price_groups": DimensionalPriceGroup,
}
SELLER = "seller"  # the sections that are a mapping, not a list
TAXES = "taxes"
MAPPINGS: dict[str, type[Seller | TaxTable]] = {SELLER: Seller, TAXES: TaxTable}


class CatalogError(ValueError):
    """One or more problems in the catalog; each message names file, line and field."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("invalid catalog:\n  " + "\n  ".join(self.problems))


@dataclass(frozen=True)
class _Item:
    section: str
    index: int
    file: str
    node: yaml.Node
    value: object

    def where(self, *field: str | int) -> str:
        line = _line_of(self.node, field)
        index = "" if self.section in MAPPINGS else f"[{self.index}]"
        path = self.section + index + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in field
        )
        return f"{self.file}:{line}: {path}"


def _line_of(node: yaml.Node, field: Iterable[str | int]) -> int:
    """1-based line of the deepest YAML node on ``field`` that exists."""
    for part in field:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        else:
            child = None
        if child is None:
            break
        node = child
    line: int = node.start_mark.line  # 0-based
    return line + 1


# libyaml's loader where PyYAML was built with it (its wheels are)
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read(name: str, text: str) -> list[_Item]:
    # Parsed once, with libyaml: the nodes give each item's line, the data is built from
    # them (composing and loading again in pure Python took ten times as long)
    loader = LOADER(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        raise CatalogError([f"{name}: not valid YAML: {exc}"]) from exc
    finally:
        loader.dispose()
    if data is None:
        return []
    if not isinstance(data, dict):
        raise CatalogError([f"{name}:1: expected a mapping of sections {sorted(SECTIONS)}"])
    items, problems = [], []
    for key, node in root.value:
        section = key.value
        if section in MAPPINGS:
            items.append(_Item(section, 0, name, node, data[section]))
            continue
        if section not in SECTIONS:
            problems.append(f"{name}:{key.start_mark.line + 1}: unknown section {section!r}")
            continue
        if not isinstance(data[section], list):
            problems.append(f"{name}:{node.start_mark.line + 1}: {section} must be a list")
            continue
        for index, (child, value) in enumerate(zip(node.value, data[section], strict=True)):
            items.append(_Item(section, index, name, child, value))
    if problems:
        raise CatalogError(problems)
    return items


def parse_catalog(files: Iterable[tuple[str, str]], known: Catalog | None = None) -> Catalog:
    """The catalog in ``files``, (file name, YAML text) pairs in the order to read them.

    ``known``: what the files may refer to without defining it (the catalog folder's
    plans and coupons, the state store's customers, for a file of customers and
    subscriptions); it is not part of the result."""
    items = [item for name, text in files for item in _read(name, text)]

    parsed: dict[str, list[Item]] = {section: [] for section in SECTIONS}
    origin: dict[tuple[str, str], _Item] = {}
    problems: list[str] = []
    # Ids of items that failed validation still count as defined, so one bad plan
    # is reported once, not again by every subscription on it.
    invalid: set[tuple[str, str]] = set()
    mappings: dict[str, tuple[Seller | TaxTable, _Item]] = {}
    for item in items:
        if item.section in MAPPINGS:
            if item.section in mappings:
                problems.append(f"{item.where()}: a second {item.section} (the first is at "
                                f"{mappings[item.section][1].where()})")
                continue
            try:
                mappings[item.section] = (MAPPINGS[item.section].model_validate(item.value),
                                          item)
            except ValidationError as exc:
                problems += [f"{item.where(*err['loc'])}: {err['msg']}" for err in exc.errors()]
            continue
        try:
            obj = TypeAdapter(SECTIONS[item.section]).validate_python(item.value)
        except ValidationError as exc:
            if isinstance(item.value, dict) and "id" in item.value:
                invalid.add((item.section, str(item.value["id"])))
            for err in exc.errors():
                field = tuple(p for p in err["loc"] if not _is_union_tag(p))
                problems.append(f"{item.where(*field)}: {err['msg']}")
            continue
        key = (item.section, obj.id)
        if key in origin:
            problems.append(f"{item.where('id')}: duplicate id {obj.id!r} "
                            f"(first defined at {origin[key].where('id')})")
            continue
        origin[key] = item
        parsed[item.section].append(obj)

    catalog = Catalog.model_validate({**parsed, **{
        section: found[0] for section, found in mappings.items()}})
    problems += _reference_problems(catalog, origin, invalid, known or Catalog())
    if problems:
        raise CatalogError(problems)
    return catalog


def _is_union_tag(part: str | int) -> bool:
    # Pydantic puts the discriminator value ('unit', 'minimum') in error locations.
    return part in MODEL_TYPES or part in ADJUSTMENT_TYPES


def _reference_problems(catalog: Catalog, origin: dict[tuple[str, str], _Item],
                        invalid: set[tuple[str, str]], elsewhere: Catalog) -> list[str]:
    def known(section: str, defined: Sequence[Item], outside: Sequence[Item]) -> set[str]:
        return ({x.id for x in defined} | {x.id for x in outside}
                | {key for sec, key in invalid if sec == section})

    metric_ids = known("metrics", catalog.metrics, elsewhere.metrics)
    plan_ids = known("plans", catalog.plans, elsewhere.plans)
    customer_ids = known("customers", catalog.customers, elsewhere.customers)
    problems = _group_problems(catalog, origin, metric_ids)
    groups = {ref: group for group in (*elsewhere.dimensional_price_groups,
                                       *catalog.dimensional_price_groups)
              for ref in (group.id, group.external_dimensional_price_group_id and
                          f"external:{group.external_dimensional_price_group_id}") if ref}
    price_origin: dict[str, str] = {}
    for plan in catalog.plans:
        item = origin[("plans", plan.id)]
        versions: tuple[Plan | PlanVersion, ...] = (plan, *plan.versions)
        for number, version in enumerate(versions, start=1):
            where = () if number == 1 else ("versions", number - 2)
            for index, price in enumerate(version.prices):
                if price.billable_metric_id and price.billable_metric_id not in metric_ids:
                    problems.append(f"{item.where(*where, 'prices', index, 'billable_metric_id')}"
                                    f": unknown metric {price.billable_metric_id!r}")
                problems += [f"{item.where(*where, 'prices', index, *field)}: {problem}"
                             for field, problem in _dimensional_problems(price, groups)]
                if price.id in price_origin:
                    problems.append(f"{item.where(*where, 'prices', index, 'id')}: duplicate "
                                    f"price id {price.id!r} (also in plan "
                                    f"{price_origin[price.id]!r})")
                price_origin[price.id] = plan.id
    external_ids: dict[str, str] = {}
    for customer in catalog.customers:
        ext = customer.external_customer_id
        if ext and ext in external_ids:
            item = origin[("customers", customer.id)]
            problems.append(f"{item.where('external_customer_id')}: external_customer_id {ext!r} "
                            f"is already used by customer {external_ids[ext]!r}")
        elif ext:
            external_ids[ext] = customer.id
    coupon_ids = known("coupons", catalog.coupons, elsewhere.coupons)
    plans = {plan.id: plan for plan in (*elsewhere.plans, *catalog.plans)}
    for sub in catalog.subscriptions:
        problems += _subscription_problems(sub, origin[("subscriptions", sub.id)], plans,
                                           customer_ids, plan_ids, coupon_ids)
    return problems


def _group_problems(catalog: Catalog, origin: dict[tuple[str, str], _Item],
                    metric_ids: set[str]) -> list[str]:
    problems: list[str] = []
    external_ids: dict[str, str] = {}
    for group in catalog.dimensional_price_groups:
        item = origin[("dimensional_price_groups", group.id)]
        if group.billable_metric_id not in metric_ids:
            problems.append(f"{item.where('billable_metric_id')}: unknown metric "
                            f"{group.billable_metric_id!r}")
        external = group.external_dimensional_price_group_id
        if external is not None and external in external_ids:
            problems.append(f"{item.where('external_dimensional_price_group_id')}: "
                            f"{external!r} is already the external id of group "
                            f"{external_ids[external]!r}")
        elif external is not None:
            external_ids[external] = group.id
    return problems


def _dimensional_problems(price: Price, groups: dict[str, DimensionalPriceGroup]
                          ) -> list[tuple[tuple[str, ...], str]]:
    """(field, problem) of a price's dimensional_price_configuration: the group exists,
    is on the price's metric, and has as many dimensions as the price gives values."""
    config = price.dimensional_price_configuration
    if config is None:
        return []
    field = "dimensional_price_configuration"
    group = groups.get(config.group_ref)
    if group is None:
        named = (("dimensional_price_group_id", config.dimensional_price_group_id)
                 if config.dimensional_price_group_id is not None else
                 ("external_dimensional_price_group_id",
                  config.external_dimensional_price_group_id))
        return [((field, named[0]), f"unknown dimensional price group {named[1]!r}")]
    problems: list[tuple[tuple[str, ...], str]] = []
    if group.billable_metric_id != price.billable_metric_id:
        problems.append(((field,), f"group {group.id!r} is on metric "
                         f"{group.billable_metric_id!r}, the price on "
                         f"{price.billable_metric_id!r}"))
    if len(config.dimension_values) != len(group.dimensions):
        problems.append(((field, "dimension_values"),
                         f"{len(config.dimension_values)} value(s) for group {group.id!r}'s "
                         f"{len(group.dimensions)} dimension(s) {group.dimensions}"))
    return problems


def _subscription_problems(sub: Subscription, item: _Item, plans: dict[str, Plan],
                           customer_ids: set[str], plan_ids: set[str],
                           coupon_ids: set[str]) -> list[str]:
    problems = []
    if sub.customer_id not in customer_ids:
        problems.append(f"{item.where('customer_id')}: unknown customer {sub.customer_id!r}")
    plan_prices: list[Price] = []
    for index, phase in enumerate(sub.plan_phases):
        where = ("phases", index) if sub.phases else ()
        if phase.plan_id not in plan_ids:
            problems.append(f"{item.where(*where, 'plan_id')}: unknown plan {phase.plan_id!r}")
            continue
        plan = plans.get(phase.plan_id)
        if plan is None:  # the plan itself was invalid and is reported already
            continue
        if phase.plan_version is not None and phase.plan_version > len(plan.versions) + 1:
            problems.append(f"{item.where(*where, 'plan_version')}: plan {plan.id!r} has no "
                            f"version {phase.plan_version}")
        plan_prices += plan.all_prices()
    for index, redemption in enumerate(sub.coupons):
        if redemption.coupon_id not in coupon_ids:
            problems.append(f"{item.where('coupons', index, 'coupon_id')}: unknown coupon "
                            f"{redemption.coupon_id!r}")
    return problems + adjustment_price_problems(sub, plan_prices, item.where)


def adjustment_price_problems(sub: Subscription, plan_prices: Sequence[Price],
                              where: Callable[..., str]) -> list[str]:
    """The subscription's adjustments that name prices none of its plans has (unchecked
    while no plan is known), and usage discounts on prices they cannot reduce;
    ``where(*field)`` names the place, as in every message."""
    problems = []
    ids = {price.id for price in plan_prices}
    for index, adjustment in enumerate(sub.adjustments):
        unknown = set(adjustment.applies_to_price_ids or ()) - ids
        if unknown and ids:
            problems.append(f"{where('adjustments', index, 'applies_to_price_ids')}: "
                            f"prices {sorted(unknown)} are not on the subscription's plans")
        problems += [f"{where('adjustments', index)}: {problem}"
                     for problem in usage_discount_problems(adjustment, plan_prices)]
    return problems
