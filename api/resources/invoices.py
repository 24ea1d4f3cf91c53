"""Invoices: Orb's ``/invoices`` over the lake's issued documents and the billed months'
drafts (``api/invoices.py``), in Orb's Invoice shape (docs/api.md#endpoints).

Void and mark paid change an issued invoice's status through
``invoicing.documents.change_status``, as ``orb invoices void|pay`` do."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from api import costs, invoices
from api.access import Authorized, Caller, IdempotentRoute, audit, config
from api.errors import ApiError, bad_request, not_found
from api.pages import Cursor, Limit, page
from api.shapes import instant, party
from api.shapes import price as shaped_price
from api.shapes import status as status_of
from api.views import View, current_period
from api.writes import view
from billing import money, periods
from billing.catalog.prices import Price
from invoicing import documents, issuing
from invoicing.document_model import DocumentStatus
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


def _amount(value: Decimal, currency: str) -> str:
    return str(money.quantize(value, currency))


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
        catalog_price = _catalog_price(current, invoice.prices.get(line.line_key))
        line_items.append({
            "id": line.line_key, "name": line.name,
            "quantity": None if line.quantity is None else f"{line.quantity.normalize():f}",
            "amount": cash(line.amount), "subtotal": cash(line.amount),
            "adjusted_subtotal": cash(line.amount), "credits_applied": "0",
            "partially_invoiced_amount": "0", "adjustments": [], "sub_line_items": [],
            "tax_amounts": [], "filter": None, "grouping": None, "usage_customer_ids": None,
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
        "amount_due": cash(head.total),  # credits are in the total already
        "line_items": line_items,
        "hidden_line_item_count": 0,
        "credit_notes": [{
            # what is credited, positive, as /credit_notes and Orb give it
            "id": note.head.number, "credit_note_number": note.head.number, "memo": None,
            "reason": "re-rated", "total": cash(-note.head.total), "type": "adjustment",
            "voided_at": instant(note.voided_at)} for note in invoice.credit_notes],
        "eligible_to_issue_at": None if issued else midnight(head.invoice_date),
        "scheduled_issue_at": None,
        "will_auto_issue": False,
        "invoice_source": "subscription",
        "auto_collection": {"enabled": False, "next_attempt_at": None, "num_attempts": None,
                            "previously_attempted_at": None},
        "customer_balance_transactions": [], "payment_attempts": [], "discounts": [],
        "discount": None, "maximum": None, "maximum_amount": None, "minimum": None,
        "minimum_amount": None,
        # the customer's as it is now (Orb's are the invoice's own, kept when issued)
        "billing_address": party(customer.billing_address) if customer else None,
        "shipping_address": party(customer.shipping_address) if customer else None,
        "customer_tax_id": party(customer.tax_id) if customer else None,
        "memo": None, "metadata": {}, "hosted_invoice_url": None,
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
    return _change(request, caller, invoice_id, "paid", note)


class Issue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    synchronous: bool = True  # issuing here is always synchronous


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
        issued = issuing.issue_month(connect(), caller.deployment.lake,
                                     invoice.head.billing_month, at,
                                     references={invoice.head.reference})
    except MixedBillingRun as exc:
        raise ApiError(409, str(exc)) from exc
    except issuing.IssueRefused as exc:
        raise bad_request([f"path.invoice_id: {exc}"]) from exc
    if not issued:
        raise bad_request([f"path.invoice_id: invoice {invoice_id!r} is dated "
                           f"{invoice.head.invoice_date}: it can be issued from that day on"])
    after_lake_write(caller.deployment, at)  # invoice.issued (webhooks)
    after_view, after_found = _all(request, caller)
    after = shaped(after_view, _found(after_found, issued[0][0]))
    audit(request, caller, "invoice", invoice_id, before, after)
    return after
