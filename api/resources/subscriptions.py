"""Subscriptions: Orb's ``/subscriptions`` over the state store (docs/api.md#subscriptions).

A subscription is created on a catalog plan with the store's ``CreateSubscription`` and
cancelled with its ``Cancel``, as ``orb subscriptions create|cancel`` do; its id is
generated here (``sub_...``), as Orb generates its own."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.access import Authorized, IdempotentRoute, audit
from api.errors import bad_request, not_found
from api.pages import Cursor, Limit, page
from api.shapes import status as status_of
from api.shapes import subscription as shaped
from api.views import View, current_period
from api.writes import apply, body_field, validated, view
from billing import periods
from billing.catalog import Catalog, Customer, Subscription
from pricing_sql.run_catalog import plans_and_metrics
from state import Cancel, CreateSubscription

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
        return value.astimezone(periods.zone(customer.timezone)).date()
    return value


def _one(body: SubscriptionCreate, own: str, external: str) -> str:
    values = [v for v in (getattr(body, own), getattr(body, external)) if v is not None]
    if len(values) != 1:
        raise bad_request([f"body: give exactly one of {own} and {external}"])
    return values[0]


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


@router.post("")
def create_subscription(body: SubscriptionCreate, request: Request, caller: Authorized,
                       ) -> dict[str, Any]:
    current = view(request, caller)
    customer = _customer(current, body)
    plan_id = _one(body, "plan_id", "external_plan_id")  # both are the catalog's plan id
    start = (local_day(body.start_date, customer, "start_date") if body.start_date
             else current.today(customer))
    anchor = body.billing_cycle_anchor_configuration
    values: dict[str, object] = {
        "id": f"sub_{secrets.token_hex(8)}", "customer_id": customer.id, "plan_id": plan_id,
        "start_date": start, "plan_version": body.plan_version_number,
        "end_date": body.end_date and local_day(body.end_date, customer, "end_date"),
        "trial_end_date": body.trial_duration_days and start + timedelta(
            days=body.trial_duration_days),
        "billing_cycle_day": anchor.day if anchor else None,
        "align_billing_with_subscription_start_date":
            body.align_billing_with_subscription_start_date,
        "coupons": [{"coupon_id": body.coupon_redemption_code}]
        if body.coupon_redemption_code else []}
    new = validated(Subscription, {k: v for k, v in values.items() if v is not None})
    apply(caller, [CreateSubscription(new, caller.actor, _subscription_field)],
          plans_and_metrics(caller.deployment))
    after_view = view(request, caller)
    after = shaped(after_view, _found(after_view, new.id))
    audit(request, caller, "subscription", new.id, None, after)
    return after


# the store names the catalog model's fields; the request's are Orb's
ORB_FIELDS = {"plan_version": "plan_version_number", "trial_end_date": "trial_duration_days",
              "billing_cycle_day": "billing_cycle_anchor_configuration.day",
              "coupons": "coupon_redemption_code", "id": "id"}


def _subscription_field(*field: str | int) -> str:
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
    for sub in reversed(current.subscriptions):
        customer = current.customer(sub.customer_id)
        assert customer is not None
        shown = shaped(current, sub)
        if ((customers and sub.customer_id not in customers)
                or (external and customer.external_customer_id not in external)
                or (wanted_status and status_of(current, sub, customer) not in wanted_status)
                or (plans and (shown["plan"] or {}).get("id") not in plans)):
            continue
        chosen.append(shown)
    return page(chosen, cursor, limit, lambda s: s["id"], lambda s: s)


@router.get("/{subscription_id}")
def fetch_subscription(subscription_id: str, request: Request, caller: Authorized,
                      ) -> dict[str, Any]:
    current = view(request, caller)
    return shaped(current, _found(current, subscription_id))


@router.post("/{subscription_id}/cancel")
def cancel_subscription(subscription_id: str, body: SubscriptionCancel, request: Request,
                        caller: Authorized) -> dict[str, Any]:
    """Orb's options: ``immediate`` (ends at the customer's next local midnight: billing
    counts whole days), ``requested_date`` (``cancellation_date``: a day, or an instant
    taken at the next local midnight), ``end_of_subscription_term`` (the end of the
    billing period under way, on the plan's longest cadence)."""
    current = view(request, caller)
    sub = _found(current, subscription_id)
    customer = current.customer(sub.customer_id)
    assert customer is not None
    if (body.cancel_option == "requested_date") != (body.cancellation_date is not None):
        raise bad_request(["body.cancellation_date: give it with cancel_option "
                           "requested_date, and only then"])
    effective: date | datetime = current.now  # immediate
    if body.cancel_option == "requested_date":
        assert body.cancellation_date is not None
        effective = local_instant(body.cancellation_date, customer, "cancellation_date")
    elif body.cancel_option == "end_of_subscription_term":
        period = current_period(current, sub, customer)
        if period is None:
            raise bad_request([f"body.cancel_option: subscription {subscription_id!r} is "
                               f"{status_of(current, sub, customer)}: it has no term under way"])
        effective = period[1]
    before = shaped(current, sub)
    field = ("cancellation_date" if body.cancel_option == "requested_date"
             else "cancel_option")
    apply(caller, [Cancel(subscription_id, caller.actor, effective,
                          lambda *_: body_field(field))], Catalog())
    after_view = view(request, caller)
    after = shaped(after_view, _found(after_view, subscription_id))
    audit(request, caller, "subscription", subscription_id, before, after)
    return after
