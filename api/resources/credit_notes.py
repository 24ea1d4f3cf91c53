"""Credit notes: Orb's ``/credit_notes`` over the lake's issued credit notes, the
corrections re-rating drafts (``invoicing/issuing.py``) once issued and those made by hand
(``POST /credit_notes``: ``invoicing/credit_notes.py``, as ``orb credit-notes create``), in
Orb's CreditNote shape (docs/api.md#credit-notes)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from api.access import Authorized, Caller, IdempotentRoute, audit, config, path_id
from api.errors import bad_request, not_found
from api.pages import Cursor, Limit, page
from api.shapes import instant
from api.views import View
from api.writes import view
from billing import money, periods
from invoicing import credit_notes, documents
from invoicing.document_model import (
    NO_DETAILS,
    REASON_LABELS,
    DocumentDetails,
    DocumentLine,
    IssuedHead,
)
from storage.duck import connect

router = APIRouter(prefix="/credit_notes", tags=["credit_notes"], route_class=IdempotentRoute)

# an issued credit note, its lines and when it was voided
Issued = tuple[IssuedHead, list[DocumentLine], datetime | None]

FILTERS = {"cursor", "limit", "created_at[gt]", "created_at[gte]", "created_at[lt]",
           "created_at[lte]"}


def _issued(caller: Caller) -> list[tuple[IssuedHead, list[DocumentLine], datetime | None]]:
    """Every issued credit note with its lines and when it was voided, newest first."""
    lake = caller.deployment.lake
    heads = [h for h in documents.issued_documents(lake) if h.document_type == "credit_note"]
    numbers = [h.number for h in heads]
    lines: dict[str, list[DocumentLine]] = {n: [] for n in numbers}
    for row in documents.issued_lines(lake, numbers).to_pylist():
        lines[row["number"]].append(DocumentLine.from_row(row))
    con = connect()
    status = documents.statuses(con, lake, numbers)  # registers their document_events
    voided = dict(con.sql("SELECT number, max(changed_at) FROM document_events "
                          "WHERE status = 'void' GROUP BY number").fetchall())
    notes = [(h, lines[h.number], voided.get(h.number) if status[h.number] == "void" else None)
             for h in heads]
    return sorted(notes, key=lambda n: (n[0].issued_at, n[0].number), reverse=True)


def shaped(current: View, head: IssuedHead, lines: list[DocumentLine],
           voided_at: datetime | None, details: DocumentDetails = NO_DETAILS) -> dict[str, Any]:
    """Orb's CreditNote. Amounts are what is credited, so positive (the lake keeps a
    credit note's amounts negative, as corrections of the invoice)."""
    customer = current.customer(head.customer_id)
    zone = customer.timezone if customer else "UTC"

    def credited(value: Decimal) -> str:
        return str(money.quantize(-value, head.currency))

    def midnight(day: Any) -> str | None:
        return None if day is None else instant(periods.local_midnight(day, zone))

    return {
        "id": head.number, "credit_note_number": head.number, "created_at": instant(
            head.issued_at), "credit_note_pdf": None,
        "customer": {"id": head.customer_id, "external_customer_id":
                     customer.external_customer_id if customer else None},
        "invoice_id": head.corrects or "",
        "line_items": [{
            "id": line.line_key, "item_id": line.line_key, "name": line.name,
            "amount": credited(line.amount), "subtotal": credited(line.amount),
            "quantity": None if line.quantity is None else float(line.quantity),
            "tax_amounts": [], "discounts": [],
            "start_time_inclusive": midnight(line.service_start),
            "end_time_exclusive": midnight(line.service_end)} for line in lines],
        "maximum_amount_adjustment": None, "discounts": [],
        # a manual credit note's own memo and reason; re-rating's say what they correct
        "memo": details.memo if details.reason else f"re-rated: corrects {head.corrects}",
        "minimum_amount_refunded": None, "reason": REASON_LABELS.get(details.reason or ""),
        "subtotal": credited(head.subtotal), "total": credited(head.total),
        "type": "adjustment", "voided_at": instant(voided_at),
    }


def _utc(bound: datetime) -> datetime:
    return bound if bound.tzinfo else bound.replace(tzinfo=UTC)


