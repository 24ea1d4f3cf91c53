"""Orb's pending subscription changes through the official SDK against the real ``orb
serve`` (docs/api.md#pending-subscription-changes): a create and a plan change sent with
``Create-Pending-Subscription-Change: true`` are held, shown as the subscription's
``pending_subscription_change``, then applied (the same state write as an immediate
request) or cancelled, each once."""

from __future__ import annotations

import orb
import pytest

from tests.test_api_sdk import server  # noqa: F401  (the module's served API)

PENDING = {"Create-Pending-Subscription-Change": "true"}


def test_pending_subscription_changes_through_the_sdk(server):  # noqa: F811
    client = server.client(server.admin)
    customer = client.customers.create(email="pending@x.test", name="Pending",
                                       timezone="UTC", external_customer_id="pending-ext")
    held = client.subscriptions.create(customer_id=customer.id, plan_id="starter",
                                       start_date="2026-10-01", extra_headers=PENDING)
    change_id = held.pending_subscription_change.id
    assert held.plan.id == "starter"  # the subscription as it will be: not written yet
    assert list(client.subscriptions.list(customer_id=[customer.id])) == []
    change = client.subscription_changes.retrieve(change_id)
    assert (change.status, change.change_type, change.subscription, change.plan_id) == (
        "pending", "create_subscription", None, "starter")

    applied = client.subscription_changes.apply(change_id, description="signed",
                                                previously_collected_amount="10.00")
    assert (applied.status, applied.subscription.id, applied.applied_at is not None) == (
        "applied", held.id, True)
    created = client.subscriptions.fetch(held.id)
    assert (created.plan.id, created.pending_subscription_change) == ("starter", None)
    with pytest.raises(orb.RequestValidationError) as again:
        client.subscription_changes.apply(change_id)
    assert again.value.detail == (f"path.subscription_change_id: change {change_id!r} is "
                                  "applied: only a pending change can be applied or cancelled")

    # a plan change held, shown on the subscription, then cancelled: nothing changes
    plan_change = client.subscriptions.schedule_plan_change(
        held.id, change_option="immediate", plan_id="a_yearly", extra_headers=PENDING)
    second = plan_change.pending_subscription_change.id
    assert client.subscriptions.fetch(held.id).pending_subscription_change.id == second
    cancelled = client.subscription_changes.cancel(second)
    assert (cancelled.status, cancelled.change_option, cancelled.subscription.plan.id,
            cancelled.subscription.pending_subscription_change) == (
        "cancelled", "immediate", "starter", None)

    # held again and applied: the subscription is on the new plan from today
    third = client.subscriptions.schedule_plan_change(
        held.id, change_option="immediate", plan_id="a_yearly",
        extra_headers=PENDING).pending_subscription_change.id
    assert client.subscriptions.fetch(held.id).plan.id == "starter"
    done = client.subscription_changes.apply(third)
    assert (done.status, done.subscription.plan.id) == ("applied", "a_yearly")

    with pytest.raises(orb.NotFoundError):
        server.client(server.tenant_b).subscription_changes.retrieve(third)

    # listed newest first, filtered by customer and by status
    listed = [(c.id, c.status, c.subscription_id)
              for c in client.subscription_changes.list(customer_id=customer.id)]
    assert listed == [(third, "applied", held.id), (second, "cancelled", held.id),
                      (change_id, "applied", held.id)]
    assert [c.id for c in client.subscription_changes.list(
        external_customer_id="pending-ext", status="cancelled")] == [second]
    assert list(client.subscription_changes.list(external_customer_id="nobody")) == []
    assert [c.id for c in client.subscription_changes.list(customer_id=customer.id,
                                                           status="cancelled")] == [second]
    assert list(server.client(server.tenant_b).subscription_changes.list()) == []
