"""Credits: Orb's ``/customers/{id}/credits`` (the credit blocks and their balances), its
``/credits/ledger`` and ``/credits/ledger_entry``, by Orb id and by external id
(docs/api.md#credits).

A credit block is a grant (``credit_grants``); the ledger is ``invoicing.credit_grants.
ledger``: the grants, the billing runs' drawdowns and expiries, and the entries made by
hand. Writes go through ``invoicing.credit_grants`` as ``orb credits grant|decrement|
amend|expire|void`` make them. Orb's ledger amounts and balances are JSON numbers, not strings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from api.access import Authorized, Caller, IdempotentRoute, audit, config
from api.errors import bad_request, not_found, validation_problems
from api.pages import Cursor, Limit, page
from api.resources.subscriptions import local_day
from api.shapes import instant
from api.views import View
from api.writes import view
from billing import money, periods
from billing.catalog import Customer
from billing.credits import CreditsError, Grant, draw_key
from invoicing import credit_grants as credits
from invoicing import top_ups
from pricing_sql.run_catalog import current_catalog
from storage.duck import connect

router = APIRouter(prefix="/customers", tags=["credits"], route_class=IdempotentRoute)

EntryType = Literal["increment", "decrement", "expiration_change", "credit_block_expiry",
                    "void", "void_initiated", "amendment"]
# this project's ledger entry types as Orb's
ORB_TYPES = {"grant": "increment", "drawdown": "decrement", "expiry": "credit_block_expiry",
             "decrement": "decrement", "amendment": "amendment",
             "expiration_change": "expiration_change", "void": "void"}


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    currency: str | None = None
    description: str | None = None
    # Orb's metadata is not kept: only an empty one is taken
    metadata: dict[str, str | None] | None = None


class Increment(_Entry):
    entry_type: Literal["increment"]
    amount: Decimal
    effective_date: str | None = None
    expiry_date: str | None = None
    per_unit_cost_basis: Decimal | None = None


class Decrement(_Entry):
    entry_type: Literal["decrement"]
    amount: Decimal


class ExpirationChange(_Entry):
    entry_type: Literal["expiration_change"]
    target_expiry_date: date
    block_id: str
    amount: Decimal | None = None  # the whole block's only
    expiry_date: str | None = None


class Void(_Entry):
    entry_type: Literal["void"]
    amount: Decimal  # what is left of the block: a void takes it whole
    block_id: str
    void_reason: Literal["refund"] | None = None


class Amendment(_Entry):
    entry_type: Literal["amendment"]
    amount: Decimal  # given back to the block: the reversal of a decrement
    block_id: str


LedgerEntry = TypeAdapter(Annotated[Increment | Decrement | ExpirationChange | Void | Amendment,
                                    Field(discriminator="entry_type")])


def _customer(current: View, customer_id: str | None, external_id: str | None) -> Customer:
    found = (current.customer(customer_id) if customer_id is not None
             else current.customer_by_external_id(external_id or ""))
    if found is None:
        raise not_found("customer", customer_id or external_id or "")
    return found


def _number(value: Decimal) -> float:
    """Orb's ledger amounts are JSON numbers; amounts here are whole minor units, which a
    double holds exactly as a decimal of up to 15 digits."""
    return float(value)


def _midnight(day: date | None, customer: Customer) -> str | None:
    return None if day is None else instant(periods.local_midnight(day, customer.timezone))


def _cost(grant: Grant) -> str:
    """The cost basis without the lake column's trailing zeros: ``1``, ``0.2``."""
    return f"{grant.cost_basis.normalize():f}"


def _block(grant: Grant, customer: Customer) -> dict[str, Any]:
    """Orb's AffectedBlock."""
    return {"id": grant.grant_id, "expiry_date": _midnight(grant.expiry_date, customer),
            "filters": [], "per_unit_cost_basis": _cost(grant)}


def _blocks(caller: Caller) -> dict[str, Grant]:
    return {g.grant_id: g for g in credits.read_grants(caller.deployment.lake)}


