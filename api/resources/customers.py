"""Customers: Orb's ``/customers`` over the state store (docs/api.md#customers).

Orb's ``id`` is the store's ``customer_id`` (generated here, ``cus_...``, for a customer
created through the API); ``external_customer_id`` is the store's, the id your systems
send events with."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from api.access import Authorized, Caller, IdempotentRoute, audit, path_id
from api.errors import bad_request, not_found
from api.pages import Cursor, Limit, page
from api.resources.balance_transactions import customer_balance
from api.shapes import customer as shaped
from api.views import View
from api.writes import apply, body_field, validated, view
from billing.catalog import Catalog, Customer
from invoicing import balance
from state import AddCustomer, UpdateCustomer

router = APIRouter(prefix="/customers", tags=["customers"], route_class=IdempotentRoute)


class CustomerCreate(BaseModel):
    """Orb's create-customer body, the fields this project keeps."""

    model_config = ConfigDict(extra="forbid")
    name: str
    email: str
    external_customer_id: str | None = None
    timezone: str | None = None
    net_terms: int | None = None  # this project's: days from invoice to due date
    # Orb's AddressInput and CustomerTaxID, checked by the customer model
    billing_address: dict[str, Any] | None = None
    shipping_address: dict[str, Any] | None = None
    tax_id: dict[str, Any] | None = None


class CustomerUpdate(BaseModel):
    """A field sent as null is cleared (email, external_customer_id, the addresses and the
    tax id), one left out kept."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    email: str | None = None
    external_customer_id: str | None = None
    timezone: str | None = None
    net_terms: int | None = None
    billing_address: dict[str, Any] | None = None
    shipping_address: dict[str, Any] | None = None
    tax_id: dict[str, Any] | None = None


CLEARABLE = ("email", "external_customer_id", "billing_address", "shipping_address", "tax_id")


def _found(current: View, customer_id: str) -> Customer:
    found = current.customer(customer_id)
    if found is None:
        raise not_found("customer", customer_id)
    return found


@path_id("customer_id")
def _tenants_customer(request: Request, caller: Caller, customer_id: str) -> Customer:
    return _found(view(request, caller), customer_id)


@path_id("external_customer_id")
def _by_external_id(request: Request, caller: Caller, external_customer_id: str) -> Customer:
    found = view(request, caller).customer_by_external_id(external_customer_id)
    if found is None:
        raise not_found("customer with external_customer_id", external_customer_id)
    return found


@router.post("")
def create_customer(body: CustomerCreate, request: Request, caller: Authorized) -> dict[str, Any]:
    values = body.model_dump(exclude_none=True)
    new = validated(Customer, {"id": f"cus_{secrets.token_hex(8)}", **values})
    apply(caller, [AddCustomer(new, caller.actor, None, body_field)], Catalog())
    current = view(request, caller)
    after = shaped(current, _found(current, new.id))
    audit(request, caller, "customer", new.id, None, after)
    return after


@router.get("")
def list_customers(request: Request, caller: Authorized,
                   cursor: Cursor = None, limit: Limit = 20) -> dict[str, Any]:
    current = view(request, caller)
    transactions = balance.read(caller.deployment.lake)
    return page(current.customers[::-1], cursor, limit, lambda c: c.id,
                lambda c: {**shaped(current, c),
                           "balance": customer_balance(transactions, c.id)})


@router.get("/external_customer_id/{external_customer_id}")
def fetch_customer_by_external_id(external_customer_id: str, request: Request, caller: Authorized,
                                 ) -> dict[str, Any]:
    current = view(request, caller)
    found = current.customer_by_external_id(external_customer_id)
    if found is None:
        raise not_found("customer with external_customer_id", external_customer_id)
    return _with_balance(caller, shaped(current, found))


@router.get("/{customer_id}")
def fetch_customer(customer_id: str, request: Request, caller: Authorized) -> dict[str, Any]:
    current = view(request, caller)
    return _with_balance(caller, shaped(current, _found(current, customer_id)))


def _with_balance(caller: Caller, shown: dict[str, Any]) -> dict[str, Any]:
    """Orb's ``balance``: the customer's balance (api/resources/balance_transactions.py)."""
    transactions = balance.read(caller.deployment.lake, shown["id"])
    return {**shown, "balance": customer_balance(transactions, shown["id"])}


@router.put("/external_customer_id/{external_customer_id}")
def update_customer_by_external_id(external_customer_id: str, body: CustomerUpdate,
                                   request: Request, caller: Authorized
                                   ) -> dict[str, Any]:
    found = view(request, caller).customer_by_external_id(external_customer_id)
    if found is None:
        raise not_found("customer with external_customer_id", external_customer_id)
    return _update(found.id, body, request, caller)


@router.put("/{customer_id}")
def update_customer(customer_id: str, body: CustomerUpdate, request: Request, caller: Authorized,
                   ) -> dict[str, Any]:
    return _update(customer_id, body, request, caller)


def _update(customer_id: str, body: CustomerUpdate, request: Request,
            caller: Caller) -> dict[str, Any]:
    """A new version of the customer, in effect now, with the fields sent."""
    before_view = view(request, caller)
    before = shaped(before_view, _found(before_view, customer_id))
    values = {field: getattr(body, field) for field in body.model_fields_set}
    cleared = [f for f, v in values.items() if v is None and f not in CLEARABLE]
    if cleared:
        raise bad_request([f"body.{f}: cannot be null; leave it out to keep it"
                           for f in sorted(cleared)])
    if not values:
        return before
    apply(caller, [UpdateCustomer(customer_id, values, caller.actor, None, body_field)],
          Catalog())
    current = view(request, caller)
    after = shaped(current, _found(current, customer_id))
    audit(request, caller, "customer", customer_id, before, after)
    return after
