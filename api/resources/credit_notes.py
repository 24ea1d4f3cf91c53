"""Credit notes: Orb's ``/credit_notes`` over the lake's issued credit notes, the
corrections re-rating drafts (``invoicing/issuing.py``) once issued, in Orb's CreditNote
shape (docs/api.md#credit-notes)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.access import Authorized, Caller
from api.errors import bad_request, not_found
from api.pages import Cursor, Limit, page
from api.shapes import instant
from api.views import View
from api.writes import view
from billing import money, periods
from invoicing import documents
from invoicing.document_model import DocumentLine, IssuedHead
from storage.duck import connect

router = APIRouter(prefix="/credit_notes", tags=["credit_notes"])

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
           voided_at: datetime | None) -> dict[str, Any]:
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
        "memo": f"re-rated: corrects {head.corrects}", "minimum_amount_refunded": None,
        "reason": None, "subtotal": credited(head.subtotal), "total": credited(head.total),
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
    return page(chosen, cursor, limit, lambda n: n[0].number,
                lambda n: shaped(current, *n))


@router.get("/{credit_note_id}")
def fetch_credit_note(credit_note_id: str, request: Request, caller: Authorized
                      ) -> dict[str, Any]:
    found = next((n for n in _issued(caller) if n[0].number == credit_note_id), None)
    if found is None:
        raise not_found("credit note", credit_note_id)
    return shaped(view(request, caller), *found)
