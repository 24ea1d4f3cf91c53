"""This project's catalog models and state as the objects of Orb's API, the field names
and types the official SDK reads (``orb.types.Customer``, ``Plan``, ``BillableMetric``,
``Subscription``). What this project does not have is given Orb's empty value (an empty
list, ``null``, ``{}``); docs/api.md lists those fields.

Amounts stay decimal strings, as Orb sends them; dates in the customer's time zone are
given as the UTC instant of their local midnight, as Orb gives ``start_date``."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from api.adjustments import plan_phase_adjustment
from api.views import View, current_period, plan_on
from billing import money, periods, quantities
from billing.catalog import Customer, Subscription
from billing.catalog.models import Metric, Plan
from billing.catalog.price_groups import DimensionalPriceGroup
from billing.catalog.prices import Price


def instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _midnight(day: date | None, customer: Customer) -> str | None:
    return None if day is None else instant(periods.local_midnight(day, customer.timezone))


def party(value: BaseModel | None) -> dict[str, Any] | None:
    """Orb's Address (every key, null when not given) or CustomerTaxID."""
    return None if value is None else value.model_dump(mode="json")


def customer(view: View, c: Customer) -> dict[str, Any]:
    return {
        "id": c.id,
        "external_customer_id": c.external_customer_id,
        "name": c.name,
        "email": c.email or "",
        "timezone": c.timezone,
        "created_at": instant(view.created_at[("customer", c.id)]),
        # this project's own field: days from invoice to due date (Orb's is per invoice)
        "net_terms": c.net_terms,
        "currency": None,  # a customer's invoices take their plan's currency
        "balance": "0.00",
        "additional_emails": [],
        "auto_collection": False,
        "auto_issuance": None,
        "billing_address": party(c.billing_address),
        "shipping_address": party(c.shipping_address),
        "email_delivery": False,
        "exempt_from_automated_tax": None,
        "hierarchy": {"children": [], "parent": None},
        "metadata": {},
        "payment_provider": None,
        "payment_provider_id": None,
        "portal_url": None,
        "tax_id": party(c.tax_id),
        "accounting_sync_configuration": None,
        "reporting_configuration": None,
    }


def metric(view: View, m: Metric) -> dict[str, Any]:
    created = instant(view.catalog_changed_at)
    return {
        "id": m.id,
        "name": m.name,
        "description": None,
        "sql": m.sql,
        "status": "active",
        "metadata": {},
        "item": {"id": m.id, "name": m.name, "created_at": created,
                 "external_connections": [], "metadata": {}, "archived_at": None},
        "parameter_definitions": None,
    }


def price(view: View, p: Price, currency: str) -> dict[str, Any]:
    """Orb's Price: this project's prices are Orb-shaped already (``model_type`` and its
    ``<model_type>_config``); the rest is derived or empty."""
    # a price's event filter has no place in Orb's Price (Orb filters price intervals)
    own = p.model_dump(mode="json", exclude={"billable_metric_id", "billed_in_advance",
                                             "filter"})
    usage = p.billable_metric_id is not None
    return {
        **own,
        "billable_metric": {"id": p.billable_metric_id} if usage else None,
        # a one-time fee's cycle is the one day it is billed for (docs/api.md)
        "billing_cycle_configuration": {"duration": p.cycle.duration,
                                        "duration_unit": "day" if p.cycle.unit == "once"
                                        else p.cycle.unit},
        "billing_mode": "in_advance" if p.in_advance else "in_arrear",
        "created_at": instant(view.catalog_changed_at),
        # a price in a custom pricing unit (credits) is in that unit, converted to the
        # plan's currency by its conversion rate (docs/pricing.md)
        "currency": p.currency or currency,
        "external_price_id": p.id,
        "fixed_price_quantity": own.get("fixed_price_quantity"),
        "item": {"id": p.billable_metric_id or p.id, "name": p.name},
        "price_type": "usage_price" if usage else "fixed_price",
        "metadata": {},
        "plan_phase_order": None,
        "replaces_price_id": None,
        "discount": None,
        "maximum": None,
        "maximum_amount": None,
        "minimum": None,
        "minimum_amount": None,
        "credit_allocation": None,
        "invoicing_cycle_configuration": own.get("invoicing_cycle_configuration"),
        "dimensional_price_configuration": _dimensional(view, p),
        "composite_price_filters": None,
    }


def _dimensional(view: View, p: Price) -> dict[str, Any] | None:
    """Orb's DimensionalPriceConfiguration: the values and the group's own id (a price
    may name the group by its external id)."""
    config = p.dimensional_price_configuration
    if config is None:
        return None
    group = view.references.dimensional_price_group(config.group_ref)
    return {"dimension_values": list(config.dimension_values),
            "dimensional_price_group_id": group.id}


def dimensional_price_group(view: View, group: DimensionalPriceGroup) -> dict[str, Any]:
    """Orb's DimensionalPriceGroup; ``price_count``: the catalog's prices in it."""
    refs = {group.id} | ({f"external:{group.external_dimensional_price_group_id}"}
                         if group.external_dimensional_price_group_id else set())
    prices = {price.id for plan in view.references.plans for price in plan.all_prices()
              if price.dimensional_price_configuration is not None
              and price.dimensional_price_configuration.group_ref in refs}
    return {"id": group.id, "billable_metric_id": group.billable_metric_id,
            "dimensions": list(group.dimensions),
            "external_dimensional_price_group_id": group.external_dimensional_price_group_id,
            "metadata": dict(group.metadata), "name": group.name, "price_count": len(prices)}


