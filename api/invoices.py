"""A tenant's invoices as the API shows them: the documents ``orb invoices list`` shows.

Issued invoices (and adjustment invoices) come from the lake's issued documents, each
with its status (its latest document event: issued, paid or void); drafts from each
billed month's newest completed billing run (``invoicing.issuing.drafts``, refused for a
month whose tables are mixed: ``MixedBillingRun``) and the one-off invoices not issued
(``invoicing.one_off``). Credit notes are not invoices in Orb's API: each issued one is
listed on the invoice it corrects. Each invoice carries what it prints besides its amounts
(memo, custom fields: fixed at issue) and its metadata now (``invoicing.invoice_metadata``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Literal

import pyarrow.parquet as pq

from invoicing import amounts_due, balance, documents, invoice_metadata, one_off
from invoicing.amounts_due import InvoiceAmounts
from invoicing.document_model import (
    NO_DETAILS,
    DocumentDetails,
    DocumentHead,
    DocumentLine,
    DocumentStatus,
    IssuedHead,
)
from invoicing.issuing import DRAFT_TABLES, drafts
from storage.billing_runs import completed_runs, read_month
from storage.duck import connect
from storage.lake import Lake
from storage.tables import DOCUMENT_EVENTS

InvoiceStatus = Literal["draft", "issued", "paid", "void"]


@dataclass(frozen=True)
class LinePrice:
    """What the billing run's ``line_items`` row says of a line: where its price is, and
    its tax lines (``invoice_taxes`` rows of the line, when taxes round per line)."""

    subscription_id: str
    plan_id: str
    plan_version: int
    price_id: str
    taxes: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class CreditNote:
    head: IssuedHead
    voided_at: datetime | None
    details: DocumentDetails = NO_DETAILS


@dataclass(frozen=True)
class Invoice:
    id: str  # the number once issued; the computed invoice's id while a draft
    head: DocumentHead
    lines: tuple[DocumentLine, ...]
    status: InvoiceStatus
    number: str | None
    issued_at: datetime | None
    changed_at: dict[DocumentStatus, datetime]  # when it became paid, void
    credit_notes: tuple[CreditNote, ...]
    prices: dict[str, LinePrice]  # line key -> its price, when the run still has it
    details: DocumentDetails = NO_DETAILS  # memo, custom fields (a draft's: none yet)
    metadata: dict[str, str] = field(default_factory=dict)
    one_off: bool = False  # Orb's invoice_source "one_off", else "subscription"
    will_auto_issue: bool = False
    # issued ones: amount due and paid (invoicing/amounts_due.py), balance transactions
    amounts: InvoiceAmounts | None = None
    balance_transactions: tuple[balance.Entry, ...] = ()


def _months(lake: Lake) -> list[date]:
    """The billing months with a completed billing run."""
    months = {date.fromisoformat(Lake.partition_value(path))
              for path in lake.all_files("billing_runs")}
    return sorted(m for m in months if completed_runs(lake, m))


def _events(lake: Lake) -> dict[str, list[dict[str, Any]]]:
    """Each document's events, in ``seq`` order."""
    files = documents.committed_files(lake, "document_events")
    rows = (pq.read_table(files, partitioning=None, schema=DOCUMENT_EVENTS).to_pylist()
            if files else [])
    events: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r["number"], r["seq"])):
        events[row["number"]].append(row)
    return events


def read(lake: Lake) -> list[Invoice]:
    """Every invoice of the tenant: issued ones, then each month's drafts."""
    con = connect()
    heads = documents.issued_documents(lake)
    lines: defaultdict[str, list[DocumentLine]] = defaultdict(list)
    for row in documents.issued_lines(lake, [h.number for h in heads]).to_pylist():
        lines[row["number"]].append(DocumentLine.from_row(row))
    events = _events(lake)
    changed: dict[str, dict[DocumentStatus, datetime]] = {
        number: {e["status"]: e["changed_at"] for e in rows} for number, rows in events.items()}
    status = {number: rows[-1]["status"] for number, rows in events.items()}
    printed = documents.issued_details(lake, [h.number for h in heads])
    notes: defaultdict[str, list[CreditNote]] = defaultdict(list)
    for head in heads:
        if head.document_type == "credit_note" and head.corrects is not None:
            notes[head.corrects].append(CreditNote(head, changed[head.number].get("void"),
                                                   printed.get(head.number, NO_DETAILS)))
    prices: dict[str, LinePrice] = {}
    month_drafts = []
    for month in _months(lake):
        run = read_month(lake, month, DRAFT_TABLES)
        taxes: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in run["invoice_taxes"].to_pylist():
            taxes[row["line_key"]].append(row)
        for row in run["line_items"].to_pylist():
            prices[row["line_item_id"]] = LinePrice(row["subscription_id"], row["plan_id"],
                                                    row["plan_version"], row["price_id"],
                                                    tuple(taxes[row["line_item_id"]]))
        month_drafts += drafts(con, lake, month, run)

    def own(of: list[DocumentLine]) -> dict[str, LinePrice]:
        return {line.line_key: prices[line.line_key] for line in of if line.line_key in prices}

    metadata = invoice_metadata.current(lake)
    one_offs = one_off.read(lake)
    issued = [Invoice(h.number, h, tuple(lines[h.number]), status[h.number],
                      h.number, h.issued_at, changed[h.number],
                      tuple(notes[h.number]), own(lines[h.number]),
                      printed.get(h.number, NO_DETAILS), metadata.get(h.reference, {}),
                      h.invoice_id in one_offs,
                      h.invoice_id in one_offs and one_offs[h.invoice_id].will_auto_issue)
              for h in heads if h.document_type != "credit_note"]
    due = amounts_due.read_amounts_due(lake, heads, status)
    by_invoice: defaultdict[str, list[balance.Entry]] = defaultdict(list)
    for entry in balance.entries(balance.read(lake)):
        if entry.transaction.invoice_number:
            by_invoice[entry.transaction.invoice_number].append(entry)
    issued = [replace(i, amounts=due.get(h), balance_transactions=tuple(by_invoice[h]))
              for i in issued if (h := i.number)]
    issued_ids = {h.invoice_id for h in heads}
    month_drafts += [o.draft for i, o in sorted(one_offs.items()) if i not in issued_ids]
    return issued + [Invoice(d.head.reference, d.head, d.lines, "draft", None, None, {}, (),
                             own(list(d.lines)), d.details, metadata.get(d.head.reference, {}),
                             d.head.invoice_id in one_offs,
                             d.head.invoice_id in one_offs
                             and one_offs[d.head.invoice_id].will_auto_issue)
                     for d in month_drafts if d.head.document_type != "credit_note"]
