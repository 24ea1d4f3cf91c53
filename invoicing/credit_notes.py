"""Credit notes made by hand, Orb's ``POST /credit_notes``: an amount off one or more lines
of an issued invoice (or off the invoice as a whole), with Orb's reason and a memo.

A manual credit note is a ``credit_note`` document like re-rating's, numbered in the
``CN-`` series by the same issuing run (``documents.issue_all``), its reason and memo
fixed with it (``document_details``). It is not a re-rating correction: its invoice id is
``<invoice id>~credit~<k>``, so re-rating (``corrections.sql``, which compares the run with
what the invoice and *its corrections* billed) never bills it back. Its money: against an
unpaid invoice it lowers what is due (``invoicing/amounts_due.py``); against a paid one it
credits the customer's balance (Orb's ``credit_note_applied``, written when it is issued:
``balance.apply_on_issue``).

Limits: a line can be credited at most what it billed less what earlier credit notes
(re-rating's and manual ones) took off it; a whole credit note at most what the invoice
still bills (its total plus its corrections). Each credited amount is in whole minor
units of the currency, so nothing is rounded.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing import money
from invoicing import documents
from invoicing.document_model import (
    REASON_LABELS,
    DocumentDetails,
    DocumentHead,
    DocumentLine,
    Draft,
    IssuedHead,
)
from storage.duck import connect
from storage.lake import Lake

REASONS = tuple(REASON_LABELS)  # Orb's: duplicate, fraudulent, order_change, ...
WHOLE = None  # a credit line without a line: off the invoice as a whole


class CreditNoteRefused(ValueError):
    """A credit note that breaks a rule; nothing was issued. The message names the
    invoice, the line and the amounts."""


@dataclass(frozen=True)
class CreditLine:
    line_key: str | None  # the invoice's line (Orb's invoice_line_item_id); None: whole
    amount: Decimal  # what to credit, positive, in whole minor units


@dataclass(frozen=True)
class Creditable:
    """What an invoice can still be credited: per line, and in all."""

    invoice: IssuedHead
    lines: dict[str, DocumentLine]  # the invoice's lines by key
    remaining: dict[str, Decimal]  # per line: billed less earlier credit notes
    total: Decimal  # what the invoice and its corrections bill now
    credits: int  # manual credit notes already issued on it


def creditable(lake: Lake, number: str) -> Creditable:
    """The issued invoice ``number``'s lines and what is left to credit on each."""
    heads = documents.issued_documents(lake)
    invoice = next((h for h in heads if h.number == number), None)
    if invoice is None or invoice.document_type == "credit_note":
        raise CreditNoteRefused(f"no issued invoice {number!r} to credit")
    related = [h for h in heads if h.corrects == number]
    status = documents.statuses(connect(), lake, [number, *(h.number for h in related)])
    if status[number] == "void":
        raise CreditNoteRefused(f"invoice {number} is void: there is nothing to credit")
    live = [invoice, *(h for h in related if status[h.number] != "void")]
    own: dict[str, DocumentLine] = {}
    remaining: defaultdict[str, Decimal] = defaultdict(Decimal)
    for row in documents.issued_lines(lake, [h.number for h in live]).to_pylist():
        if row["kind"] != "line":
            continue
        if row["number"] == number:
            own[row["line_key"]] = DocumentLine.from_row(row)
        remaining[row["line_key"]] += row["amount"]
    return Creditable(invoice, own,
                      {key: remaining[key] for key in own}, sum((h.total for h in live),
                                                                Decimal(0)),
                      sum(1 for h in related if h.invoice_id.startswith(
                          f"{invoice.invoice_id}~credit~")))


def _checked(found: Creditable, credits: list[CreditLine]) -> list[DocumentLine]:
    """The credit note's lines (negative amounts), or every problem at once."""
    invoice = found.invoice
    problems: list[str] = []
    lines: list[DocumentLine] = []
    asked: defaultdict[str | None, Decimal] = defaultdict(Decimal)
    for i, credit in enumerate(credits):
        where = f"line_items[{i}]"
        try:
            amount = money.check_amount(credit.amount, invoice.currency, f"{where}.amount")
        except money.AmountError as exc:
            problems.append(str(exc))
            continue
        asked[credit.line_key] += amount
        if credit.line_key is WHOLE:
            lines.append(DocumentLine(f"credit:{invoice.number}", "line",
                                      f"Credit on invoice {invoice.number}", None, None, None,
                                      -amount))
            continue
        line = found.lines.get(credit.line_key)
        if line is None:
            problems.append(f"{where}.invoice_line_item_id: invoice {invoice.number} has no "
                            f"line {credit.line_key!r}")
            continue
        left = money.quantize(found.remaining[credit.line_key], invoice.currency)
        if asked[credit.line_key] > left:
            problems.append(
                f"{where}.amount: {amount} {invoice.currency} is more than line "
                f"{credit.line_key!r} ({line.name}) of invoice {invoice.number} can still be "
                f"credited: {left} (billed {money.quantize(line.amount, invoice.currency)}, "
                "less earlier credit notes)")
            continue
        lines.append(DocumentLine(line.line_key, "line", line.name, None, line.service_start,
                                  line.service_end, -amount))
    if not credits:
        problems.append("line_items: a credit note needs at least one line")
    total = sum(asked.values(), Decimal(0))
    if not problems and total > found.total:
        problems.append(f"line_items: {total} {invoice.currency} in all is more than invoice "
                        f"{invoice.number} still bills: "
                        f"{money.quantize(found.total, invoice.currency)}")
    if problems:
        raise CreditNoteRefused("; ".join(problems))
    return lines


def draft_credit_note(found: Creditable, credits: list[CreditLine], reason: str,
                      memo: str | None, at: datetime) -> Draft:
    """The credit note as a draft, checked; dated the day it is made."""
    if reason not in REASONS:
        raise CreditNoteRefused(f"reason: {reason!r} is not one of {', '.join(REASONS)}")
    lines = tuple(_checked(found, credits))
    invoice = found.invoice
    total = sum((line.amount for line in lines), Decimal(0))
    return Draft(DocumentHead(
        document_type="credit_note", invoice_id=f"{invoice.invoice_id}~credit~{found.credits + 1}",
        correction_id=None, corrects=invoice.number, customer_id=invoice.customer_id,
        currency=invoice.currency, billing_month=invoice.billing_month,
        invoice_date=at.date(), due_date=at.date(), subtotal=total,
        adjustments=Decimal(0), credits_applied=Decimal(0), total=total), lines,
        DocumentDetails(memo=memo or None, reason=reason))


def issue_credit_note(lake: Lake, number: str, credits: list[CreditLine], reason: str,
                      memo: str | None, at: datetime) -> tuple[str, Draft]:
    """Check and issue a credit note on invoice ``number``. Returns its number and draft.
    Issuing credits the balance when the invoice is paid (``balance.apply_on_issue``,
    called by ``documents.issue_all``)."""
    with lake.lock("issue"):  # the limits and the number are one step
        [(issued, draft)] = documents.issue_all(
            lake, [draft_credit_note(creditable(lake, number), credits, reason, memo, at)], at)
    return issued, draft