def plan(view: View, p: Plan, on: date, version: int | None = None) -> dict[str, Any]:
    """``p`` at ``version`` (default: the version in effect ``on``)."""
    number = version or p.version_on(on).version
    terms = p.version(number)
    created = instant(view.catalog_changed_at)
    return {
        "id": p.id,
        # plan ids here are chosen by the catalog's authors, as Orb's external ids are
        "external_plan_id": p.id,
        "name": p.name,
        "description": "",
        "currency": p.currency,
        "invoicing_currency": p.currency,
        "created_at": created,
        "status": "active",
        "version": number,
        "prices": [price(view, each, p.currency) for each in terms.prices],
        "adjustments": [plan_phase_adjustment(a) for a in terms.adjustments],
        "product": {"id": p.id, "name": p.name, "created_at": created},
        "trial_config": {"trial_period": None, "trial_period_unit": "days"},
        "metadata": {},
        "base_plan": None,
        "base_plan_id": None,
        "default_invoice_memo": None,
        "discount": None,
        "maximum": None,
        "maximum_amount": None,
        "minimum": None,
        "minimum_amount": None,
        "net_terms": None,
        "plan_phases": None,
    }


def status(view: View, sub: Subscription, c: Customer) -> str:
    today = view.today(c)
    if today < sub.starts_on:
        return "upcoming"
    if sub.end_date is not None and today >= sub.end_date:
        return "ended"
    return "active"


def _fixed_fee_schedule(view: View, sub: Subscription, c: Customer) -> list[dict[str, Any]]:
    """Each fixed fee with quantity changes, its quantity from the subscription's start
    (a change for every fixed fee, without a price, listed under each)."""
    schedule = sub.fixed_fee_quantities
    fees = {p.id: p for phase in sub.plan_phases
            for p in view.references.plan(phase.plan_id).all_prices()
            if p.fixed_price_quantity is not None and quantities.scheduled(schedule, p.id)}
    return [{"price_id": fee.id, "quantity": float(quantity),
             "start_date": _midnight(start, c), "end_date": _midnight(end, c)}
            for fee in fees.values()
            for start, end, quantity in quantities.intervals(
                schedule, fee.id, fee.fixed_price_quantity or Decimal(0), sub.starts_on,
                sub.end_date)]


def _threshold(view: View, sub: Subscription) -> str | None:
    """The invoicing threshold in effect, in the currency's minor unit, as Orb's text."""
    amount = view.invoicing_thresholds.get(sub.id)
    if amount is None:
        return None
    plan = view.plan(sub.plan_phases[0].plan_id)
    shown = amount if plan is None else money.quantize(amount, plan.currency)
    return str(shown if shown == amount else amount)  # finer than the minor unit: as set


def subscription(view: View, sub: Subscription) -> dict[str, Any]:
    c = view.customer(sub.customer_id)
    assert c is not None  # the store refuses a subscription of an unknown customer
    today = view.today(c)
    on_plan, version = plan_on(view, sub, max(today, sub.starts_on))
    period = current_period(view, sub, c)
    coupon = sub.coupons[0] if sub.coupons else None
    return {
        "id": sub.id,
        "created_at": instant(view.created_at[("subscription", sub.id)]),
        "customer": customer(view, c),
        "plan": None if on_plan is None else plan(view, on_plan, today, version),
        "name": on_plan.name if on_plan else sub.id,
        "start_date": _midnight(sub.starts_on, c),
        "end_date": _midnight(sub.end_date, c),
        "status": status(view, sub, c),
        "billing_cycle_day": sub.cycle_day,
        "billing_cycle_anchor_configuration": {"day": sub.cycle_day, "month": None,
                                               "year": None},
        "current_billing_period_start_date": _midnight(period[0], c) if period else None,
        "current_billing_period_end_date": _midnight(period[1], c) if period else None,
        "net_terms": c.net_terms,
        "trial_info": {"end_date": _midnight(sub.trial_end_date, c)},
        "redeemed_coupon": None if coupon is None else {
            "coupon_id": coupon.coupon_id,
            "start_date": _midnight(coupon.redeemed_on or sub.starts_on, c),
            "end_date": None},
        "metadata": {},
        "active_plan_phase_order": None,
        # the subscription's own adjustments, for as long as it runs
        "adjustment_intervals": [
            {"id": a.id, "adjustment": plan_phase_adjustment(a),
             "applies_to_price_interval_ids": [], "start_date": _midnight(sub.starts_on, c),
             "end_date": _midnight(sub.end_date, c)} for a in sub.adjustments],
        "discount_intervals": [],
        "fixed_fee_quantity_schedule": _fixed_fee_schedule(view, sub, c),
        "maximum_intervals": [],
        "minimum_intervals": [],
        "price_intervals": [],
        "auto_collection": None,
        "auto_issuance": None,
        "default_invoice_memo": None,
        "invoicing_threshold": _threshold(view, sub),
        "pending_subscription_change": {"id": view.pending_changes[sub.id]}
        if sub.id in view.pending_changes else None,
    }
