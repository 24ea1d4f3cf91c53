"""Orb's ``/subscription_changes``: fetch, apply and cancel a pending subscription change
(docs/api.md#pending-subscription-changes, ``api/pending_changes.py``)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from api.access import Authorized, Caller, IdempotentRoute, audit, config, found, path_id
from api.errors import bad_request, not_found
from api.pages import Cursor, Limit, page
from api.pending_changes import shape
from api.resources.subscriptions import (
    PlanChange,
    SubscriptionCreate,
    create_now,
    plan_change_now,
)
from api.shapes import subscription as shaped
from api.writes import view
from state import StateError, StateStore
from state import pending_changes as stored
from state.pending_changes import PendingChange

router = APIRouter(prefix="/subscription_changes", tags=["subscription_changes"],
                   route_class=IdempotentRoute)


class ApplyBody(BaseModel):
    """Orb's apply body: ``description`` and ``previously_collected_amount`` are kept with
    the outcome; marking invoices paid from here is not taken (null only)."""

    model_config = ConfigDict(extra="forbid")
    description: str | None = None
    previously_collected_amount: str | None = None
    mark_as_paid: None = None
    payment_external_id: None = None
    payment_notes: None = None
    payment_received_date: None = None


def _store(caller: Caller) -> StateStore:
    return StateStore.open(caller.deployment.state_store_url)


@path_id("subscription_change_id")
def _tenants_change(request: Request, caller: Caller, change_id: str) -> PendingChange:
    with _store(caller) as store:
        changes = stored.read(store.engine, [change_id])
    if not changes:
        raise not_found("subscription change", change_id)
    return changes[0]


def _answer(request: Request, caller: Caller, change: PendingChange) -> dict[str, Any]:
    """The change now, with its subscription as it is (none before a create is applied)."""
    with _store(caller) as store:
        [change] = stored.read(store.engine, [change.change_id])
    current = view(request, caller)
    sub = current.subscription(change.subscription_id)
    return shape(change, current.now, None if sub is None
                 else shaped(current, sub) | {"changed_resources": None})


@router.get("")
def list_subscription_changes(request: Request, caller: Authorized, cursor: Cursor = None,
                              limit: Limit = 20, customer_id: str | None = None,
                              external_customer_id: str | None = None,
                              status: Literal["pending", "applied", "cancelled"] | None = None,
                              ) -> dict[str, Any]:
    """Orb's list, newest first, each change in its list shape; ``status`` as of now (a
    pending change past its expiration time is cancelled)."""
    now = config(request).clock()
    customers = None if customer_id is None else {customer_id}
    if external_customer_id is not None:
        known = view(request, caller).customer_by_external_id(external_customer_id)
        named = set() if known is None else {known.id}
        customers = named if customers is None else customers & named
    with _store(caller) as store:
        changes = stored.read(store.engine)
    chosen = [c for c in reversed(changes)
              if (customers is None or c.customer_id in customers)
              and (status is None or c.status_at(now) == status)]

    def listed(change: PendingChange) -> dict[str, Any]:
        whole = shape(change, now, None)
        # a create not yet applied has no subscription yet, as in ``shape``
        created = change.change_type != "create_subscription" or whole["status"] == "applied"
        return {key: whole[key] for key in ("id", "expiration_time", "status", "applied_at",
                                            "cancelled_at")} | {
            "subscription_id": change.subscription_id if created else None}

    return page(chosen, cursor, limit, lambda c: c.change_id, listed)


@router.get("/{subscription_change_id}")
def fetch_subscription_change(subscription_change_id: str, request: Request,
                              caller: Authorized) -> dict[str, Any]:
    return _answer(request, caller, found(request, "subscription_change_id"))


def _pending(request: Request, change: PendingChange) -> None:
    status = change.status_at(config(request).clock())
    if status != "pending":
        expired = " (expired)" if change.status == "pending" else ""
        raise bad_request([f"path.subscription_change_id: change {change.change_id!r} is "
                           f"{status}{expired}: only a pending change can be applied or "
                           "cancelled"])


@router.post("/{subscription_change_id}/apply")
def apply_subscription_change(subscription_change_id: str, request: Request,
                              caller: Authorized, body: ApplyBody | None = None
                              ) -> dict[str, Any]:
    """The held request's own state write, then the outcome (so a write the store refuses
    leaves the change pending, to be cancelled or corrected by a new one)."""
    change: PendingChange = found(request, "subscription_change_id")
    body = body or ApplyBody()
    if body.previously_collected_amount is not None:
        try:
            Decimal(body.previously_collected_amount)
        except InvalidOperation:
            raise bad_request(["body.previously_collected_amount: expected a decimal "
                               "string"]) from None
    _pending(request, change)
    if change.change_type == "create_subscription":
        create_now(SubscriptionCreate.model_validate(change.request), request, caller,
                   change.subscription_id)
    else:
        plan_change_now(change.subscription_id, PlanChange.model_validate(change.request),
                        request, caller)
    return _closed(request, caller, change, "applied", body.description,
                   body.previously_collected_amount)


@router.post("/{subscription_change_id}/cancel")
def cancel_subscription_change(subscription_change_id: str, request: Request,
                               caller: Authorized) -> dict[str, Any]:
    change: PendingChange = found(request, "subscription_change_id")
    _pending(request, change)
    return _closed(request, caller, change, "cancelled")


def _closed(request: Request, caller: Caller, change: PendingChange, status: str,
            description: str | None = None, collected: str | None = None) -> dict[str, Any]:
    now = config(request).clock()
    try:
        with _store(caller) as store:
            stored.record_outcome(store.engine, change.change_id, status, caller.actor, now,
                                  description, collected)
    except StateError as exc:
        raise bad_request(exc.problems) from exc
    after = _answer(request, caller, change)
    audit(request, caller, "subscription_change", change.change_id,
          shape(change, now, None), after)
    return after
