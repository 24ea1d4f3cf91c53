"""Invoices: Orb's ``/invoices`` over the lake's issued documents and the billed months'
drafts (``api/invoices.py``), in Orb's Invoice shape (docs/api.md#endpoints).

Void and mark paid change an issued invoice's status through
``invoicing.documents.change_status``, as ``orb invoices void|pay`` do."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict

from api import costs, invoices
from api.access import Authorized, Caller, IdempotentRoute, audit, config, path_id
from api.errors import ApiError, bad_request, not_found
from api.pages import Cursor, Limit, page
from api.resources.balance_transactions import shaped as balance_shape
from api.shapes import instant, party
from api.shapes import price as shaped_price
from api.shapes import status as status_of
from api.views import View, current_period
from api.writes import view
from billing import money, periods
from billing.catalog.prices import Price
from invoicing import documents, invoice_metadata, issuing, one_off
from invoicing.document_model import REASON_LABELS, DocumentStatus
from payments import received
from pricing_sql.customer_rating import RatingRefused
from storage.billing_runs import MixedBillingRun
from storage.duck import connect
from webhooks.publish import after_lake_write

router = APIRouter(prefix="/invoices", tags=["invoices"], route_class=IdempotentRoute)

Status = Literal["draft", "issued", "paid", "void", "synced"]
# Orb's list filters this server takes; any other is refused rather than ignored
FILTERS = {"cursor", "limit", "customer_id", "external_customer_id", "subscription_id",
           "status", "status[]", "invoice_date[gt]", "invoice_date[gte]",
           "invoice_date[lt]", "invoice_date[lte]", "due_date", "due_date[gt]",
           "due_date[lt]"}


class MarkPaid(BaseModel):
    model_config = ConfigDict(extra="forbid")
    payment_received_date: date
    external_id: str | None = None
    notes: str | None = None
    # this project's: a payment of this much is recorded (partial, or over: the excess to
    # the customer's balance); paid once payments reach the amount due. Without it, the
    # invoice is marked paid as Orb does, no payment recorded.
    amount: Decimal | None = None


def _all(request: Request, caller: Caller) -> tuple[View, list[invoices.Invoice]]:
    try:
        return view(request, caller), invoices.read(caller.deployment.lake)
    except MixedBillingRun as exc:
        raise ApiError(409, str(exc)) from exc


def _found(found: list[invoices.Invoice], invoice_id: str) -> invoices.Invoice:
    invoice = next((i for i in found if i.id == invoice_id), None)
    if invoice is None:
        raise not_found("invoice", invoice_id)
    return invoice


@path_id("invoice_id")
def _tenants_invoice(request: Request, caller: Caller, invoice_id: str) -> invoices.Invoice:
    return _found(_all(request, caller)[1], invoice_id)


def _amount(value: Decimal, currency: str) -> str:
    return str(money.quantize(value, currency))


def _tax_amount(tax: dict[str, Any], currency: str) -> dict[str, Any]:
    """Orb's TaxAmount from an ``invoice_taxes`` row of the line."""
    return {"amount": _amount(tax["amount"], currency),
            "tax_rate_description": tax["description"],
            "tax_rate_percentage": f"{tax['percentage'].normalize():f}",
            "tax_reason": tax["reason"]}


def _catalog_price(current: View, line: invoices.LinePrice | None) -> Price | None:
    """The line's price in the catalog as it is now; None once the catalog no longer has
    its plan version or price."""
    plan = current.plan(line.plan_id) if line is not None else None
    if plan is None or line is None or not 1 <= line.plan_version <= len(plan.versions) + 1:
        return None
    return next((p for p in plan.version(line.plan_version).prices if p.id == line.price_id),
                None)


