"""Orb's plans and prices, as its API returns them (``plans.list``, ``prices.list``, one
plan or price), converted to this project's catalog YAML.

Every field is kept, dropped with a reason (it carries no billing term the catalog
models: an item, metadata, a description) or refused with a reason (it changes what is
billed and the catalog cannot say it: a plan phase, a custom cycle). A plan with any
refusal is not imported. Pure: parsed JSON in, YAML-ready dicts
and findings out; ``cli/catalog.py`` reads the files and writes the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, get_args

from pydantic import TypeAdapter, ValidationError

from billing.catalog.adjustments import ADJUSTMENT_TYPES
from billing.catalog.models import MODEL_TYPES, Plan
from billing.catalog.prices import CADENCE_MONTHS, PRICE_MODELS

JSON = Any  # a parsed JSON value; its shape is what this module checks

# Fields Orb generates for its own bookkeeping: no billing term is lost without them.
_PLAN_BOOKKEEPING = {"created_at", "product", "version", "status", "invoicing_currency"}
_PRICE_BOOKKEEPING = {"created_at", "price_type", "currency"}
_ADJUSTMENT_BOOKKEEPING = {"is_invoice_level"}

# Set (not null or empty), these are dropped: the catalog has nowhere to keep them.
_PLAN_DROPPED = {
    "description": "plan descriptions are not kept in the catalog",
    "default_invoice_memo": "invoice memos are not modelled",
    "external_plan_id": "the plan keeps Orb's id; subscriptions name it",
    "metadata": "the catalog keeps no metadata",
    "net_terms": "net terms are set per customer here (customers[].net_terms)",
    "base_plan": "plans are imported as they are, not as overrides of a base plan",
    "base_plan_id": "plans are imported as they are, not as overrides of a base plan",
}
_PRICE_DROPPED = {
    "item": "items are not modelled; the invoice line shows the price's name",
    "metadata": "the catalog keeps no metadata",
    "external_price_id": "the price keeps Orb's id; adjustments name it",
    "replaces_price_id": "price history is not imported; only the price as it is now",
}
_ADJUSTMENT_DROPPED = {
    "item_id": "items are not modelled",
    "reason": "adjustment reasons are not kept",
    "replaces_adjustment_id": "adjustment history is not imported",
}

# Set, these are refused: they change what is billed and the catalog cannot say it.
_PLAN_REFUSED = {
    "plan_phases": "plan phases are not supported; give each phase as its own plan and "
                   "the subscription phases (subscriptions[].phases)",
}
_PRICE_REFUSED = {
    "credit_allocation": "credit allocations on a price are not supported; grant credits "
                         "with `orb credits grant`",
    "dimensional_price_configuration": "dimensional price groups are not imported (a plan "
                                       "does not carry its groups): add the group to the "
                                       "catalog's dimensional_price_groups by hand",
    "license_type": "license types are not supported",
    "plan_phase_order": "plan phases are not supported",
    "composite_price_filters": "composite price filters apply only to composite prices",
}
_ADJUSTMENT_REFUSED = {
    "filters": "adjustment filters are not supported; list the prices in "
               "applies_to_price_ids",
    "plan_phase_order": "plan phases are not supported",
}
# Orb's legacy discount, minimum and maximum fields: dropped where they repeat one of the
# plan's adjustments (which is imported), refused where they say something of their own.
_LEGACY = ("discount", "minimum", "maximum", "minimum_amount", "maximum_amount")
_DISCOUNT_TYPES = {"percentage": "percentage_discount", "amount": "amount_discount"}
Term = tuple[str, Decimal]  # an adjustment's type and amount

_ADJUSTMENT_AMOUNTS = {"usage_discount": "usage_discount", "amount_discount": "amount_discount",
                       "percentage_discount": "percentage_discount",
                       "minimum": "minimum_amount", "maximum": "maximum_amount"}


@dataclass(frozen=True)
class Finding:
    """A field of the Orb JSON that is not imported: ``file``, its JSON path
    (``data[0].prices[2].conversion_rate``), why, and whether it blocks the import."""

    file: str
    path: str
    reason: str
    refused: bool

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {'refused' if self.refused else 'dropped'}: " \
               f"{self.reason}"


@dataclass
class Conversion:
    """The catalog's ``plans`` and placeholder ``metrics``, and every finding."""

    plans: list[dict[str, JSON]] = field(default_factory=list)
    metrics: list[dict[str, JSON]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def refused(self) -> list[Finding]:
        return [f for f in self.findings if f.refused]


# A metric's SQL until someone writes it (Orb's plans name their metrics but do not carry
# their definitions): it counts nothing, so an unwritten metric bills nothing.
PLACEHOLDER_SQL = "SELECT count(*) FROM events WHERE false"


def convert(documents: Iterable[tuple[str, JSON]]) -> Conversion:
    """The catalog of ``documents``: (file name, parsed JSON) pairs, each a list page
    (``{"data": [...]}``), a plan or a price. Decimals may come as ``Decimal`` (JSON
    parsed with ``parse_float=Decimal``), ``int``, ``str`` or ``float`` (read by its
    shortest repr, as it was written). Prices outside a plan go to one plan per currency,
    ``orb_prices_<currency>``."""
    out = Conversion()
    loose: dict[str, list[dict[str, JSON]]] = {}
    for file, document in documents:
        for path, obj in _objects(document):
            _Converter(file, out.findings).object(path, obj, out.plans, loose)
    for currency, prices in sorted(loose.items()):
        out.plans.append({"id": f"orb_prices_{currency.lower()}",
                          "name": f"Prices imported from Orb ({currency})",
                          "currency": currency, "prices": prices})
    metric_ids = dict.fromkeys(p["billable_metric_id"] for plan in out.plans
                               for p in plan["prices"] if "billable_metric_id" in p)
    out.metrics = [{"id": m, "name": f"{m} (placeholder from Orb: write its SQL)",
                    "sql": PLACEHOLDER_SQL} for m in metric_ids]
    return out


def _objects(document: JSON) -> list[tuple[str, JSON]]:
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        return [(f"data[{i}]", obj) for i, obj in enumerate(document["data"])]
    return [("$", document)]


@dataclass
class _Converter:
    file: str
    findings: list[Finding]

    def note(self, path: str, reason: str, refused: bool) -> None:
        self.findings.append(Finding(self.file, path, reason, refused))

    def object(self, path: str, obj: JSON, plans: list[dict[str, JSON]],
               loose: dict[str, list[dict[str, JSON]]]) -> None:
        if isinstance(obj, dict) and "prices" in obj:
            plan = self.plan(path, obj)
            if plan is not None:
                plans.append(plan)
        elif isinstance(obj, dict) and "model_type" in obj:
            currency = str(obj.get("currency") or "")
            before = len(self.refusals())
            price = self.price(path, obj, currency)
            if price is not None and len(self.refusals()) == before and self.valid(
                    path, {"id": "orb_prices", "name": "Orb prices", "currency": currency,
                           "prices": [price]}, price_only=True):
                loose.setdefault(currency, []).append(price)
        else:
            self.note(path, "not an Orb plan, price or list page ({\"data\": [...]})", True)

    def refusals(self) -> list[Finding]:
        return [f for f in self.findings if f.refused]

    def plan(self, path: str, plan: dict[str, JSON]) -> dict[str, JSON] | None:
        before = len(self.refusals())
        known = {"id", "name", "currency", "prices", "adjustments", "trial_config",
                 *_PLAN_BOOKKEEPING, *_PLAN_DROPPED, *_PLAN_REFUSED, *_LEGACY}
        self.unknown(path, plan, known)
        currency = str(plan.get("currency") or "")
        invoicing = plan.get("invoicing_currency")
        if invoicing not in (None, currency):
            self.note(f"{path}.invoicing_currency", f"invoicing in {invoicing} a plan priced "
                      f"in {currency} needs a conversion, which is not supported", True)
        self.dropped(path, plan, _PLAN_DROPPED)
        self.refused(path, plan, _PLAN_REFUSED)
        orb_adjustments = [a for a in _list(plan.get("adjustments")) if isinstance(a, dict)]
        self.legacy(path, plan, {_term(a) for a in orb_adjustments}, "plan adjustment")
        trial = plan.get("trial_config") or {}
        if isinstance(trial, dict) and trial.get("trial_period"):
            self.note(f"{path}.trial_config", "trials are set per subscription here "
                      "(subscriptions[].trial_end_date)", False)
        prices = [self.price(f"{path}.prices[{i}]", p, currency, orb_adjustments)
                  for i, p in enumerate(_list(plan.get("prices")))]
        adjustments = [self.adjustment(f"{path}.adjustments[{i}]", a)
                       for i, a in enumerate(_list(plan.get("adjustments")))]
        out = {"id": plan.get("id"), "name": plan.get("name"), "currency": currency,
               "prices": [p for p in prices if p is not None]}
        if any(adjustments):
            out["adjustments"] = [a for a in adjustments if a is not None]
        if len(self.refusals()) > before or not self.valid(path, out):
            return None
        return out

    def valid(self, path: str, plan: dict[str, JSON], price_only: bool = False) -> bool:
        """Whether ``plan`` passes the catalog's rules; each error refused at its Orb
        path (``price_only``: the plan wraps the price at ``path``)."""
        try:
            TypeAdapter(Plan).validate_python(plan)
        except ValidationError as exc:
            for err in exc.errors():
                loc = err["loc"][2:] if price_only and err["loc"][:2] == ("prices", 0) \
                    else err["loc"]
                self.note(_orb_path(path, loc), err["msg"], True)
            return False
        return True

    def price(self, path: str, price: JSON, currency: str,
              adjustments: Sequence[dict[str, JSON]] = ()) -> dict[str, JSON] | None:
        if not isinstance(price, dict):
            self.note(path, "a price must be an object", True)
            return None
        model_type = price.get("model_type")
        config = f"{model_type}_config"
        composite = _is_composite(model_type)
        known = {"id", "name", "model_type", config, "cadence", "billable_metric", "filter",
                 "invoice_grouping_key", "conversion_rate", "conversion_rate_config",
                 "fixed_price_quantity", "billing_mode", "billing_cycle_configuration",
                 "invoicing_cycle_configuration", *_PRICE_BOOKKEEPING, *_PRICE_DROPPED,
                 *_PRICE_REFUSED, *_LEGACY}
        self.unknown(path, price, known)
        if model_type not in MODEL_TYPES:
            self.note(f"{path}.model_type", f"model_type {model_type!r} is not one of the "
                      "price models (docs/pricing.md#price-models)", True)
        converts = _set(price.get("conversion_rate")) or _set(price.get("conversion_rate_config"))
        if price.get("currency") not in (None, currency) and not converts:
            self.note(f"{path}.currency", f"price in {price.get('currency')} on a plan in "
                      f"{currency}: a plan's prices share its currency", True)
        self.dropped(path, price, _PRICE_DROPPED)
        refused = dict(_PRICE_REFUSED)
        if composite:
            del refused["composite_price_filters"]
        self.refused(path, price, refused)
        own = {_term(a) for a in adjustments if not a.get("is_invoice_level")
               and price.get("id") in _list(a.get("applies_to_price_ids"))}
        self.legacy(path, price, own, "plan adjustment on this price")
        out: dict[str, JSON] = {"id": price.get("id"), "name": price.get("name"),
                                "model_type": model_type, **(self.cadence(path, price) or {})}
        invoicing = price.get("invoicing_cycle_configuration")
        if price.get("cadence") == "custom" and invoicing is not None:
            out["invoicing_cycle_configuration"] = _plain(invoicing)  # the catalog checks it
        metric = price.get("billable_metric")
        if isinstance(metric, dict):
            out["billable_metric_id"] = metric.get("id")
        for kept in ("filter", "invoice_grouping_key"):  # a filter is a price interval's
            if _set(price.get(kept)):
                out[kept] = price[kept]
        if converts and price.get("currency") in (None, currency):
            key = "conversion_rate" if _set(price.get("conversion_rate")) \
                else "conversion_rate_config"
            self.note(f"{path}.{key}", f"a conversion rate on a price in the plan's currency "
                      f"{currency}: a converted price's currency is its custom pricing unit",
                      True)
        elif converts:  # a custom pricing unit: the catalog checks the rest
            out |= {key: _plain(price[key]) for key in
                    ("currency", "conversion_rate", "conversion_rate_config")
                    if _set(price.get(key))}
        if price.get("fixed_price_quantity") is not None:
            out["fixed_price_quantity"] = _plain(price["fixed_price_quantity"])
        mode = price.get("billing_mode")
        in_advance = price.get("fixed_price_quantity") is not None
        if not composite and mode in ("in_advance", "in_arrear") and \
                (mode == "in_advance") != in_advance:
            # Orb's defaults (fixed fees in advance, usage in arrears) are the catalog's.
            out["billed_in_advance"] = mode == "in_advance"
        if composite and price.get("composite_price_filters"):
            out["composite_price_filters"] = _plain(price["composite_price_filters"])
        out[config] = _plain(price.get(config))
        return out

    def cadence(self, path: str, price: dict[str, JSON]) -> dict[str, JSON] | None:
        """The price's cadence fields as the catalog takes them (none for monthly)."""
        cadence = price.get("cadence", "monthly")
        if cadence not in (*CADENCE_MONTHS, "one_time", "custom"):
            self.note(f"{path}.cadence", f"cadence {cadence!r} is not one of Orb's", True)
            return None
        cycle = price.get("billing_cycle_configuration")
        if cadence == "one_time":  # billed once: Orb's cycle says nothing more
            return {"cadence": "one_time"}
        if cadence == "custom":
            return {"cadence": "custom", "billing_cycle_configuration": _plain(cycle)}
        months = CADENCE_MONTHS[str(cadence)]
        for key in ("billing_cycle_configuration", "invoicing_cycle_configuration"):
            cycle = price.get(key)
            if cycle is not None and cycle != {"duration": months, "duration_unit": "month"}:
                self.note(f"{path}.{key}", f"a cycle of {cycle} is not the {cadence} "
                          f"cadence's ({months} month(s)); only cadence custom has a cycle "
                          "of its own, invoiced once per cycle", True)
        return {} if cadence == "monthly" else {"cadence": str(cadence)}

    def adjustment(self, path: str, adj: JSON) -> dict[str, JSON] | None:
        if not isinstance(adj, dict):
            self.note(path, "an adjustment must be an object", True)
            return None
        kind = adj.get("adjustment_type")
        if kind not in ADJUSTMENT_TYPES:
            self.note(f"{path}.adjustment_type", f"adjustment_type {kind!r} is not supported; "
                      f"the adjustments are {', '.join(ADJUSTMENT_TYPES)}", True)
            return None
        amount = _ADJUSTMENT_AMOUNTS[str(kind)]
        known = {"id", "adjustment_type", "applies_to_price_ids", amount,
                 *_ADJUSTMENT_BOOKKEEPING, *_ADJUSTMENT_DROPPED, *_ADJUSTMENT_REFUSED}
        self.unknown(path, adj, known)
        self.dropped(path, adj, _ADJUSTMENT_DROPPED)
        self.refused(path, adj, _ADJUSTMENT_REFUSED)
        out = {"id": adj.get("id"), "adjustment_type": kind, amount: _plain(adj.get(amount))}
        # Invoice-level: every line of the plan, which the catalog says by leaving it out.
        if not adj.get("is_invoice_level"):
            out["applies_to_price_ids"] = adj.get("applies_to_price_ids")
        return out

    def legacy(self, path: str, obj: dict[str, JSON], terms: set[Term | None],
               what: str) -> None:
        for key in _LEGACY:
            if not _set(obj.get(key)):
                continue
            if _legacy_term(key, obj[key]) in terms - {None}:
                self.note(f"{path}.{key}", f"Orb's legacy copy of a {what}, which is "
                          "imported", False)
            else:
                self.note(f"{path}.{key}", f"Orb's legacy {key.split('_')[0]} field is not "
                          f"supported; give it as a {what}", True)

    def unknown(self, path: str, obj: dict[str, JSON], known: set[str]) -> None:
        for key in sorted(obj.keys() - known):
            self.note(f"{path}.{key}", "not a field of Orb's API this import knows; refused "
                      "rather than lose a billing term", True)

    def dropped(self, path: str, obj: dict[str, JSON], fields: Mapping[str, str]) -> None:
        for key, reason in fields.items():
            if _set(obj.get(key)):
                self.note(f"{path}.{key}", reason, False)

    def refused(self, path: str, obj: dict[str, JSON], fields: Mapping[str, str]) -> None:
        for key, reason in fields.items():
            if _set(obj.get(key)):
                self.note(f"{path}.{key}", reason, True)


def _term(adjustment: dict[str, JSON]) -> Term | None:
    kind = adjustment.get("adjustment_type")
    number = _decimal(adjustment.get(_ADJUSTMENT_AMOUNTS.get(str(kind), "")))
    return None if number is None else (str(kind), number)


def _legacy_term(key: str, value: JSON) -> Term | None:
    """The adjustment a legacy field says: ``discount`` is a Discount object,
    ``minimum``/``maximum`` objects with ``<key>_amount``, the ``*_amount`` strings."""
    if key == "discount" and isinstance(value, dict):
        kind = _DISCOUNT_TYPES.get(str(value.get("discount_type")))
        amount = value.get(kind) if kind else None
    elif isinstance(value, dict):
        kind, amount = key, value.get(f"{key}_amount")
    else:
        kind, amount = key.removesuffix("_amount"), value
    number = _decimal(amount)
    return None if kind is None or number is None else (kind, number)


def _decimal(value: JSON) -> Decimal | None:
    try:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except InvalidOperation:
        return None  # not a number: the catalog's validation names it


def _set(value: JSON) -> bool:
    return value not in (None, "", [], {})


def _list(value: JSON) -> list[JSON]:
    return value if isinstance(value, list) else []


def _is_composite(model_type: JSON) -> bool:
    return any(m.COMPOSITE and model_type in get_args(m.model_fields["model_type"].annotation)
               for m in PRICE_MODELS)


def _plain(value: JSON) -> JSON:
    """``value`` as YAML can write it: whole numbers as integers, other numbers as
    decimal strings (the catalog refuses floats: money is written exactly)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, int | Decimal):
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() else str(number)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


_RENAMED = {"billable_metric_id": "billable_metric.id", "billed_in_advance": "billing_mode"}


def _orb_path(path: str, loc: tuple[int | str, ...]) -> str:
    """A catalog validation error's location as the Orb JSON's path."""
    # pydantic puts the union's tag (a model or adjustment type) first in an item's loc
    parts = [p for i, p in enumerate(loc) if not ((i == 0 or isinstance(loc[i - 1], int))
                                                  and (p in MODEL_TYPES
                                                       or p in ADJUSTMENT_TYPES))]
    return path + "".join(f"[{p}]" if isinstance(p, int) else f".{_RENAMED.get(p, p)}"
                          for p in parts)
