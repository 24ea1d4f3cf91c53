"""Invoice documents as types: heads, lines, drafts, document types and statuses.

Drafts, issued documents and their statuses pass between invoicing, payments, reports,
the pipelines and the CLI; typed, a misspelt field or status fails the type check
instead of a run. The fields are the columns of ``issued_documents`` and
``issued_lines``, so ``to_row()`` gives exactly the row those tables hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, Self

DocumentType = Literal["invoice", "adjustment_invoice", "credit_note"]
# An issued document's status is its latest event; a draft has none until it is issued.
DocumentStatus = Literal["issued", "paid", "void"]
# "tax": a tax line added to the total; "included_tax": the tax inclusive prices hold,
# shown and corrected but not added (docs/invoicing.md#taxes).
LineKind = Literal["line", "adjustment", "tax", "included_tax"]


_NAMES: dict[type, tuple[str, ...]] = {}


def _names(cls: type[Any]) -> tuple[str, ...]:
    """A document type's field names, looked up once (``fields()`` costs ~20 µs a call,
    and a month's drafts are built from hundreds of thousands of rows)."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass(frozen=True)
class DocumentHead:
    """What a document says, draft or issued: an ``issued_documents`` row without the
    number and issue time."""

    document_type: DocumentType
    invoice_id: str  # the computed invoice it issues or corrects
    correction_id: str | None  # <invoice_id>~<n> for a correction
    corrects: str | None  # the number of the invoice a correction refers to
    customer_id: str
    currency: str
    billing_month: date
    invoice_date: date
    due_date: date
    subtotal: Decimal
    adjustments: Decimal
    credits_applied: Decimal
    total: Decimal  # subtotal + adjustments - credits_applied + tax
    # Tax added to the total (exclusive tax). Keyword-only, 0 by default: documents
    # issued before taxes have none, and their issued_documents rows no such column.
    tax: Decimal = field(default=Decimal(0), kw_only=True)

    @property
    def reference(self) -> str:
        """What names the document before it has a number: its correction, or its invoice."""
        return self.correction_id or self.invoice_id

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        """The head in a row with (at least) these columns, e.g. a row of issued_documents;
        ``tax`` missing or null is 0."""
        values: dict[str, Any] = {name: row[name] for name in _names(cls) if name != "tax"}
        return cls(**values, tax=row.get("tax") or Decimal(0))

    def to_row(self) -> dict[str, Any]:
        """Its columns by name: an issued_documents row when issued."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def issued(self, number: str, at: datetime) -> IssuedHead:
        """This head as issued under ``number`` at ``at``."""
        return IssuedHead(**{f.name: getattr(self, f.name) for f in fields(DocumentHead)},
                          number=number, issued_at=at)


@dataclass(frozen=True)
class IssuedHead(DocumentHead):
    """An issued document's head: a row of issued_documents."""

    number: str
    issued_at: datetime


@dataclass(frozen=True)
class DocumentLine:
    """A line of a document: an ``issued_lines`` row without the document's number."""

    line_key: str  # a line item id, or "adjustment:<source>:<id>"
    kind: LineKind
    name: str
    quantity: Decimal | None  # None on adjustments and on corrections of lines no longer made
    service_start: date | None
    service_end: date | None
    amount: Decimal

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        """The line in a row with (at least) these columns, e.g. of document_lines.sql."""
        return cls(**{name: row[name] for name in _names(cls)})

    def to_row(self, number: str) -> dict[str, Any]:
        """The issued_lines row of this line on document ``number``."""
        return {"number": number, **{f.name: getattr(self, f.name)
                                     for f in fields(DocumentLine)}}


@dataclass(frozen=True)
class CorrectionLine(DocumentLine):
    """A line of a correction: its amount is ``computed - billed``. Billed and computed
    are shown on the document; issuing keeps the line as any other."""

    billed: Decimal  # by the issued invoice and its issued corrections
    computed: Decimal  # by the run now


@dataclass(frozen=True)
class DocumentDetails:
    """What a document prints besides its amounts, fixed when it is issued (a row of
    ``document_details``): its memo, a manual credit note's reason (Orb's), and the
    custom fields (the invoice's metadata at issue, e.g. a PO number), key order kept."""

    memo: str | None = None
    reason: str | None = None
    custom_fields: tuple[tuple[str, str], ...] = ()


NO_DETAILS = DocumentDetails()
# A manual credit note's reason (Orb's request value) as Orb's CreditNote and the page say it.
REASON_LABELS = {"duplicate": "Duplicate", "fraudulent": "Fraudulent",
                 "order_change": "Order change", "product_unsatisfactory": "Product unsatisfactory"}


@dataclass(frozen=True)
class Draft:
    """A document waiting to be issued: a computed invoice, a correction of an issued
    one, a manual credit note or a one-off invoice."""

    head: DocumentHead
    lines: tuple[DocumentLine, ...]
    details: DocumentDetails = NO_DETAILS