def shaped(current: View, invoice: invoices.Invoice) -> dict[str, Any]:
    """Orb's Invoice. Days (invoice date, due date, service periods) are the customer's,
    given as the UTC instant of their local midnight."""
    head = invoice.head
    customer = current.customer(head.customer_id)
    zone = customer.timezone if customer else "UTC"

    def midnight(day: date | None) -> str | None:
        return None if day is None else instant(periods.local_midnight(day, zone))

    def cash(value: Decimal) -> str:
        return _amount(value, head.currency)

    subscriptions = {p.subscription_id for p in invoice.prices.values()}
    line_items: list[dict[str, Any]] = []
    for line in invoice.lines:
        if line.kind != "line":
            continue  # adjustments are in the invoice's total, not on lines
        line_price = invoice.prices.get(line.line_key)
        catalog_price = _catalog_price(current, line_price)
        line_items.append({
            "id": line.line_key, "name": line.name,
            "quantity": None if line.quantity is None else f"{line.quantity.normalize():f}",
            "amount": cash(line.amount), "subtotal": cash(line.amount),
            "adjusted_subtotal": cash(line.amount), "credits_applied": "0",
            "partially_invoiced_amount": "0", "adjustments": [], "sub_line_items": [],
            "tax_amounts": [_tax_amount(tax, head.currency)
                            for tax in (line_price.taxes if line_price else ())],
            "filter": None, "grouping": None, "usage_customer_ids": None,
            "start_date": midnight(line.service_start), "end_date": midnight(line.service_end),
            "price": None if catalog_price is None
            else shaped_price(current, catalog_price, head.currency)})
    issued = invoice.status != "draft"
    return {
        "id": invoice.id,
        "invoice_number": invoice.number or "",
        "status": invoice.status,
        "currency": head.currency,
        "customer": {"id": head.customer_id,
                     "external_customer_id": customer.external_customer_id if customer
                     else None},
        "subscription": {"id": next(iter(subscriptions))} if len(subscriptions) == 1 else None,
        "invoice_date": midnight(head.invoice_date),
        "due_date": midnight(head.due_date),
        "created_at": instant(invoice.issued_at) or midnight(head.invoice_date),
        "issued_at": instant(invoice.issued_at),
        "paid_at": instant(invoice.changed_at.get("paid")),
        "voided_at": instant(invoice.changed_at.get("void")),
        "subtotal": cash(head.subtotal),
        "total": cash(head.total),
        # Orb's: the total less the customer balance applied at issue (and, here, credit
        # notes issued while unpaid); prepaid credits are in the total already
        "amount_due": cash(invoice.amounts.amount_due if invoice.amounts else head.total),
        "line_items": line_items,
        "hidden_line_item_count": 0,
        "credit_notes": [{
            # what is credited, positive, as /credit_notes and Orb give it
            "id": note.head.number, "credit_note_number": note.head.number,
            "memo": note.details.memo,
            "reason": REASON_LABELS.get(note.details.reason or "", "re-rated"),
            "total": cash(-note.head.total), "type": "adjustment",
            "voided_at": instant(note.voided_at)} for note in invoice.credit_notes],
        "eligible_to_issue_at": None if issued else midnight(head.invoice_date),
        "scheduled_issue_at": None,
        "will_auto_issue": invoice.will_auto_issue,
        "invoice_source": "one_off" if invoice.one_off else "subscription",
        "auto_collection": {"enabled": False, "next_attempt_at": None, "num_attempts": None,
                            "previously_attempted_at": None},
        "customer_balance_transactions": [balance_shape(e)
                                          for e in invoice.balance_transactions],
        "payment_attempts": [], "discounts": [],
        "discount": None, "maximum": None, "maximum_amount": None, "minimum": None,
        "minimum_amount": None,
        # the customer's as it is now (Orb's are the invoice's own, kept when issued)
        "billing_address": party(customer.billing_address) if customer else None,
        "shipping_address": party(customer.shipping_address) if customer else None,
        "customer_tax_id": party(customer.tax_id) if customer else None,
        "memo": invoice.details.memo, "metadata": invoice.metadata, "hosted_invoice_url": None,
        "invoice_pdf": None, "issue_failed_at": None, "payment_failed_at": None,
        "payment_received_at": None, "payment_started_at": None, "sync_failed_at": None,
    }


def _within(value: datetime, gt: datetime | None, gte: datetime | None,
            lt: datetime | None, lte: datetime | None) -> bool:
    """``value`` inside Orb's ``[gt]``, ``[gte]``, ``[lt]``, ``[lte]`` bounds; a bound
    without an offset is UTC."""
    def utc(bound: datetime) -> datetime:
        return bound if bound.tzinfo else bound.replace(tzinfo=UTC)
    return ((gt is None or value > utc(gt)) and (gte is None or value >= utc(gte))
            and (lt is None or value < utc(lt)) and (lte is None or value <= utc(lte)))


