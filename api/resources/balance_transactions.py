"""Orb's customer balance transactions: ``GET|POST /customers/{customer_id}/
balance_transactions`` and the ``external_customer_id`` variant, over
invoicing/balance.py (docs/api.md#customer-balance).

Orb's shape (``CustomerBalanceTransaction``): ``amount``, ``starting_balance`` and
``ending_balance`` are decimal strings in the currency's minor unit; a negative balance
is credit the customer holds; ``type`` says which way the balance moved. Newest first,
as Orb lists them. A customer's ``balance`` (the customer shape) is its balance in its
one currency; ``0.00`` before any transaction."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from api.access import Authorized, Caller, IdempotentRoute, audit, config
from api.errors import bad_request, not_found
from api.pages import Cursor, Limit, page
from api.shapes import instant
from api.writes import view
from billing import money
from billing.catalog import Customer
from invoicing import balance

router = APIRouter(prefix="/customers", tags=["balance"], route_class=IdempotentRoute)


class BalanceTransactionCreate(BaseModel):
    """Orb's body; ``currency`` is this project's (a customer may hold balances in
    several): required when the customer has no balance yet or more than one."""

    model_config = ConfigDict(extra="forbid")
    amount: Decimal
    type: Literal["increment", "decrement"]
    description: str | None = None
    currency: str | None = None


def shaped(entry: balance.Entry) -> dict[str, Any]:
    t = entry.transaction
    return {
        "id": t.transaction_id, "action": t.action,
        "amount": _cash(t.amount, t.currency),
        "starting_balance": _cash(entry.starting_balance, t.currency),
        "ending_balance": _cash(entry.ending_balance, t.currency),
        "type": t.type, "currency": t.currency,
        "created_at": instant(t.created_at), "description": t.description,
        "invoice": {"id": t.invoice_number} if t.invoice_number else None,
        "credit_note": {"id": t.credit_note_number} if t.credit_note_number else None,
    }


def _cash(value: Decimal, currency: str) -> str:
    return f"{money.quantize(value, currency):f}"


def customer_balance(transactions: list[balance.Transaction], customer_id: str) -> str:
    """The customer shape's ``balance``: in the one currency it has transactions in."""
    found = {c: v for (who, c), v in balance.balances(transactions).items()
             if who == customer_id}
    if len(found) != 1:
        return "0.00"
    ((currency, value),) = found.items()
    return _cash(value, currency)


def _customer(request: Request, caller: Caller, customer_id: str | None,
              external_id: str | None) -> Customer:
    current = view(request, caller)
    found = (current.customer(customer_id) if customer_id is not None
             else current.customer_by_external_id(external_id or ""))
    if found is None:
        raise not_found("customer", customer_id or external_id or "")
    return found


def _list(request: Request, caller: Caller, customer: Customer, cursor: str | None,
          limit: int, gte: datetime | None, lt: datetime | None) -> dict[str, Any]:
    entries = [e for e in balance.entries(balance.read(caller.deployment.lake, customer.id))
               if (gte is None or e.transaction.created_at >= gte)
               and (lt is None or e.transaction.created_at < lt)]
    return page(entries[::-1], cursor, limit, lambda e: e.transaction.transaction_id, shaped)


def _create(request: Request, caller: Caller, customer: Customer,
            body: BalanceTransactionCreate) -> dict[str, Any]:
    lake = caller.deployment.lake
    held = sorted({c for (who, c) in balance.balances(balance.read(lake, customer.id))
                   if who == customer.id})
    currency = body.currency or (held[0] if len(held) == 1 else None)
    if currency is None:
        raise bad_request(["body.currency: required: the customer holds balances in "
                           f"{', '.join(held) or 'no currency yet'}"])
    try:
        entry = balance.adjust(lake, customer.id, currency, body.amount, body.type,
                               body.description, config(request).clock())
    except ValueError as exc:
        raise bad_request([f"body.amount: {exc}"]) from exc
    after = shaped(entry)
    audit(request, caller, "balance_transaction", entry.transaction.transaction_id, None,
          after)
    return after


@router.get("/{customer_id}/balance_transactions")
def list_balance_transactions(
        customer_id: str, request: Request, caller: Authorized, cursor: Cursor = None,
        limit: Limit = 20,
        operation_time_gte: Annotated[datetime | None, Query(alias="operation_time[gte]")] = None,
        operation_time_lt: Annotated[datetime | None, Query(alias="operation_time[lt]")] = None,
) -> dict[str, Any]:
    return _list(request, caller, _customer(request, caller, customer_id, None), cursor,
                 limit, operation_time_gte, operation_time_lt)


@router.post("/{customer_id}/balance_transactions")
def create_balance_transaction(customer_id: str, body: BalanceTransactionCreate,
                               request: Request, caller: Authorized) -> dict[str, Any]:
    return _create(request, caller, _customer(request, caller, customer_id, None), body)


@router.get("/external_customer_id/{external_customer_id}/balance_transactions")
def list_balance_transactions_by_external_id(
        external_customer_id: str, request: Request, caller: Authorized,
        cursor: Cursor = None, limit: Limit = 20) -> dict[str, Any]:
    return _list(request, caller, _customer(request, caller, None, external_customer_id),
                 cursor, limit, None, None)


@router.post("/external_customer_id/{external_customer_id}/balance_transactions")
def create_balance_transaction_by_external_id(
        external_customer_id: str, body: BalanceTransactionCreate, request: Request,
        caller: Authorized) -> dict[str, Any]:
    return _create(request, caller, _customer(request, caller, None, external_customer_id),
                   body)