@router.get("")
def list_credit_notes(
        request: Request, caller: Authorized, cursor: Cursor = None, limit: Limit = 20,
        created_at_gt: Annotated[datetime | None, Query(alias="created_at[gt]")] = None,
        created_at_gte: Annotated[datetime | None, Query(alias="created_at[gte]")] = None,
        created_at_lt: Annotated[datetime | None, Query(alias="created_at[lt]")] = None,
        created_at_lte: Annotated[datetime | None, Query(alias="created_at[lte]")] = None,
) -> dict[str, Any]:
    """Newest first; ``created_at`` is when the credit note was issued."""
    refused = sorted(set(request.query_params) - FILTERS)
    if refused:
        raise bad_request([f"query.{name}: not a filter this server takes (docs/api.md "
                           "lists what differs from Orb)" for name in refused])
    current = view(request, caller)
    chosen = [n for n in _issued(caller)
              if (created_at_gt is None or n[0].issued_at > _utc(created_at_gt))
              and (created_at_gte is None or n[0].issued_at >= _utc(created_at_gte))
              and (created_at_lt is None or n[0].issued_at < _utc(created_at_lt))
              and (created_at_lte is None or n[0].issued_at <= _utc(created_at_lte))]
    printed = documents.issued_details(caller.deployment.lake)
    return page(chosen, cursor, limit, lambda n: n[0].number,
                lambda n: shaped(current, *n, printed.get(n[0].number, NO_DETAILS)))


@router.get("/{credit_note_id}")
def fetch_credit_note(credit_note_id: str, request: Request, caller: Authorized
                      ) -> dict[str, Any]:
    head, lines, voided_at = cast(Issued, _found(request, caller, credit_note_id))
    printed = documents.issued_details(caller.deployment.lake, [credit_note_id])
    return shaped(view(request, caller), head, lines, voided_at,
                  printed.get(credit_note_id, NO_DETAILS))


@path_id("credit_note_id")
def _found(request: Request, caller: Caller, credit_note_id: str
           ) -> tuple[IssuedHead, list[DocumentLine], datetime | None]:
    found = next((n for n in _issued(caller) if n[0].number == credit_note_id), None)
    if found is None:
        raise not_found("credit note", credit_note_id)
    return found


class CreditLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Decimal
    invoice_line_item_id: str
    start_date: date | None = None
    end_date: date | None = None


class CreateCreditNote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    line_items: list[CreditLineIn]
    reason: Literal["duplicate", "fraudulent", "order_change", "product_unsatisfactory"]
    memo: str | None = None
    start_date: date | None = None
    end_date: date | None = None


def _invoice_of(caller: Caller, line_ids: set[str]) -> str:
    """The issued invoice, not void, whose lines these are. A line id is its line key,
    which an invoice shares with its corrections and with an invoice that replaced it
    after a void: the live invoice is the one."""
    lake = caller.deployment.lake
    numbers = [h.number for h in documents.issued_documents(lake)
               if h.document_type == "invoice"]
    status = documents.statuses(connect(), lake, numbers)
    owners = sorted({row["number"] for row in documents.issued_lines(lake, numbers).to_pylist()
                     if row["line_key"] in line_ids and row["kind"] == "line"
                     and status[row["number"]] != "void"})
    if len(owners) != 1:
        raise bad_request(["line_items: the lines must be of one issued invoice; "
                           + (f"they are on {', '.join(owners)}" if owners else
                              f"no issued invoice has line {', '.join(sorted(line_ids))}")])
    return owners[0]


@router.post("")
def create_credit_note(body: CreateCreditNote, request: Request, caller: Authorized,
                       ) -> dict[str, Any]:
    """Orb's create: the lines of one issued invoice, each credited at most what it still
    bills; issued at once (numbered ``CN-``). Service periods other than the lines' own
    (``start_date``, ``end_date``) are refused: a credit note here credits a line's period."""
    dated = [f"line_items[{i}].{name}" for i, line in enumerate(body.line_items)
             for name in ("start_date", "end_date") if getattr(line, name) is not None]
    dated += [name for name in ("start_date", "end_date") if getattr(body, name) is not None]
    if dated:
        raise bad_request([f"{name}: a credit note here credits its lines' own service "
                           "periods (docs/api.md)" for name in dated])
    number = _invoice_of(caller, {line.invoice_line_item_id for line in body.line_items})
    at = config(request).clock()
    try:
        issued, _ = credit_notes.issue_credit_note(
            caller.deployment.lake, number,
            [credit_notes.CreditLine(line.invoice_line_item_id, line.amount)
             for line in body.line_items], body.reason, body.memo, at)
    except (credit_notes.CreditNoteRefused, ValueError) as exc:
        raise bad_request([str(exc)]) from exc
    after = fetch_credit_note(issued, request, caller)
    audit(request, caller, "credit_note", issued, None, after)
    return after