@router.get("")
def list_invoices(
        request: Request, caller: Authorized, cursor: Cursor = None, limit: Limit = 20,
        customer_id: str | None = None, external_customer_id: str | None = None,
        subscription_id: str | None = None,
        status: Annotated[list[Status] | None, Query()] = None,
        statuses: Annotated[list[Status] | None, Query(alias="status[]")] = None,
        invoice_date_gt: Annotated[datetime | None, Query(alias="invoice_date[gt]")] = None,
        invoice_date_gte: Annotated[datetime | None, Query(alias="invoice_date[gte]")] = None,
        invoice_date_lt: Annotated[datetime | None, Query(alias="invoice_date[lt]")] = None,
        invoice_date_lte: Annotated[datetime | None, Query(alias="invoice_date[lte]")] = None,
        due_date: date | None = None,
        due_date_gt: Annotated[date | None, Query(alias="due_date[gt]")] = None,
        due_date_lt: Annotated[date | None, Query(alias="due_date[lt]")] = None,
) -> dict[str, Any]:
    """Newest invoice date first. Dates compare as the customer's days (``due_date``) or
    as the instant of the invoice day's local midnight (``invoice_date[...]``)."""
    refused = sorted(set(request.query_params) - FILTERS)
    if refused:
        raise bad_request([f"query.{name}: not a filter this server takes (docs/api.md "
                           "lists what differs from Orb)" for name in refused])
    current, found = _all(request, caller)
    wanted = set((status or []) + (statuses or []))
    chosen = []
    for invoice in found:
        shown = shaped(current, invoice)
        head = invoice.head
        on = datetime.fromisoformat(shown["invoice_date"].replace("Z", "+00:00"))
        if ((customer_id and head.customer_id != customer_id)
                or (external_customer_id
                    and shown["customer"]["external_customer_id"] != external_customer_id)
                or (subscription_id and (shown["subscription"] or {}).get("id")
                    != subscription_id)
                or (wanted and invoice.status not in wanted)
                or not _within(on, invoice_date_gt, invoice_date_gte, invoice_date_lt,
                               invoice_date_lte)
                or (due_date and head.due_date != due_date)
                or (due_date_gt and head.due_date <= due_date_gt)
                or (due_date_lt and head.due_date >= due_date_lt)):
            continue
        chosen.append(shown)
    chosen.sort(key=lambda s: (s["invoice_date"], s["id"]), reverse=True)
    return page(chosen, cursor, limit, lambda s: s["id"], lambda s: s)


@router.get("/upcoming")
def fetch_upcoming(subscription_id: str, request: Request, caller: Authorized,
                   ) -> dict[str, Any]:
    """The invoice the subscription's billing period under way will end on, as the
    billing run of its month would draft it now: computed on demand from the lake for
    the subscription's customer (``api/costs.py``), with Orb's ``target_date``."""
    current = costs.read_view(caller.deployment, config(request).clock())
    sub = current.subscription(subscription_id)
    if sub is None:
        raise not_found("subscription", subscription_id)
    customer = current.customer(sub.customer_id)
    assert customer is not None
    period = current_period(current, sub, customer)
    if period is None:
        raise bad_request([f"query.subscription_id: subscription {subscription_id!r} is "
                           f"{status_of(current, sub, customer)}: no billing period is under way"])
    catalog = costs.catalog_of(current.references, current.customers, current.subscriptions,
                               customer.id)
    try:
        found, lines = costs.upcoming_drafts(caller.deployment.lake, catalog, customer.id,
                                             costs.run_month(period[1]))
    except RatingRefused as exc:
        raise bad_request([f"query.subscription_id: {exc}"]) from exc
    prices = {row["line_item_id"]: invoices.LinePrice(
        row["subscription_id"], row["plan_id"], row["plan_version"], row["price_id"])
        for row in lines.to_pylist()}
    theirs = [d for d in found if any(prices[line.line_key].subscription_id == sub.id
                                      for line in d.lines if line.line_key in prices)]
    draft = next((d for d in theirs if d.head.invoice_date == period[1]),
                 theirs[0] if theirs else None)
    if draft is None:
        raise bad_request([f"query.subscription_id: subscription {subscription_id!r} has "
                           "nothing to invoice at the end of its billing period"])
    own = {line.line_key: prices[line.line_key] for line in draft.lines
           if line.line_key in prices}
    shown = shaped(current, invoices.Invoice(draft.head.reference, draft.head, draft.lines,
                                             "draft", None, None, {}, (), own))
    return {**shown, "target_date": shown["invoice_date"]}


@router.get("/{invoice_id}")
def fetch_invoice(invoice_id: str, request: Request, caller: Authorized) -> dict[str, Any]:
    current, found = _all(request, caller)
    return shaped(current, _found(found, invoice_id))


