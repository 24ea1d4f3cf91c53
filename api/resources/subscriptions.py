"""Subscriptions: Orb's ``/subscriptions`` over the state store (docs/api.md#subscriptions).

A subscription is created on a catalog plan with the store's ``CreateSubscription`` and
cancelled with its ``Cancel``, as ``orb subscriptions create|cancel`` do; its id is
generated here (``sub_...``), as Orb generates its own."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api import costs, pending_changes
from api.access import Authorized, Caller, IdempotentRoute, audit, config, path_id
from api.adjustments import AddAdjustment, subscription_adjustment
from api.errors import bad_request, not_found
from api.pages import Cursor, Limit, page
from api.resources.costs import ViewMode, costs_response, timeframe
from api.shapes import instant
from api.shapes import status as status_of
from api.shapes import subscription as shaped
from api.views import View, current_period, plan_on
from api.writes import apply, body_field, validated, view
from billing import periods
from billing.catalog import Catalog, Customer, Subscription
from pricing_sql.customer_rating import RatingRefused
from pricing_sql.run_catalog import plans_and_metrics
from state import Cancel, ChangePlan, CreateSubscription, SetQuantity, StateError, StateStore
from state.thresholds import parse_threshold, set_threshold

router = APIRouter(prefix="/subscriptions", tags=["subscriptions"],
                   route_class=IdempotentRoute)


class AnchorConfiguration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: int
    month: None = None  # cycles here are anchored on a day of the month only
    year: None = None


class SubscriptionCreate(BaseModel):
    """Orb's create-subscription body, the fields this project keeps. Dates are a day
    (``2026-10-01``) or an ISO 8601 instant; an instant without an offset is in the
    customer's time zone, as in Orb."""

    model_config = ConfigDict(extra="forbid")
    customer_id: str | None = None
    external_customer_id: str | None = None
    plan_id: str | None = None
    external_plan_id: str | None = None
    plan_version_number: int | None = None
    start_date: str | None = None
    end_date: str | None = None
    trial_duration_days: Annotated[int, Field(ge=1)] | None = None
    align_billing_with_subscription_start_date: bool = False
    billing_cycle_anchor_configuration: AnchorConfiguration | None = None
    coupon_redemption_code: str | None = None
    add_adjustments: list[AddAdjustment] | None = None
    invoicing_threshold: str | None = None


# Orb's update-subscription fields this server keeps (null removes the threshold)
UPDATE_FIELDS = {"invoicing_threshold"}


