"""Orb's pending subscription changes (docs/api.md#pending-subscription-changes): a
subscription create or plan change sent with ``Create-Pending-Subscription-Change: true``
is checked as the immediate request would be, then held (``state.pending_changes``) with
its body, and the subscription shows it as ``pending_subscription_change: {id}``. Applying
it runs the immediate request's own state write (``resources.subscriptions.create_now``,
``plan_change_now``); cancelling, or its expiry, drops it."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request

from api.access import Caller, audit, config
from api.shapes import instant
from api.shapes import subscription as shaped
from api.views import View
from billing.catalog import Subscription
from state import StateStore
from state import pending_changes as stored
from state.pending_changes import PendingChange

HEADER = "Create-Pending-Subscription-Change"
# Orb gives a pending change an expiration_time without documenting how long it is
LIFETIME = timedelta(days=1)


def wanted(request: Request) -> bool:
    return request.headers.get(HEADER, "").strip().lower() == "true"


def hold(request: Request, caller: Caller, current: View, change_type: str,
         sub: Subscription, body: dict[str, Any]) -> dict[str, Any]:
    """Record the pending change; the answer is the subscription (for a create, as it
    will be) with ``pending_subscription_change`` naming it."""
    now = config(request).clock()
    change = PendingChange(f"subchg_{secrets.token_hex(8)}", change_type, sub.id,
                           sub.customer_id, body, now + LIFETIME, now)
    with StateStore.open(caller.deployment.state_store_url) as store:
        stored.create(store.engine, change, caller.actor)
    preview = replace(
        current, pending_changes={**current.pending_changes, sub.id: change.change_id},
        subscriptions=current.subscriptions if current.subscription(sub.id)
        else [*current.subscriptions, sub],
        created_at={("subscription", sub.id): now, **current.created_at})
    after = shaped(preview, sub) | {"changed_resources": None}
    audit(request, caller, "subscription_change", change.change_id, None,
          shape(change, now, None))
    return after


def shape(change: PendingChange, now: datetime, subscription: dict[str, Any] | None
          ) -> dict[str, Any]:
    """Orb's ``SubscriptionChangeRetrieveResponse``."""
    status = change.status_at(now)
    request = change.request
    return {
        "id": change.change_id, "change_type": change.change_type,
        "expiration_time": instant(change.expiration_time), "status": status,
        "subscription": subscription,
        "applied_at": instant(change.outcome_at) if status == "applied" else None,
        "cancelled_at": instant(change.outcome_at or change.expiration_time)
        if status == "cancelled" else None,
        "change_option": request.get("change_option"),
        "effective_date": request.get("change_date") or request.get("start_date"),
        "plan_id": request.get("plan_id") or request.get("external_plan_id"),
        "billing_cycle_alignment": None,
    }
