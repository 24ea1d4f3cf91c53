"""One-off invoices, Orb's ``POST /invoices``: lines priced by hand (name, quantity, unit
amount, service dates) for a customer, outside any subscription.

Each is recorded once (``one_off_invoices/invoice_id=<id>``, one row per line) and is a
draft until issued: by ``issue`` (the API's ``POST /invoices/{id}/issue``, ``orb invoices
issue-one-off``), or at once when created with ``will_auto_issue`` (Orb's meaning: "submitted
for issuance upon creation"). Issuing goes through ``documents.issue_all``, so it is numbered
in the ``INV-`` series like every invoice, with its memo and custom fields fixed then; an
invoice already issued is never issued again. Each line is ``quantity × unit_amount``
rounded once, half away from zero, to the currency's minor unit; the total is the sum of
the rounded lines.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from billing import money, periods
from invoicing import documents, invoice_metadata
from invoicing.document_model import DocumentDetails, DocumentHead, DocumentLine, Draft
from storage.lake import PARTITION_FILE, Lake
from storage.tables import ONE_OFF_INVOICES as SCHEMA
from storage.tables import TABLES

KEY = TABLES["one_off_invoices"].key
PREFIX = "oneoff_"


class OneOffRefused(ValueError):
    """A one-off invoice that breaks a rule; nothing was written. Names every field."""


@dataclass(frozen=True)
class OneOffLine:
    name: str
    quantity: Decimal
    unit_amount: Decimal
    start_date: date
    end_date: date  # inclusive, as Orb's line item end_date
    item_id: str = ""  # Orb's item; kept, not checked


@dataclass(frozen=True)
class OneOff:
    draft: Draft
    will_auto_issue: bool


def _lines(currency: str, lines: list[OneOffLine], problems: list[str]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i, line in enumerate(lines):
        where = f"line_items[{i}]"
        try:
            quantity, unit = Decimal(line.quantity), Decimal(line.unit_amount)
            finite = quantity.is_finite() and unit.is_finite()
        except (InvalidOperation, TypeError):
            finite = False
        if not finite or quantity < 0 or unit < 0:
            problems.append(f"{where}: quantity and unit_config.unit_amount must be "
                            f"numbers, zero or more")
            continue
        if not line.name.strip():
            problems.append(f"{where}.name: must not be empty")
        if line.end_date < line.start_date:
            problems.append(f"{where}.end_date: {line.end_date} is before start_date "
                            f"{line.start_date}")
        amount = money.quantize(quantity * unit, currency)  # the one rounding
        if amount >= money.MAX_AMOUNT:
            problems.append(f"{where}: {amount} is too large: an amount must be below "
                            f"{money.MAX_AMOUNT:,}")
        rows.append({"line_index": i, "item_id": line.item_id, "name": line.name,
                     "quantity": quantity, "unit_amount": unit, "amount": amount,
                     "service_start": line.start_date,
                     "service_end": line.end_date + timedelta(days=1)})
    if not lines:
        problems.append("line_items: a one-off invoice needs at least one line")
    return rows


def create(lake: Lake, customer_id: str, currency: str, invoice_date: date,
           lines: list[OneOffLine], net_terms: int, at: datetime, memo: str | None = None,
           metadata: dict[str, str | None] | None = None, will_auto_issue: bool = False,
           due_date: date | None = None, *, timezone: str) -> tuple[str, str | None]:
    """Record a one-off invoice (every problem reported at once) and, with
    ``will_auto_issue``, issue it. Returns its id and its number once issued.
    ``invoice_date`` is a day of the customer's calendar, in ``timezone``."""
    problems: list[str] = []
    try:
        currency = money.currency_code(currency)
    except ValueError as exc:
        raise OneOffRefused(f"currency: {exc}") from exc
    rows = _lines(currency, lines, problems)
    if net_terms < 0:
        problems.append(f"net_terms: {net_terms} must be 0 or more days")
    due = due_date or invoice_date + timedelta(days=max(net_terms, 0))
    if due < invoice_date:
        problems.append(f"due_date: {due} is before invoice_date {invoice_date}")
    if invoice_date > periods.local_day(at, timezone) + timedelta(days=366):
        problems.append(f"invoice_date: {invoice_date} is more than one year in the future")
    if problems:
        raise OneOffRefused("; ".join(problems))
    invoice_id = f"{PREFIX}{uuid.uuid4().hex[:16]}"
    if metadata:
        invoice_metadata.record_update(lake, invoice_id, metadata, at)
    head = {"invoice_id": invoice_id, "customer_id": customer_id, "currency": currency,
            "invoice_date": invoice_date, "due_date": due, "memo": memo,
            "will_auto_issue": will_auto_issue, "created_at": at}
    lake.write_file("one_off_invoices", KEY, invoice_id, PARTITION_FILE, pa.Table.from_pylist(
        [{**head, **row} for row in rows], schema=SCHEMA))
    return invoice_id, issue(lake, invoice_id, at, timezone) if will_auto_issue else None


