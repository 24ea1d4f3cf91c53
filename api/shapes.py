"""This project's catalog models and state as the objects of Orb's API, the field names
and types the official SDK reads (``orb.types.Customer``, ``Plan``, ``BillableMetric``,
``Subscription``). What this project does not have is given Orb's empty value (an empty
list, ``null``, ``{}``); docs/api.md lists those fields.

Amounts stay decimal strings, as Orb sends them; dates in the customer's time zone are
given as the UTC instant of their local midnight, as Orb gives ``start_date``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from api.views import View, current_period, plan_on
from billing import periods
from billing.catalog import Customer, Subscription
from billing.catalog.models import Metric, Plan
from billing.catalog.prices import Price


def instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _midnight(day: date | None, customer: Customer) -> str | None:
    return None if day is None else instant(periods.local_midnight(day, customer.timezone))


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
        "billing_address": None,
        "shipping_address": None,
        "email_delivery": False,
        "exempt_from_automated_tax": None,
        "hierarchy": {"children": [], "parent": None},
        "metadata": {},
        "payment_provider": None,
        "payment_provider_id": None,
        "portal_url": None,
        "tax_id": None,
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
        "billing_cycle_configuration": {"duration": p.cadence_months, "duration_unit": "month"},
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
        "invoicing_cycle_configuration": None,
        "dimensional_price_configuration": None,
        "composite_price_filters": None,
    }


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
        "adjustments": [{**a.model_dump(mode="json"), "applies_to_price_ids":
                         a.applies_to_price_ids or [], "filters": [],
                         "is_invoice_level": a.applies_to_price_ids is None,
                         "plan_phase_order": None, "reason": None,
                         "replaces_adjustment_id": None} for a in terms.adjustments],
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
        "adjustment_intervals": [],
        "discount_intervals": [],
        "fixed_fee_quantity_schedule": [],
        "maximum_intervals": [],
        "minimum_intervals": [],
        "price_intervals": [],
        "auto_collection": None,
        "auto_issuance": None,
        "default_invoice_memo": None,
        "invoicing_threshold": None,
        "pending_subscription_change": None,
    }
