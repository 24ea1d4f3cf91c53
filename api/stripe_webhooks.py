"""``POST /stripe/webhooks``: Stripe's payment events, outside Orb's ``/v1`` and its API
keys: the ``Stripe-Signature`` header, checked with the stripe library in
payments/stripe_webhooks.py, is the authentication. Recorded once per event id in the
default tenant's lake (one Stripe account per deployment); 400 for a bad signature, so
Stripe shows the failure on its dashboard; 200 for a replay (docs/payments.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api import errors
from api.access import config
from api.errors import ApiError
from api.registry import DEFAULT_TENANT
from payments import stripe_webhooks
from webhooks.publish import after_lake_write

router = APIRouter(prefix="/stripe", tags=["stripe"], responses=errors.RESPONSES)


@router.post("/webhooks")
async def stripe_webhook(request: Request) -> dict[str, Any]:
    api = config(request)
    deployment = api.registry.tenant_settings(DEFAULT_TENANT)
    payload = await request.body()
    now = api.clock()
    try:
        handled = stripe_webhooks.handle(deployment.lake, payload,
                                         request.headers.get("stripe-signature", ""), now)
    except stripe_webhooks.WebhookRefused as exc:
        raise ApiError(400, str(exc)) from None
    if handled.outcome == "recorded":
        after_lake_write(deployment, now)  # invoice.paid etc. to Orb's webhook endpoints
    return {"id": handled.event_id, "type": handled.type, "outcome": handled.outcome}
