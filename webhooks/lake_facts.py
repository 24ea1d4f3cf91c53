"""The outbox events of facts the lake holds (docs/webhooks.md#events-and-where-they-come-from):
issued invoices and credit notes, invoices paid, voided, or whose payment failed, and
dunning notices sent.

``publish`` reads those facts and appends each event the outbox does not have yet, with
an id made from the fact (the document's number, its status event, the payment record).
The paths that write the facts (``orb invoices issue|pay|void``, the API's, the payment
run) call it right after the lake commits, and the dispatcher before each pass: a crash
between the lake's write and the append loses nothing, and never gives a fact a second id.

Payloads are Orb's webhook bodies in the ``standard`` style: the invoice's own fields, the
customer and subscription as references, no line items.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow.parquet as pq
import sqlalchemy as sa

from billing import money, periods
from invoicing import amounts_due, balance, documents
from payments import ledger, notice_records
from state import outbox, rows
from state.database import reading, writing
from state.history import FAR_FUTURE, customer_at
from state.outbox import OutboxEvent, derived_event_id
from storage.lake import Lake
from storage.tables import DOCUMENT_EVENTS

ACTOR = "webhooks-lake-facts"
INVOICE_TYPES = ("invoice", "adjustment_invoice")


@dataclass(frozen=True)
class CustomerRef:
    external_customer_id: str | None
    timezone: str


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def customers(engine: sa.Engine, ids: Iterable[str]) -> dict[str, CustomerRef]:
    """The customers' external ids and time zones as the state store has them now."""
    with reading(engine) as connection:
        found = rows.read_rows(connection, None, set(ids), set())
    refs = {}
    for customer_id, versions in found.versions.items():
        current = customer_at(versions, FAR_FUTURE)[0]
        refs[customer_id] = CustomerRef(current.external_customer_id,
                                        current.timezone or "UTC")
    return refs


def _invoice(head: Mapping[str, Any], customer: CustomerRef, status: str,
             changed: Mapping[str, datetime], applied: Decimal = Decimal(0)) -> dict[str, Any]:
    """Orb's Invoice (standard style) as of an event: ``status``, and when it became
    paid or void so far; ``applied``: the customer balance applied to it at issue."""
    currency = head["currency"]

    def cash(value: Decimal) -> str:
        return str(money.quantize(value, currency))

    def midnight(day: date | None) -> str | None:
        return None if day is None else _instant(periods.local_midnight(day,
                                                                         customer.timezone))

    return {"id": head["number"], "invoice_number": head["number"], "status": status,
            "currency": currency,
            "customer": {"id": head["customer_id"],
                         "external_customer_id": customer.external_customer_id},
            "subscription": None,
            "invoice_date": midnight(head["invoice_date"]),
            "due_date": midnight(head["due_date"]),
            "created_at": _instant(head["issued_at"]), "issued_at": _instant(head["issued_at"]),
            "paid_at": _instant(changed.get("paid")), "voided_at": _instant(changed.get("void")),
            "subtotal": cash(head["subtotal"]), "total": cash(head["total"]),
            "amount_due": "0" if status in ("paid", "void") else cash(head["total"] - applied),
            "invoice_source": "subscription", "memo": None, "metadata": {}}


def _credit_note(head: Mapping[str, Any], customer: CustomerRef) -> dict[str, Any]:
    """Orb's CreditNote: what is credited, positive, as ``/credit_notes`` gives it."""
    currency = head["currency"]
    return {"id": head["number"], "credit_note_number": head["number"],
            "created_at": _instant(head["issued_at"]),
            "invoice_id": head["corrects"], "reason": "re-rated", "type": "adjustment",
            "total": str(money.quantize(-head["total"], currency)),
            "subtotal": str(money.quantize(-head["subtotal"], currency)),
            "customer": {"id": head["customer_id"],
                         "external_customer_id": customer.external_customer_id},
            "memo": None, "voided_at": None, "credit_note_pdf": None}