def _change(request: Request, caller: Caller, invoice_id: str, status: DocumentStatus,
            note: str) -> dict[str, Any]:
    """Change an issued invoice's status as ``orb invoices pay|void`` do; audited."""
    current, found = _all(request, caller)
    before = shaped(current, _found(found, invoice_id))
    if before["status"] == "draft":
        raise bad_request([f"path.invoice_id: invoice {invoice_id!r} is a draft; only an "
                           f"issued invoice can be marked {status}"])
    try:
        documents.change_status(caller.deployment.lake, invoice_id, status,
                                config(request).clock(), note)
    except ValueError as exc:
        raise bad_request([f"path.invoice_id: {exc}"]) from exc
    after_lake_write(caller.deployment, config(request).clock())  # its webhook event
    after_view, after_found = _all(request, caller)
    after = shaped(after_view, _found(after_found, invoice_id))
    audit(request, caller, "invoice", invoice_id, before, after)
    return after


@router.post("/{invoice_id}/void")
def void_invoice(invoice_id: str, request: Request, caller: Authorized) -> dict[str, Any]:
    return _change(request, caller, invoice_id, "void", f"voided through the API by "
                                                        f"{caller.actor}")


@router.post("/{invoice_id}/mark_paid")
def mark_paid(invoice_id: str, body: MarkPaid, request: Request, caller: Authorized,
              ) -> dict[str, Any]:
    note = "; ".join([f"payment received {body.payment_received_date}",
                      *([f"external_id {body.external_id}"] if body.external_id else []),
                      *([body.notes] if body.notes else [])])
    if body.amount is None:
        return _change(request, caller, invoice_id, "paid", note)
    return _payment(request, caller, invoice_id, body.amount, note,
                    f"api:{body.external_id}" if body.external_id
                    else f"api:{uuid.uuid4().hex[:16]}")


def _payment(request: Request, caller: Caller, invoice_id: str, amount: Decimal, note: str,
             payment_id: str) -> dict[str, Any]:
    """Record a payment (once per ``external_id``) and settle the invoice; audited."""
    current, found = _all(request, caller)
    before = shaped(current, _found(found, invoice_id))
    if before["status"] == "draft":
        raise bad_request([f"path.invoice_id: invoice {invoice_id!r} is a draft; only an "
                           "issued invoice can be paid"])
    at = config(request).clock()
    try:
        received.record_payment(caller.deployment.lake, invoice_id, amount, before["currency"],
                                at, at, "api", note, payment_id, "api")
    except ValueError as exc:
        raise bad_request([f"body.amount: {exc}"]) from exc
    after_lake_write(caller.deployment, at)
    after_view, after_found = _all(request, caller)
    after = shaped(after_view, _found(after_found, invoice_id))
    audit(request, caller, "invoice", invoice_id, before, after)
    return after


class Issue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    synchronous: bool = True  # issuing here is always synchronous


def _timezone(current: View, customer_id: str) -> str:
    """The time zone of the calendar an invoice's date is a day of: its customer's."""
    customer = current.customer(customer_id)
    if customer is None:
        raise bad_request([f"path.invoice_id: the invoice's customer {customer_id!r} is "
                           "not in the state store"])
    return customer.timezone


@router.post("/{invoice_id}/issue")
def issue_invoice(invoice_id: str, request: Request, caller: Authorized,
                  body: Issue | None = None) -> dict[str, Any]:
    """Issue one draft through ``orb invoices issue``'s own issuing run
    (``invoicing.issuing.issue_month``, narrowed to this draft): the next number of its
    series, its head and lines frozen, an 'issued' event. A draft dated later than now
    (its period has not ended) is refused, as the CLI leaves it a draft."""
    current, found = _all(request, caller)
    invoice = _found(found, invoice_id)
    before = shaped(current, invoice)
    if invoice.status != "draft":
        raise bad_request([f"path.invoice_id: invoice {invoice_id!r} is {invoice.status}; "
                           "only a draft can be issued"])
    at = config(request).clock()
    try:
        issued = ([one_off.issue(caller.deployment.lake, invoice.id, at,
                                 _timezone(current, invoice.head.customer_id))]
                  if invoice.one_off
                  else [number for number, _ in issuing.issue_month(
                      connect(), caller.deployment.lake, invoice.head.billing_month, at,
                      references={invoice.head.reference})])
    except MixedBillingRun as exc:
        raise ApiError(409, str(exc)) from exc
    except (issuing.IssueRefused, one_off.OneOffRefused) as exc:
        raise bad_request([f"path.invoice_id: {exc}"]) from exc
    if not issued:
        raise bad_request([f"path.invoice_id: invoice {invoice_id!r} is dated "
                           f"{invoice.head.invoice_date}: it can be issued from that day on"])
    after_lake_write(caller.deployment, at)  # invoice.issued (webhooks)
    after_view, after_found = _all(request, caller)
    after = shaped(after_view, _found(after_found, issued[0]))
    audit(request, caller, "invoice", invoice_id, before, after)
    return after


class UnitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_amount: Decimal


class OneOffLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    quantity: Decimal
    start_date: date
    end_date: date
    item_id: str
    model_type: Literal["unit"]
    unit_config: UnitConfig


class CreateInvoice(BaseModel):
    """Orb's one-off invoice; ``discount`` and ``auto_collection`` are not taken."""

    model_config = ConfigDict(extra="forbid")
    currency: str
    invoice_date: date | datetime
    line_items: list[OneOffLineIn]
    customer_id: str | None = None
    external_customer_id: str | None = None
    net_terms: int | None = None
    due_date: date | None = None
    memo: str | None = None
    metadata: dict[str, str | None] | None = None
    will_auto_issue: bool = False
    discount: dict[str, Any] | None = None
    auto_collection: bool | None = None


@router.post("")
def create_invoice(body: CreateInvoice, request: Request, caller: Authorized,
                   ) -> dict[str, Any]:
    """A one-off invoice (``invoicing.one_off``, as ``orb invoices create``): a draft, or
    issued at once with ``will_auto_issue``. Its days are the customer's; an instant given
    as ``invoice_date`` is taken on the customer's local calendar."""
    current = view(request, caller)
    customer = (current.customer(body.customer_id) if body.customer_id else
                current.customer_by_external_id(body.external_customer_id)
                if body.external_customer_id else None)
    problems = [f"{name}: not taken by this server (docs/api.md)"
                for name in ("discount", "auto_collection") if getattr(body, name) is not None]
    if customer is None:
        problems.append("customer_id: no such customer" if body.customer_id or
                        body.external_customer_id else
                        "customer_id: customer_id or external_customer_id is required")
    if problems or customer is None:
        raise bad_request(problems)
    day = (periods.local_day(body.invoice_date, customer.timezone)
           if isinstance(body.invoice_date, datetime) else body.invoice_date)
    at = config(request).clock()
    try:
        invoice_id, number = one_off.create(
            caller.deployment.lake, customer.id, body.currency, day,
            [one_off.OneOffLine(line.name, line.quantity, line.unit_config.unit_amount,
                                line.start_date, line.end_date, line.item_id)
             for line in body.line_items],
            customer.net_terms if body.net_terms is None else body.net_terms, at,
            body.memo, body.metadata, body.will_auto_issue, body.due_date,
            timezone=customer.timezone)
    except (one_off.OneOffRefused, invoice_metadata.MetadataRefused) as exc:
        raise bad_request([str(exc)]) from exc
    if number:
        after_lake_write(caller.deployment, at)  # invoice.issued (webhooks)
    after_view, after_found = _all(request, caller)
    after = shaped(after_view, _found(after_found, number or invoice_id))
    audit(request, caller, "invoice", after["id"], None, after)
    return after


@router.put("/{invoice_id}")
def update_invoice(invoice_id: str, request: Request, caller: Authorized,
                   body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Orb's update, for ``metadata`` (a key set to null is removed; ``metadata: null``
    clears them all). Metadata is kept beside the invoice, never in it: an issued
    document does not change, and what it printed as custom fields stays as issued. The
    other fields (due date, invoice date, net terms) are refused: a draft's come from its
    billing run, an issued one's never change."""
    refused = sorted(set(body) - {"metadata"})
    if refused:
        raise bad_request([f"{name}: only metadata can be updated here (docs/api.md)"
                           for name in refused])
    metadata = body.get("metadata")
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(v, str | None) for v in metadata.values())):
        raise bad_request(["metadata: an object of strings (or null to remove a key), "
                           "or null"])
    current, found = _all(request, caller)
    invoice = _found(found, invoice_id)
    before = shaped(current, invoice)
    if "metadata" in body:
        try:
            invoice_metadata.record_update(caller.deployment.lake, invoice.head.reference,
                                           metadata, config(request).clock())
        except invoice_metadata.MetadataRefused as exc:
            raise bad_request([str(exc)]) from exc
    after_view, after_found = _all(request, caller)
    after = shaped(after_view, _found(after_found, invoice_id))
    audit(request, caller, "invoice", invoice_id, before, after)
    return after
