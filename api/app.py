"""The Orb-compatible API (docs/api.md): FastAPI under ``/v1``, in Orb's shapes, so that
Orb's official SDKs can drive it with ``base_url`` pointed here.

Every route depends on ``access.authorize`` and ``access.owned`` (declared here, once):
the key, its role and its tenant's deployment, and every path id that tenant's. Errors are
Orb's (``api/errors.py``); the OpenAPI document is ``/v1/openapi.json``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from api import errors, stripe_webhooks
from api.access import ApiConfig, authorize, owned, uncovered
from api.limits import BodyLimits
from api.resources import (
    alerts,
    audit,
    balance_transactions,
    catalog,
    costs,
    credit_notes,
    credits,
    customers,
    events,
    invoices,
    price_groups,
    prices,
    subscription_changes,
    subscriptions,
    top_ups,
    webhook_endpoints,
)
from storage.settings import Settings

REQUIRE_AUTH_VARIABLE = "ORB_API_REQUIRE_AUTH"


def require_auth_from_env() -> bool:
    """``ORB_API_REQUIRE_AUTH``: on unless 0, false, no or off."""
    value = os.environ.get(REQUIRE_AUTH_VARIABLE, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def create_app(api: ApiConfig) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # the ingest buffer's micro-batcher runs while the server does
        if api.batcher is not None:
            api.batcher.start()
        try:
            yield
        finally:
            if api.batcher is not None:
                api.batcher.stop()

    app = FastAPI(title="Orb on DuckDB", version="1", openapi_url="/v1/openapi.json",
                  docs_url="/v1/docs", redoc_url=None, lifespan=lifespan)
    app.state.api = api
    errors.install(app)
    errors.document(app)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorize), Depends(owned)],
                   responses=errors.RESPONSES)
    for module in (customers, subscriptions, catalog, invoices, audit, events, costs,
                   credits, credit_notes, alerts, price_groups, webhook_endpoints,
                   balance_transactions, top_ups, subscription_changes, prices):
        v1.include_router(module.router)
    app.include_router(v1)
    app.include_router(stripe_webhooks.router)  # signed by Stripe, not by API keys
    if missing := uncovered(app.routes):
        raise RuntimeError(f"path parameters without a finder (api.access.path_id): {missing}")
    app.add_middleware(BodyLimits, seconds=Settings.from_env().ingest_body_timeout)
    return app