def _parsed_threshold(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return parse_threshold(text, "body.invoicing_threshold")
    except StateError as exc:
        raise bad_request(exc.problems) from exc


class SubscriptionCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cancel_option: Literal["end_of_subscription_term", "immediate", "requested_date"]
    cancellation_date: str | None = None


def local_instant(text: str, customer: Customer, field: str) -> date | datetime:
    """A day, or an aware instant (one without an offset is in the customer's zone)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request([f"body.{field}: expected a day (YYYY-MM-DD) or an ISO 8601 "
                           f"instant, got {text!r}"]) from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=periods.zone(customer.timezone))
    return instant


def local_day(text: str, customer: Customer, field: str) -> date:
    """A day, or the customer's local day of an instant."""
    value = local_instant(text, customer, field)
    if isinstance(value, datetime):
        return periods.local_day(value, customer.timezone)
    return value


def _one(body: SubscriptionCreate, own: str, external: str) -> str:
    return _one_of(getattr(body, own), getattr(body, external), own, external)


def _customer(current: View, body: SubscriptionCreate) -> Customer:
    given = _one(body, "customer_id", "external_customer_id")
    found = (current.customer(given) if body.customer_id is not None
             else current.customer_by_external_id(given))
    if found is None:
        field = "customer_id" if body.customer_id is not None else "external_customer_id"
        raise bad_request([f"body.{field}: unknown customer {given!r}"])
    return found


def _found(current: View, subscription_id: str) -> Subscription:
    found = current.subscription(subscription_id)
    if found is None:
        raise not_found("subscription", subscription_id)
    return found


@path_id("subscription_id")
def _tenants_subscription(request: Request, caller: Caller, subscription_id: str
                          ) -> Subscription:
    return _found(view(request, caller), subscription_id)


def _found_with_customer(current: View, subscription_id: str
                         ) -> tuple[Subscription, Customer]:
    """The subscription and its customer (the store keeps no subscription without one)."""
    sub = _found(current, subscription_id)
    customer = current.customer(sub.customer_id)
    assert customer is not None
    return sub, customer


@router.post("")
def create_subscription(body: SubscriptionCreate, request: Request, caller: Authorized,
                        ) -> dict[str, Any]:
    """A new subscription; with ``Create-Pending-Subscription-Change: true`` a pending
    change that creates it when applied (``api/pending_changes.py``)."""
    current = view(request, caller)
    new, _ = _new_subscription(current, body, f"sub_{secrets.token_hex(8)}")
    if pending_changes.wanted(request):
        return pending_changes.hold(request, caller, current, "create_subscription", new,
                                    body.model_dump(exclude_unset=True))
    return create_now(body, request, caller, new.id)


def create_now(body: SubscriptionCreate, request: Request, caller: Caller,
               subscription_id: str) -> dict[str, Any]:
    """Create the subscription ``body`` asks for, as ``subscription_id``: the state write
    of an immediate request and of an applied pending one."""
    new, threshold = _new_subscription(view(request, caller), body, subscription_id)
    apply(caller, [CreateSubscription(new, caller.actor, _subscription_field)],
          plans_and_metrics(caller.deployment))
    if threshold is not None:
        with StateStore.open(caller.deployment.state_store_url) as store:
            set_threshold(store.engine, new.id, threshold, caller.actor, from_start=True)
    after_view = view(request, caller)
    after = shaped(after_view, _found(after_view, new.id))
    audit(request, caller, "subscription", new.id, None, after)
    return after


def _new_subscription(current: View, body: SubscriptionCreate, subscription_id: str
                      ) -> tuple[Subscription, Decimal | None]:
    """The subscription ``body`` asks for (checked as a model, not yet against the store)
    and its invoicing threshold."""
    customer = _customer(current, body)
    plan_id = _one(body, "plan_id", "external_plan_id")  # both are the catalog's plan id
    start = (local_day(body.start_date, customer, "start_date") if body.start_date
             else current.today(customer))
    anchor = body.billing_cycle_anchor_configuration
    values: dict[str, object] = {
        "id": subscription_id, "customer_id": customer.id, "plan_id": plan_id,
        "start_date": start, "plan_version": body.plan_version_number,
        "end_date": body.end_date and local_day(body.end_date, customer, "end_date"),
        "trial_end_date": body.trial_duration_days and start + timedelta(
            days=body.trial_duration_days),
        "billing_cycle_day": anchor.day if anchor else None,
        "align_billing_with_subscription_start_date":
            body.align_billing_with_subscription_start_date,
        "coupons": [{"coupon_id": body.coupon_redemption_code}]
        if body.coupon_redemption_code else [],
        "adjustments": [subscription_adjustment(added, index)
                        for index, added in enumerate(body.add_adjustments or [])]}
    new = validated(Subscription, {k: v for k, v in values.items() if v is not None})
    return new, _parsed_threshold(body.invoicing_threshold)


# the store names the catalog model's fields; the request's are Orb's
ORB_FIELDS = {"plan_version": "plan_version_number", "trial_end_date": "trial_duration_days",
              "billing_cycle_day": "billing_cycle_anchor_configuration.day",
              "coupons": "coupon_redemption_code", "id": "id"}


def _subscription_field(*field: str | int) -> str:
    if field[:1] == ("adjustments",):  # add_adjustments[i].adjustment, as the request has it
        return body_field("add_adjustments", *field[1:2], "adjustment", *field[2:])
    if field and str(field[0]) in ORB_FIELDS:
        return body_field(ORB_FIELDS[str(field[0])])
    return body_field(*field)


@router.get("")
def list_subscriptions(
        request: Request, caller: Authorized, cursor: Cursor = None, limit: Limit = 20,
        customer_id: Annotated[list[str] | None, Query()] = None,
        customer_ids: Annotated[list[str] | None, Query(alias="customer_id[]")] = None,
        external_customer_id: Annotated[list[str] | None, Query()] = None,
        external_customer_ids: Annotated[list[str] | None,
                                         Query(alias="external_customer_id[]")] = None,
        plan_id: str | None = None, external_plan_id: str | None = None,
        status: Literal["active", "ended", "upcoming"] | None = None,
        statuses: Annotated[list[Literal["active", "ended", "upcoming"]] | None,
                            Query(alias="status[]")] = None) -> dict[str, Any]:
    """Newest first, filtered by customer (Orb's ``customer_id`` or ``customer_id[]``),
    plan in effect and status."""
    current = view(request, caller)
    customers = set((customer_id or []) + (customer_ids or []))
    external = set((external_customer_id or []) + (external_customer_ids or []))
    wanted_status = set(([status] if status else []) + (statuses or []))
    plans = {p for p in (plan_id, external_plan_id) if p}
    chosen = []
    for sub in reversed(current.subscriptions):  # filtered first: only a page is shaped
        customer = current.customer(sub.customer_id)
        assert customer is not None
        if ((customers and sub.customer_id not in customers)
                or (external and customer.external_customer_id not in external)
                or (wanted_status and status_of(current, sub, customer) not in wanted_status)
                or (plans and _plan_id_shown(current, sub, customer) not in plans)):
            continue
        chosen.append(sub)
    return page(chosen, cursor, limit, lambda s: s.id, lambda s: shaped(current, s))


def _plan_id_shown(current: View, sub: Subscription, customer: Customer) -> str | None:
    """The id of the plan a subscription shows (``shapes.subscription``'s ``plan``)."""
    on_plan, _ = plan_on(current, sub, max(current.today(customer), sub.starts_on))
    return on_plan.id if on_plan else None


@router.get("/{subscription_id}")
def fetch_subscription(subscription_id: str, request: Request, caller: Authorized,
                      ) -> dict[str, Any]:
    current = view(request, caller)
    return shaped(current, _found(current, subscription_id))


@router.put("/{subscription_id}")
def update_subscription(subscription_id: str, request: Request, caller: Authorized,
                        body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Orb's update: ``invoicing_threshold`` from now on (null removes it); a body
    without it changes nothing. The body is checked once the subscription is found, so
    another tenant's id is a 404 whatever the body."""
    current = view(request, caller)
    before = shaped(current, _found(current, subscription_id))
    if unknown := sorted(set(body) - UPDATE_FIELDS):
        raise bad_request([f"body.{name}: not a field this server takes (docs/api.md "
                           "lists what differs from Orb)" for name in unknown])
    if "invoicing_threshold" in body:
        value = body["invoicing_threshold"]
        if value is not None and not isinstance(value, str | int | float):
            raise bad_request([f"body.invoicing_threshold: expected a decimal string, "
                               f"got {value!r}"])
        threshold = _parsed_threshold(None if value is None else str(value))
        with StateStore.open(caller.deployment.state_store_url) as store:
            set_threshold(store.engine, subscription_id, threshold, caller.actor,
                          current.now)
    return _audited(request, caller, subscription_id, before)


@router.post("/{subscription_id}/cancel")
def cancel_subscription(subscription_id: str, body: SubscriptionCancel, request: Request,
                        caller: Authorized) -> dict[str, Any]:
    """Orb's options: ``immediate`` (ends at the customer's next local midnight: billing
    counts whole days), ``requested_date`` (``cancellation_date``: a day, or an instant
    taken at the next local midnight), ``end_of_subscription_term`` (the end of the
    billing period under way, on the plan's longest cadence)."""
    current = view(request, caller)
    sub, customer = _found_with_customer(current, subscription_id)
    if (body.cancel_option == "requested_date") != (body.cancellation_date is not None):
        raise bad_request(["body.cancellation_date: give it with cancel_option "
                           "requested_date, and only then"])
    effective: date | datetime = current.now  # immediate
    if body.cancel_option == "requested_date":
        assert body.cancellation_date is not None
        effective = local_instant(body.cancellation_date, customer, "cancellation_date")
    elif body.cancel_option == "end_of_subscription_term":
        effective = _end_of_term(current, sub, customer, "cancel_option")
    before = shaped(current, sub)
    field = ("cancellation_date" if body.cancel_option == "requested_date"
             else "cancel_option")
    apply(caller, [Cancel(subscription_id, caller.actor, effective,
                          lambda *_: body_field(field))], Catalog())
    return _audited(request, caller, subscription_id, before)


class PlanChange(BaseModel):
    """Orb's schedule-plan-change body, the fields this project keeps."""

    model_config = ConfigDict(extra="forbid")
    change_option: Literal["requested_date", "end_of_subscription_term", "immediate"]
    change_date: str | None = None
    plan_id: str | None = None
    external_plan_id: str | None = None
    plan_version_number: int | None = None


@router.post("/{subscription_id}/schedule_plan_change")
def schedule_plan_change(subscription_id: str, body: PlanChange, request: Request,
                         caller: Authorized) -> dict[str, Any]:
    """The store's effective-dated plan change (``orb subscriptions change --plan``):
    ``immediate`` from the customer's today (billing counts whole days),
    ``requested_date`` from ``change_date`` (a day, or an instant's local day),
    ``end_of_subscription_term`` from the end of the billing period under way. With
    ``Create-Pending-Subscription-Change: true``, a pending change that makes it when
    applied, its dates taken then."""
    current = view(request, caller)
    sub, _ = _found_with_customer(current, subscription_id)
    _plan_change_date(current, sub, body)  # refused now rather than when applied
    if pending_changes.wanted(request):
        return pending_changes.hold(request, caller, current, "schedule_plan_change", sub,
                                    body.model_dump(exclude_unset=True))
    return plan_change_now(subscription_id, body, request, caller)


def plan_change_now(subscription_id: str, body: PlanChange, request: Request,
                    caller: Caller) -> dict[str, Any]:
    """The plan change's state write, of an immediate request and of an applied pending
    one."""
    current = view(request, caller)
    sub = _found(current, subscription_id)
    plan_id, effective = _plan_change_date(current, sub, body)
    before = shaped(current, sub)
    apply(caller, [ChangePlan(subscription_id, plan_id, caller.actor, body.plan_version_number,
                              effective, _change_field)], plans_and_metrics(caller.deployment))
    return _audited(request, caller, subscription_id, before)


def _plan_change_date(current: View, sub: Subscription, body: PlanChange
                      ) -> tuple[str, date]:
    """The plan a change names and the day it takes effect; refused naming the field."""
    customer = current.customer(sub.customer_id)
    assert customer is not None
    plan_id = _one_of(body.plan_id, body.external_plan_id, "plan_id", "external_plan_id")
    if (body.change_option == "requested_date") != (body.change_date is not None):
        raise bad_request(["body.change_date: give it with change_option requested_date, "
                           "and only then"])
    effective: date = current.today(customer)  # immediate
    if body.change_option == "requested_date":
        assert body.change_date is not None
        effective = local_day(body.change_date, customer, "change_date")
    elif body.change_option == "end_of_subscription_term":
        effective = _end_of_term(current, sub, customer, "change_option")
    return plan_id, effective


class FixedFeeQuantityUpdate(BaseModel):
    """Orb's update-fixed-fee-quantity body."""

    model_config = ConfigDict(extra="forbid")
    price_id: str
    quantity: Decimal
    allow_invoice_credit_or_void: bool | None = None
    change_option: Literal["immediate", "upcoming_invoice", "effective_date"] | None = None
    effective_date: str | None = None


@router.post("/{subscription_id}/update_fixed_fee_quantity")
def update_fixed_fee_quantity(subscription_id: str, body: FixedFeeQuantityUpdate,
                              request: Request, caller: Authorized) -> dict[str, Any]:
    """The store's effective-dated quantity (``orb subscriptions set-quantity``), billed
    as docs/invoicing.md#fixed-fee-quantity-changes says: ``effective_date`` (a day, or
    an instant's local day; the default option when given), ``immediate`` from the
    customer's today, ``upcoming_invoice`` from the end of the billing period under way.
    ``allow_invoice_credit_or_void: false`` refuses a change dated before today, the
    one kind that can correct an invoice already issued when its month is re-rated."""
    current = view(request, caller)
    sub, customer = _found_with_customer(current, subscription_id)
    option = body.change_option or ("effective_date" if body.effective_date else "immediate")
    if (option == "effective_date") != (body.effective_date is not None):
        raise bad_request(["body.effective_date: give it with change_option effective_date "
                           "(the default when it is given), and only then"])
    today = current.today(customer)
    effective = today  # immediate
    if body.effective_date is not None:
        effective = local_day(body.effective_date, customer, "effective_date")
    elif option == "upcoming_invoice":
        effective = _end_of_term(current, sub, customer, "change_option")
    if body.allow_invoice_credit_or_void is False and effective < today:
        raise bad_request([f"body.effective_date: {effective} is before today ({today}): "
                           "re-rating its month may credit an issued invoice, which "
                           "allow_invoice_credit_or_void false forbids"])
    before = shaped(current, sub)
    apply(caller, [SetQuantity(subscription_id, body.quantity, caller.actor, body.price_id,
                               effective, _quantity_field)],
          plans_and_metrics(caller.deployment))
    return _audited(request, caller, subscription_id, before)


def _quantity_field(*field: str | int) -> str:
    return body_field({"effective": "effective_date"}.get(str(field[0]), str(field[0]))
                      if field else "")


@router.post("/{subscription_id}/unschedule_pending_plan_changes")
def unschedule_pending_plan_changes(subscription_id: str, request: Request,
                                    caller: Authorized) -> dict[str, Any]:
    """Plan changes not yet in effect are withdrawn by the store's own plan change: the
    phase in effect today, restated from its own start (a later row wins,
    docs/state.md), so the history keeps both."""
    current = view(request, caller)
    sub, customer = _found_with_customer(current, subscription_id)
    today = current.today(customer)
    first, *later = sub.plan_phases
    if not any(phase.start_date > today for phase in later):
        raise bad_request([f"path.subscription_id: subscription {subscription_id!r} has no "
                           "pending plan change"])
    in_effect = next((p for p in reversed(later) if p.start_date <= today), first)
    before = shaped(current, sub)
    apply(caller, [ChangePlan(subscription_id, in_effect.plan_id, caller.actor,
                              in_effect.plan_version, in_effect.start_date)],
          plans_and_metrics(caller.deployment))
    return _audited(request, caller, subscription_id, before)


def _one_of(own: str | None, external: str | None, own_name: str, external_name: str) -> str:
    values = [v for v in (own, external) if v is not None]
    if len(values) != 1:
        raise bad_request([f"body: give exactly one of {own_name} and {external_name}"])
    return values[0]


def _change_field(*field: str | int) -> str:
    where = {"plan_id": "plan_id", "plan_version": "plan_version_number",
             "effective": "change_date"}
    return body_field(where.get(str(field[0]), str(field[0])) if field else "")


def _end_of_term(current: View, sub: Subscription, customer: Customer, option: str) -> date:
    """The end of the billing period under way: where ``end_of_subscription_term`` takes
    effect; a subscription with none is refused, naming the body's ``option``."""
    period = current_period(current, sub, customer)
    if period is None:
        raise bad_request([f"body.{option}: subscription {sub.id!r} is "
                           f"{status_of(current, sub, customer)}: it has no term under way"])
    return period[1]


def _audited(request: Request, caller: Authorized, subscription_id: str,
             before: dict[str, Any]) -> dict[str, Any]:
    after_view = view(request, caller)
    after = shaped(after_view, _found(after_view, subscription_id))
    audit(request, caller, "subscription", subscription_id, before, after)
    return after


@router.get("/{subscription_id}/costs")
def subscription_costs(subscription_id: str, request: Request, caller: Authorized,
                       timeframe_start: str | None = None, timeframe_end: str | None = None,
                       view_mode: ViewMode = "cumulative", currency: str | None = None,
                       ) -> dict[str, Any]:
    current = costs.read_view(caller.deployment, config(request).clock())
    sub, customer = _found_with_customer(current, subscription_id)
    return costs_response(caller, current, customer, sub, timeframe_start, timeframe_end,
                          view_mode, currency)


# Orb's usage parameters this server takes; grouping and dimensions are refused
USAGE_PARAMETERS = {"timeframe_start", "timeframe_end", "granularity", "view_mode"}


@router.get("/{subscription_id}/usage")
def subscription_usage(subscription_id: str, request: Request, caller: Authorized,
                       timeframe_start: str | None = None, timeframe_end: str | None = None,
                       granularity: Literal["day"] | None = None,
                       view_mode: ViewMode = "cumulative") -> dict[str, Any]:
    """Each billable metric of the subscription's usage prices: over the timeframe (by
    default the billing period under way, to the end of today), or per day
    (``granularity=day``), cumulative from the billing period's start or each day alone
    (``periodic``)."""
    refused = sorted(set(request.query_params) - USAGE_PARAMETERS)
    if refused:
        raise bad_request([f"query.{name}: not a parameter this server takes (docs/api.md "
                           "lists what differs from Orb)" for name in refused])
    current = costs.read_view(caller.deployment, config(request).clock())
    sub, customer = _found_with_customer(current, subscription_id)
    days = timeframe(current, customer, [sub], timeframe_start, timeframe_end)
    if not days:
        return {"data": []}
    spans = ([(day, day + timedelta(days=1)) for day in days] if granularity == "day"
             else [(days[0], days[-1] + timedelta(days=1))])
    catalog = costs.catalog_of(current.references, current.customers, current.subscriptions,
                               customer.id)
    try:
        metrics = costs.subscription_usage(caller.deployment.lake, catalog, customer, sub.id,
                                           spans, view_mode == "cumulative")
    except RatingRefused as exc:
        raise bad_request([f"path.subscription_id: {exc}"]) from exc

    def midnight(day: date) -> str | None:
        return instant(periods.local_midnight(day, customer.timezone))

    return {"data": [{
        "billable_metric": {"id": metric.metric_id,
                            "name": catalog.metric(metric.metric_id).name},
        "view_mode": view_mode,
        "usage": [{"quantity": f"{quantity.normalize():f}", "timeframe_start": midnight(start),
                   "timeframe_end": midnight(end)} for start, end, quantity in metric.points],
    } for metric in metrics]}