def read(lake: Lake) -> dict[str, OneOff]:
    """Every one-off invoice as a draft (issued or not), by id."""
    files = lake.all_files("one_off_invoices")
    if not files:
        return {}
    by_id: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in pq.read_table(files, partitioning=None, schema=SCHEMA).to_pylist():
        by_id[row["invoice_id"]].append(row)
    return {invoice_id: _draft(sorted(rows, key=lambda r: r["line_index"]))
            for invoice_id, rows in by_id.items()}


def _draft(rows: list[dict[str, Any]]) -> OneOff:
    first = rows[0]
    lines = tuple(DocumentLine(f"{first['invoice_id']}:{row['line_index']}", "line",
                               row["name"], row["quantity"], row["service_start"],
                               row["service_end"], row["amount"]) for row in rows)
    total = sum((line.amount for line in lines), Decimal(0))
    return OneOff(Draft(DocumentHead(
        document_type="invoice", invoice_id=first["invoice_id"], correction_id=None,
        corrects=None, customer_id=first["customer_id"], currency=first["currency"],
        billing_month=first["invoice_date"].replace(day=1), invoice_date=first["invoice_date"],
        due_date=first["due_date"], subtotal=total, adjustments=Decimal(0),
        credits_applied=Decimal(0), total=total), lines,
        DocumentDetails(memo=first["memo"] or None)), first["will_auto_issue"])


def drafts(lake: Lake) -> list[Draft]:
    """The one-off invoices not issued yet, in id order."""
    issued = {head.invoice_id for head in documents.issued_documents(lake)}
    return [o.draft for invoice_id, o in sorted(read(lake).items()) if invoice_id not in issued]


def issue(lake: Lake, invoice_id: str, at: datetime, timezone: str) -> str:
    """Issue the one-off draft ``invoice_id`` (refused when it is not one, is issued
    already, or is dated after ``at``'s day in the customer's ``timezone``); its custom
    fields are its metadata now."""
    with lake.lock("issue"):
        found = read(lake).get(invoice_id)
        if found is None:
            raise OneOffRefused(f"no one-off invoice {invoice_id!r}")
        numbers = [h.number for h in documents.issued_documents(lake)
                   if h.invoice_id == invoice_id]
        if numbers:
            raise OneOffRefused(f"one-off invoice {invoice_id} is issued already, as "
                                f"{numbers[0]}")
        draft = found.draft
        if draft.head.invoice_date > periods.local_day(at, timezone):
            raise OneOffRefused(f"one-off invoice {invoice_id} is dated "
                                f"{draft.head.invoice_date}: it can be issued from that day on")
        fields = invoice_metadata.custom_fields(lake, [invoice_id]).get(invoice_id, ())
        [(number, _)] = documents.issue_all(
            lake, [replace(draft, details=replace(draft.details, custom_fields=fields))], at)
    return number