def lake_events(lake: Lake, engine: sa.Engine) -> list[OutboxEvent]:
    """Every event the lake's facts make true, in the order they happened."""
    heads = {row["number"]: row for row in documents.issued_heads(lake).to_pylist()}
    if not heads:
        return []
    refs = customers(engine, {head["customer_id"] for head in heads.values()})
    files = documents.committed_files(lake, "document_events")
    changes = (pq.read_table(files, partitioning=None, schema=DOCUMENT_EVENTS).to_pylist()
               if files else [])
    changes.sort(key=lambda row: (row["number"], row["seq"]))
    payments = ledger.read_all(lake).to_pylist()
    # the processor that collected an invoice, when one did (not the payments file)
    collected = {p["subject"]: p for p in payments if p["phase"] == "outcome"
                 and p["status"] == "paid" and p["processor"] != "manual"}
    for row in amounts_due.payment_rows(lake):  # e.g. recorded from a Stripe webhook
        if row["kind"] == "payment" and row["processor"] not in ("manual", "api"):
            collected.setdefault(row["number"], row)
    applied = balance.applied_to(balance.read(lake))
    events: list[tuple[datetime, int, OutboxEvent]] = []

    def add(event_type: str, at: datetime, order: int, head: Mapping[str, Any],
            body: dict[str, Any], *fact: str) -> None:
        events.append((at, order, OutboxEvent(
            derived_event_id(event_type, *fact), event_type, at, body, head["customer_id"])))

    def ref(head: Mapping[str, Any]) -> CustomerRef:
        return refs.get(head["customer_id"], CustomerRef(None, "UTC"))

    for number, head in heads.items():
        if head["document_type"] == "credit_note":
            add("credit_note.issued", head["issued_at"], 0, head,
                {"credit_note": _credit_note(head, ref(head)), "properties": {}}, number)
        elif head["document_type"] in INVOICE_TYPES:
            add("invoice.issued", head["issued_at"], 0, head,
                {"invoice": _invoice(head, ref(head), "issued", {},
                                     applied.get(number, Decimal(0))),
                 "properties": {"automatically_marked_as_paid": False}}, number)
    changed: dict[str, dict[str, datetime]] = {}
    for change in changes:
        head = heads.get(change["number"])
        if head is None or head["document_type"] not in INVOICE_TYPES:
            continue
        status, at = change["status"], change["changed_at"]
        so_far = changed.setdefault(change["number"], {}) | {status: at}
        changed[change["number"]] = so_far
        invoice = _invoice(head, ref(head), status, so_far)
        fact = (change["number"], str(change["seq"]))
        if status == "paid" and (payment := collected.get(change["number"])):
            add("invoice.payment_succeeded", at, 1, head, {"invoice": invoice, "properties": {
                "payment_provider": payment["processor"], "payment_provider_id": None,
                "payment_provider_transaction_id": payment["reference"]}}, *fact)
        elif status == "paid":
            add("invoice.manually_marked_as_paid", at, 1, head, {"invoice": invoice,
                "properties": {"external_id": None, "notes": change["note"] or None,
                               "payment_received_date": _instant(at)}}, *fact)
        elif status == "void":
            add("invoice.manually_marked_as_void", at, 1, head,
                {"invoice": invoice, "properties": {}}, *fact)
    for payment in payments:
        head = heads.get(payment["subject"])
        if head is None or payment["phase"] != "outcome" or payment["status"] != "failed":
            continue
        add("invoice.payment_failed", payment["recorded_at"], 1, head, {
            "invoice": _invoice(head, ref(head), "issued", {}),
            "properties": {"payment_provider": payment["processor"],
                           "payment_provider_id": None,
                           "payment_provider_transaction_id": payment["reference"]}},
            payment["record_id"])
    for notice in notice_records.read_all(lake).to_pylist():
        head = heads.get(notice["number"])
        if head is None or notice["phase"] != "sent":
            continue
        add("invoice.dunning_schedule_step_executed", notice["recorded_at"], 1, head, {
            "invoice": _invoice(head, ref(head), "issued", {}),
            "properties": {"dunning_step": _dunning_step(notice)}}, notice["record_id"])
    events.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in events]


def _dunning_step(sent: Mapping[str, Any]) -> dict[str, Any]:
    """Orb's dunning step, for a notice sent (payments/dunning.py): what it did, when.
    Steps are named by their days from the due date here (``d+7``), not numbered."""
    at = _instant(sent["recorded_at"])
    return {"actions": ["email", *(["retry_payment"] if sent["retry_at"] else [])],
            "status": "executed", "step_number": None, "execution_time": at,
            "timestamp": at, "created_at": at, "modified_at": None,
            "manually_triggered_at": None}


def publish(lake: Lake, engine: sa.Engine, at: datetime) -> int:
    """Append the lake's events the outbox does not have yet; the number appended."""
    found = lake_events(lake, engine)
    with writing(engine) as connection:
        return outbox.append(connection, found, at, ACTOR)
