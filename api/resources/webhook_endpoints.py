"""Webhook endpoints: Orb's ``/webhook_endpoints`` over the state store
(docs/api.md#webhook-endpoints, docs/webhooks.md), through the functions
``orb webhooks endpoints`` calls. Writes need an admin key: an endpoint's secret signs
what the company is told. The secret is returned once, by the create."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, ValidationError

from api.access import Authorized, Caller, IdempotentRoute, audit, config, path_id
from api.errors import ApiError, bad_request, not_found, validation_problems
from api.pages import Cursor, Limit, page
from state import StateStore
from webhooks import endpoints

router = APIRouter(prefix="/webhook_endpoints", tags=["webhook_endpoints"],
                   route_class=IdempotentRoute)


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    enabled_event_types: list[str] | None = None
    payload_style: Literal["expanded", "standard"] | None = None
    # this project's: how posts are signed (Orb signs its own way only)
    signature_style: Literal["standard", "orb"] | None = None


class EndpointUpdate(BaseModel):
    """A field left out is kept; ``enabled_event_types`` sent as null is every type."""

    model_config = ConfigDict(extra="forbid")
    url: str | None = None
    enabled_event_types: list[str] | None = None
    payload_style: Literal["expanded", "standard"] | None = None
    signature_style: Literal["standard", "orb"] | None = None


@contextmanager
def _engine(caller: Caller) -> Iterator[sa.Engine]:
    with StateStore.open(caller.deployment.state_store_url) as store:
        yield store.engine


def _admin(caller: Caller, request: Request) -> None:
    if caller.role != "admin":
        raise ApiError(403, f"a {caller.role} key cannot {request.method} "
                            f"{request.url.path}: webhook endpoints need an admin key")


def _write(request: Request, caller: Caller, endpoint_id: str | None,
           write: Callable[[sa.Engine], endpoints.Endpoint],
           with_secret: bool = False) -> dict[str, Any]:
    """Run ``write`` as the admin caller; audited without the secret."""
    _admin(caller, request)
    with _engine(caller) as engine:
        try:
            before = (None if endpoint_id is None
                      else endpoints.get(engine, endpoint_id).as_orb())
            written = write(engine)
        except endpoints.UnknownEndpoint as exc:
            raise not_found("webhook endpoint", exc.endpoint_id) from exc
        except endpoints.EndpointError as exc:
            raise bad_request([f"body.{exc}"]) from exc
    audit(request, caller, "webhook_endpoint", written.id, before, written.as_orb())
    return written.as_orb(with_secret)


@router.post("")
def create_webhook_endpoint(body: EndpointCreate, request: Request,
                            caller: Authorized) -> dict[str, Any]:
    return _write(request, caller, None, lambda engine: endpoints.create(
        engine, body.url, config(request).clock(), caller.actor, body.enabled_event_types,
        body.payload_style or "standard", body.signature_style or "standard"),
        with_secret=True)


@router.get("")
def list_webhook_endpoints(caller: Authorized, cursor: Cursor = None,
                           limit: Limit = 20) -> dict[str, Any]:
    with _engine(caller) as engine:
        found = endpoints.list_endpoints(engine)
    return page(found[::-1], cursor, limit, lambda e: e.id, lambda e: e.as_orb())


@router.get("/{webhook_endpoint_id}")
def fetch_webhook_endpoint(webhook_endpoint_id: str, caller: Authorized) -> dict[str, Any]:
    with _engine(caller) as engine:
        try:
            return endpoints.get(engine, webhook_endpoint_id).as_orb()
        except endpoints.UnknownEndpoint as exc:
            raise not_found("webhook endpoint", webhook_endpoint_id) from exc


@path_id("webhook_endpoint_id")
def _known(request: Request, caller: Caller, webhook_endpoint_id: str) -> dict[str, Any]:
    return fetch_webhook_endpoint(webhook_endpoint_id, caller)


@router.put("/{webhook_endpoint_id}")
def update_webhook_endpoint(webhook_endpoint_id: str, request: Request, caller: Authorized,
                            sent_body: Annotated[dict[str, Any] | None, Body()] = None,
                            ) -> dict[str, Any]:
    try:
        body = EndpointUpdate.model_validate(sent_body or {})
    except ValidationError as exc:
        raise bad_request(validation_problems(
            {**error, "loc": ("body", *error["loc"])} for error in exc.errors())) from exc
    sent = body.model_fields_set
    changes: dict[str, Any] = {name: getattr(body, name) for name in
                               ("url", "payload_style", "signature_style") if name in sent}
    if "enabled_event_types" in sent:
        changes["enabled_event_types"] = body.enabled_event_types
    return _write(request, caller, webhook_endpoint_id, lambda engine: endpoints.update(
        engine, webhook_endpoint_id, config(request).clock(), caller.actor, **changes))


@router.post("/{webhook_endpoint_id}/disable")
def disable_webhook_endpoint(webhook_endpoint_id: str, request: Request,
                             caller: Authorized) -> dict[str, Any]:
    return _write(request, caller, webhook_endpoint_id, lambda engine: endpoints.update(
        engine, webhook_endpoint_id, config(request).clock(), caller.actor, enabled=False))


@router.post("/{webhook_endpoint_id}/enable")
def enable_webhook_endpoint(webhook_endpoint_id: str, request: Request,
                            caller: Authorized) -> dict[str, Any]:
    return _write(request, caller, webhook_endpoint_id, lambda engine: endpoints.update(
        engine, webhook_endpoint_id, config(request).clock(), caller.actor, enabled=True))


@router.delete("/{webhook_endpoint_id}")
def delete_webhook_endpoint(webhook_endpoint_id: str, request: Request,
                            caller: Authorized) -> dict[str, Any]:
    """Refused: an endpoint's attempts are kept, and so is the endpoint (disable it)."""
    _admin(caller, request)
    raise bad_request([f"path.webhook_endpoint_id: endpoints are kept with their attempts; "
                       f"disable {webhook_endpoint_id!r} instead "
                       f"(POST /webhook_endpoints/{webhook_endpoint_id}/disable)"])