def _shaped_entry(row: credits.LedgerRow, grant: Grant, customer: Customer) -> dict[str, Any]:
    kind = ORB_TYPES[row.entry_type]
    shown: dict[str, Any] = {
        "id": row.entry_id, "entry_type": kind, "entry_status": "committed",
        "amount": _number(row.amount), "currency": row.currency,
        "created_at": instant(row.created_at) or _midnight(row.entry_date, customer),
        "credit_block": _block(grant, customer),
        "customer": {"id": customer.id,
                     "external_customer_id": customer.external_customer_id},
        "description": row.description or None,
        "starting_balance": _number(row.balance - row.amount),
        "ending_balance": _number(row.balance),
        "ledger_sequence_number": row.sequence, "metadata": {}}
    if kind == "increment":
        shown["created_invoices"] = None
    elif kind == "decrement":
        shown |= {"event_id": None, "invoice_id": row.invoice_id, "price_id": None}
    elif kind == "expiration_change":
        shown["new_block_expiry_date"] = _midnight(row.new_expiry_date, customer)
    elif kind == "void":
        # Orb's one void reason; any other reason stays in the description
        shown |= {"void_amount": _number(-row.amount),
                  "void_reason": "refund" if row.description == "refund" else None}
    return shown


def _ledger(caller: Caller, customer: Customer) -> list[dict[str, Any]]:
    """The customer's ledger in Orb's shape, newest first, as Orb lists it."""
    blocks = _blocks(caller)
    rows = credits.ledger(connect(), caller.deployment.lake, customer.id)
    return [_shaped_entry(row, blocks[row.grant_id], customer) for row in reversed(rows)]


def _credit_blocks(request: Request, caller: Caller, customer: Customer, currency: str | None,
                   include_all: bool) -> list[dict[str, Any]]:
    """Orb's credit blocks in draw order; without ``include_all``, only those in effect
    today (the customer's) with a balance."""
    today = view(request, caller).today(customer)
    balances = credits.balances_now(connect(), caller.deployment.lake)
    grants = sorted((g for g in credits.read_grants(caller.deployment.lake)
                     if g.customer_id == customer.id
                     and (currency is None or g.currency == currency.upper())),
                    key=lambda g: (g.currency, *draw_key(g)))
    return [{"id": g.grant_id, "balance": _number(balances[g.grant_id]),
             "effective_date": _midnight(g.effective_date, customer),
             "expiry_date": _midnight(g.expiry_date, customer), "filters": [],
             "maximum_initial_balance": None, "metadata": {},
             "per_unit_cost_basis": _cost(g), "status": "active",
             "credit_block_source": "manual", "credit_allocation": None,
             "credit_commitment": None}
            for g in grants
            if include_all or (balances[g.grant_id] > 0
                               and (g.expiry_date is None or today < g.expiry_date))]


