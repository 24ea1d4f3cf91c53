"""Credit top-ups: Orb's ``/customers/{id}/credits/top_ups`` (create, list, delete), by Orb
id and by external id (docs/api.md#top-ups), over ``state.top_ups`` through
``invoicing.top_ups``, which evaluates them too (a grant and a purchase invoice when the
balance is at or below the threshold)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Request
from pydantic import BaseModel, ConfigDict, Field

from api.access import Authorized, Caller, IdempotentRoute, audit, config, found, path_id
from api.errors import bad_request, not_found
from api.pages import Cursor, Limit, page
from billing.catalog import Customer
from invoicing import top_ups
from state import StateError, StateStore
from state import top_ups as stored
from state.top_ups import TopUp

router = APIRouter(prefix="/customers", tags=["credits"], route_class=IdempotentRoute)


class InvoiceSettings(BaseModel):
    """Orb's ``TopUpInvoiceSettings``; ``require_successful_payment`` is not taken (a
    block here is drawn whether its invoice is paid or not)."""

    model_config = ConfigDict(extra="forbid")
    auto_collection: bool
    net_terms: Annotated[int, Field(ge=0)]
    memo: str | None = None
    require_successful_payment: Literal[False] | None = None


class TopUpCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: str
    currency: str
    invoice_settings: InvoiceSettings
    per_unit_cost_basis: str
    threshold: str
    active_from: datetime | None = None
    expires_after: int | None = None
    expires_after_unit: Literal["day", "month"] | None = None


def _store(caller: Caller) -> StateStore:
    return StateStore.open(caller.deployment.state_store_url)


@path_id("top_up_id")
def _tenants_top_up(request: Request, caller: Caller, top_up_id: str) -> TopUp:
    """An active top-up of this tenant (a replaced or deleted one is gone, as in Orb)."""
    with _store(caller) as store:
        top_up = next((t for t in stored.active(store.engine) if t.top_up_id == top_up_id),
                      None)
    if top_up is None:
        raise not_found("top-up", top_up_id)
    return top_up


def _create(request: Request, caller: Caller, tasks: BackgroundTasks, customer: Customer,
            body: TopUpCreate) -> dict[str, Any]:
    now = config(request).clock()
    problems: list[str] = []
    amount, threshold, basis = (stored.decimal_field(getattr(body, name), f"body.{name}",
                                                     problems)
                                for name in ("amount", "threshold", "per_unit_cost_basis"))
    active_from = body.active_from or now
    if active_from.tzinfo is None:
        problems.append("body.active_from: give an instant with its offset")
    if problems:
        raise bad_request(problems)
    new = TopUp(f"top_up_{secrets.token_hex(8)}", customer.id, body.currency, amount,
                threshold, basis, body.invoice_settings.model_dump(), active_from,
                body.expires_after, body.expires_after_unit, now)
    try:
        replaced = top_ups.create(caller.deployment, new, caller.actor)
        with _store(caller) as store:
            [created] = [t for t in stored.active(store.engine, [customer.id])
                         if t.top_up_id == new.top_up_id]
    except StateError as exc:
        raise bad_request(exc.problems) from exc
    after = created.as_orb()
    audit(request, caller, "credit_top_up", created.top_up_id, None,
          after | {"replaced": replaced})
    # the balance may be at or below the threshold already
    tasks.add_task(top_ups.evaluate_logged, caller.deployment, now, [customer.id])
    return after


def _listed(caller: Caller, customer: Customer, cursor: str | None, limit: int
            ) -> dict[str, Any]:
    with _store(caller) as store:
        active = stored.active(store.engine, [customer.id])
    return page(active, cursor, limit, lambda t: t.top_up_id, lambda t: t.as_orb())


def _delete(request: Request, caller: Caller, customer: Customer, top_up_id: str) -> None:
    with _store(caller) as store:
        before = next((t for t in stored.active(store.engine, [customer.id])
                       if t.top_up_id == top_up_id), None)
        if before is None or not stored.end(store.engine, customer.id, top_up_id,
                                            caller.actor, config(request).clock()):
            raise not_found("top-up", top_up_id)
    audit(request, caller, "credit_top_up", top_up_id, before.as_orb(), None)


@router.post("/{customer_id}/credits/top_ups")
def create_top_up(customer_id: str, body: TopUpCreate, request: Request, caller: Authorized,
                  tasks: BackgroundTasks) -> dict[str, Any]:
    """A new top-up for the customer and currency, replacing the active one (Orb's rule)."""
    return _create(request, caller, tasks, found(request, "customer_id"), body)


@router.get("/{customer_id}/credits/top_ups")
def list_top_ups(customer_id: str, request: Request, caller: Authorized,
                 cursor: Cursor = None, limit: Limit = 20) -> dict[str, Any]:
    return _listed(caller, found(request, "customer_id"), cursor, limit)


@router.delete("/{customer_id}/credits/top_ups/{top_up_id}")
def delete_top_up(customer_id: str, top_up_id: str, request: Request,
                  caller: Authorized) -> None:
    _delete(request, caller, found(request, "customer_id"), top_up_id)


@router.post("/external_customer_id/{external_customer_id}/credits/top_ups")
def create_top_up_by_external_id(external_customer_id: str, body: TopUpCreate,
                                 request: Request, caller: Authorized,
                                 tasks: BackgroundTasks) -> dict[str, Any]:
    return _create(request, caller, tasks, found(request, "external_customer_id"),
                   body)


@router.get("/external_customer_id/{external_customer_id}/credits/top_ups")
def list_top_ups_by_external_id(external_customer_id: str, request: Request,
                                caller: Authorized, cursor: Cursor = None,
                                limit: Limit = 20) -> dict[str, Any]:
    return _listed(caller, found(request, "external_customer_id"), cursor, limit)


@router.delete("/external_customer_id/{external_customer_id}/credits/top_ups/{top_up_id}")
def delete_top_up_by_external_id(external_customer_id: str, top_up_id: str,
                                 request: Request, caller: Authorized) -> None:
    _delete(request, caller, found(request, "external_customer_id"), top_up_id)