def _write(request: Request, caller: Caller, customer: Customer,
           body: dict[str, Any] | None) -> dict[str, Any]:
    """Add a ledger entry as ``orb credits grant|decrement|amend|expire|void`` do; audited. The
    answer is the entry made (a decrement's last, as Orb answers)."""
    try:
        entry = LedgerEntry.validate_python(body if body is not None else {})
    except ValidationError as exc:
        raise bad_request(validation_problems(
            {**error, "loc": ("body", *error["loc"][1:])} for error in exc.errors())) from exc
    if entry.metadata:
        raise bad_request(["body.metadata: not kept by this server; send none or {}"])
    lake, now = caller.deployment.lake, config(request).clock()
    today = view(request, caller).today(customer)
    description = entry.description or ""
    try:
        made: list[str]
        if isinstance(entry, Increment):
            made = [_increment(caller, customer, entry, today).grant_id]
        elif isinstance(entry, Decrement):
            currency = entry.currency or _only_currency(caller, customer)
            made = [e.entry_id for e in credits.decrement(
                connect(), lake, customer.id, currency, entry.amount, today, description,
                caller.actor, now)]
        elif isinstance(entry, ExpirationChange):
            _whole_block(caller, customer, entry.block_id, entry.amount, "expiration_change")
            made = [credits.change_expiry(lake, customer.id, entry.block_id,
                                          entry.target_expiry_date, today, description,
                                          caller.actor, now).entry_id]
        elif isinstance(entry, Amendment):
            _block_of(caller, customer, entry.block_id)
            made = [credits.amend(connect(), lake, customer.id, entry.block_id, entry.amount,
                                  today, description, caller.actor, now).entry_id]
        else:
            _whole_block(caller, customer, entry.block_id, entry.amount, "void")
            made = [credits.void(connect(), lake, customer.id, entry.block_id, today,
                                 entry.void_reason or description, caller.actor,
                                 now).entry_id]
    except (CreditsError, credits.GrantError) as exc:
        raise bad_request([p if p.startswith("body.") else f"body: {p}"
                           for p in exc.problems]) from exc
    shown = {e["id"]: e for e in _ledger(caller, customer) if e["id"] in made}
    for entry_id in made:  # the ledger is append-only: an entry has no "before"
        audit(request, caller, "credit_ledger_entry", entry_id, None, shown[entry_id])
    # the balance changed: a top-up at or below its threshold fires (after the entry)
    top_ups.evaluate_logged(caller.deployment, now, [customer.id])
    return shown[made[-1]]


def _only_currency(caller: Caller, customer: Customer) -> str:
    """Orb's default currency: the one the customer is billed in, when it is one."""
    billed = credits.customer_currencies(current_catalog(caller.deployment), customer.id)
    if len(billed) != 1:
        raise bad_request([f"body.currency: required: customer {customer.id!r} is billed in "
                           f"{', '.join(sorted(billed)) or 'no currency yet'}"])
    return next(iter(billed))


def _increment(caller: Caller, customer: Customer, entry: Increment, today: date) -> Grant:
    effective = (local_day(entry.effective_date, customer, "effective_date")
                 if entry.effective_date else today)
    expiry = (local_day(entry.expiry_date, customer, "expiry_date")
              if entry.expiry_date else None)
    return credits.record_grant(
        caller.deployment.lake, current_catalog(caller.deployment), customer.id,
        entry.currency or _only_currency(caller, customer), entry.amount,
        entry.per_unit_cost_basis if entry.per_unit_cost_basis is not None else Decimal(0),
        effective, expiry, entry.description or "")


def _block_of(caller: Caller, customer: Customer, block_id: str) -> Grant:
    grant = _blocks(caller).get(block_id)
    if grant is None or grant.customer_id != customer.id:
        raise bad_request([f"body.block_id: customer {customer.id!r} has no credit block "
                           f"{block_id!r}"])
    return grant


def _whole_block(caller: Caller, customer: Customer, block_id: str, amount: Decimal | None,
                 kind: str) -> None:
    """An expiration change or a void of a whole block only: ``amount``, when given, must
    be what is left of it."""
    grant = _block_of(caller, customer, block_id)
    left = credits.balances_now(connect(), caller.deployment.lake)[block_id]
    if amount is not None and amount != left:
        raise bad_request([f"body.amount: a {kind} here takes the whole block: what is left "
                           f"of {block_id!r}, {money.quantize(left, grant.currency)}, not "
                           f"{amount}"])


def _listed_ledger(request: Request, caller: Caller, customer: Customer, cursor: str | None,
                   limit: int, entry_type: str | None, entry_status: str | None,
                   currency: str | None, minimum_amount: Decimal | None) -> dict[str, Any]:
    refused = sorted(set(request.query_params) - LEDGER_FILTERS)
    if refused:
        raise bad_request([f"query.{name}: not a filter this server takes (docs/api.md "
                           "lists what differs from Orb)" for name in refused])
    chosen = [e for e in _ledger(caller, customer)
              if (entry_type is None or e["entry_type"] == entry_type)
              and (entry_status is None or e["entry_status"] == entry_status)
              and (currency is None or e["currency"] == currency.upper())
              and (minimum_amount is None or abs(Decimal(str(e["amount"]))) >= minimum_amount)]
    return page(chosen, cursor, limit, lambda e: e["id"], lambda e: e)


LEDGER_FILTERS = {"cursor", "limit", "entry_type", "entry_status", "currency",
                  "minimum_amount"}
BLOCK_FILTERS = {"cursor", "limit", "currency", "include_all_blocks"}
EntryStatus = Literal["committed", "pending"]


def _listed_blocks(request: Request, caller: Caller, customer: Customer, cursor: str | None,
                   limit: int, currency: str | None, include_all_blocks: bool
                   ) -> dict[str, Any]:
    refused = sorted(set(request.query_params) - BLOCK_FILTERS)
    if refused:
        raise bad_request([f"query.{name}: not a filter this server takes (docs/api.md "
                           "lists what differs from Orb)" for name in refused])
    blocks = _credit_blocks(request, caller, customer, currency, include_all_blocks)
    return page(blocks, cursor, limit, lambda b: b["id"], lambda b: b)


# Orb's external-id routes first: /external_customer_id/... is not a customer id
@router.get("/external_customer_id/{external_customer_id}/credits")
def list_credits_by_external_id(
        external_customer_id: str, request: Request, caller: Authorized,
        cursor: Cursor = None, limit: Limit = 20, currency: str | None = None,
        include_all_blocks: bool = False) -> dict[str, Any]:
    customer = _customer(view(request, caller), None, external_customer_id)
    return _listed_blocks(request, caller, customer, cursor, limit, currency,
                          include_all_blocks)


@router.get("/external_customer_id/{external_customer_id}/credits/ledger")
def list_ledger_by_external_id(
        external_customer_id: str, request: Request, caller: Authorized,
        cursor: Cursor = None, limit: Limit = 20, entry_type: EntryType | None = None,
        entry_status: EntryStatus | None = None, currency: str | None = None,
        minimum_amount: Annotated[Decimal | None, Query()] = None) -> dict[str, Any]:
    customer = _customer(view(request, caller), None, external_customer_id)
    return _listed_ledger(request, caller, customer, cursor, limit, entry_type, entry_status,
                          currency, minimum_amount)


@router.post("/external_customer_id/{external_customer_id}/credits/ledger_entry")
def create_entry_by_external_id(
        external_customer_id: str, request: Request, caller: Authorized,
        body: Annotated[dict[str, Any] | None, Body()] = None) -> dict[str, Any]:
    customer = _customer(view(request, caller), None, external_customer_id)
    return _write(request, caller, customer, body)


@router.get("/{customer_id}/credits")
def list_credits(customer_id: str, request: Request, caller: Authorized,
                 cursor: Cursor = None, limit: Limit = 20, currency: str | None = None,
                 include_all_blocks: bool = False) -> dict[str, Any]:
    customer = _customer(view(request, caller), customer_id, None)
    return _listed_blocks(request, caller, customer, cursor, limit, currency,
                          include_all_blocks)


@router.get("/{customer_id}/credits/ledger")
def list_ledger(customer_id: str, request: Request, caller: Authorized,
                cursor: Cursor = None, limit: Limit = 20, entry_type: EntryType | None = None,
                entry_status: EntryStatus | None = None, currency: str | None = None,
                minimum_amount: Annotated[Decimal | None, Query()] = None) -> dict[str, Any]:
    customer = _customer(view(request, caller), customer_id, None)
    return _listed_ledger(request, caller, customer, cursor, limit, entry_type, entry_status,
                          currency, minimum_amount)


@router.post("/{customer_id}/credits/ledger_entry")
def create_entry(customer_id: str, request: Request, caller: Authorized,
                 body: Annotated[dict[str, Any] | None, Body()] = None) -> dict[str, Any]:
    """The body is read after the customer is found, so another tenant's customer is a
    404 whatever the body."""
    customer = _customer(view(request, caller), customer_id, None)
    return _write(request, caller, customer, body)
