"""Threshold invoices (Orb's ``invoicing_threshold``; docs/invoicing.md#threshold-invoices).

A subscription with a threshold gets an invoice mid-period as soon as the usage of its
open period not yet invoiced reaches the threshold. A threshold invoice is a prefix of
the period: the subscription's usage lines (rated by the billing run's own SQL) over
``[period start, cutoff)``, less what the threshold invoice before it billed, line by
line. The period's final invoice keeps the whole period's lines and takes off, line by
line, what the last threshold invoice billed (``threshold_deductions.sql``), so the
invoices of a period add up to the period's total whatever the price model.

Each threshold invoice is recorded (``threshold_invoices``: whose, up to when) before it
is issued. Every later billing run of the month recomputes its lines from the events as
they are then (``with_threshold_lines``): an issued threshold invoice is never changed, a
late event becomes a correction of it (``invoice_corrections``), and the final invoice
takes off the recomputed amount.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import groupby

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from billing import money, periods
from billing.catalog import Catalog
from billing.charges import BillingWindow, billing_windows, in_run
from invoicing import documents
from invoicing.assembly import previously_invoiced
from invoicing.document_model import DocumentHead, DocumentLine, Draft
from invoicing.sql import load_sql
from pricing_sql.customer_rating import renamed
from pricing_sql.rating import price_windows, window_usage
from state import outbox, rows
from state.database import reading, writing
from state.events import subscription_object
from state.outbox import OutboxEvent, derived_event_id
from state.thresholds import ThresholdRow, in_effect
from storage.duck import connect
from storage.lake import Lake
from storage.tables import BILLING_MONTH, INVOICE_TAXES, THRESHOLD_INVOICES

TABLE = "threshold_invoices"
EXCEEDED = "subscription.invoicing_threshold_exceeded"
ACTOR = "threshold-invoicing"


@dataclass(frozen=True)
class ThresholdInvoice:
    """A row of ``threshold_invoices``."""

    invoice_id: str
    final_invoice_id: str  # the period's invoice, dated its end
    subscription_id: str
    customer_id: str
    currency: str
    sequence: int  # 1, 2, ... within the period
    invoice_date: date
    cutoff: datetime  # usage before this instant is on it
    threshold: Decimal
    evaluated_amount: Decimal
    recorded_at: datetime

    @property
    def key(self) -> str:
        return f"T{self.sequence}"


def threshold_invoice_id(final_invoice_id: str, subscription_id: str, sequence: int) -> str:
    # "~" is not allowed in ids, so this never meets a computed invoice's id
    return f"{final_invoice_id}~{subscription_id}~T{sequence}"


def recorded(lake: Lake, month: date) -> list[ThresholdInvoice]:
    """Every threshold invoice recorded for ``month``'s periods, issued or not."""
    files = lake.files_in(TABLE, BILLING_MONTH, [month])
    if not files:
        return []
    table = pq.read_table(files, partitioning=None, schema=THRESHOLD_INVOICES)
    return [ThresholdInvoice(**row) for row in table.to_pylist()]


def issued(lake: Lake, month: date) -> list[ThresholdInvoice]:
    """The recorded threshold invoices of ``month`` that were issued (a record whose
    issue a crash cut short does not count; the next evaluation writes it again)."""
    records = recorded(lake, month)
    if not records:  # most months: no need to read the issued documents
        return []
    heads = documents.issued_heads(lake)
    ids = set(heads.filter(pc.equal(heads["document_type"], "invoice"))
              .column("invoice_id").to_pylist())
    return sorted((r for r in records if r.invoice_id in ids),
                  key=lambda r: (r.final_invoice_id, r.subscription_id, r.sequence))


def _cut_windows(windows: Iterable[BillingWindow], record: ThresholdInvoice,
                 ) -> list[BillingWindow]:
    """The subscription's windows in arrears on the period's final invoice, with their
    usage counted up to the cutoff and their ids set apart by the invoice's key."""
    return [renamed(w, record.key, end=record.cutoff) for w in windows
            if w.subscription_id == record.subscription_id and not w.in_advance
            and w.invoice_id == record.final_invoice_id and w.period_start < record.cutoff]


@dataclass(frozen=True)
class ThresholdLines:
    line_items: pa.Table
    sub_line_items: pa.Table


def threshold_lines(lake: Lake, catalog: Catalog, month: date,
                    records: Collection[ThresholdInvoice]) -> ThresholdLines | None:
    """The usage lines of ``records`` as the billing run's SQL rates them now, each
    named ``<the period's line>~T<n>`` on its threshold invoice; None when there are
    none. Fixed fees stay on the invoices they are billed on."""
    windows = billing_windows(catalog, month)
    by_key = {f"{r.subscription_id}@{r.key}": r for r in records}
    cut = [w for r in records for w in _cut_windows(windows, r)]
    if not cut:
        return None
    con = connect()
    rated = window_usage(con, lake, catalog, cut)
    priced = price_windows(con, catalog, cut, rated.usage, rated.excluded)
    lines = priced.line_items.filter(pc.is_valid(priced.line_items["billable_metric_id"]))
    owner: dict[str, tuple[str, ThresholdInvoice]] = {}  # cut line id -> (its id, record)
    rows_out = []
    for row in lines.to_pylist():
        record = by_key[row["subscription_id"]]
        # the period's own line id: the cut window's, with the subscription's own id
        base = record.subscription_id + row["line_item_id"][len(row["subscription_id"]):]
        owner[row["line_item_id"]] = (f"{base}~{record.key}", record)
        rows_out.append({**row, "line_item_id": owner[row["line_item_id"]][0],
                         "invoice_id": record.invoice_id, "invoice_date": record.invoice_date,
                         "subscription_id": record.subscription_id,
                         "service_end": min(row["service_end"], record.invoice_date)})
    subs = priced.sub_line_items.filter(pc.is_in(priced.sub_line_items["line_item_id"],
                                                 pa.array(list(owner), pa.string())))
    sub_rows = [{**row, "line_item_id": owner[row["line_item_id"]][0],
                 "invoice_id": owner[row["line_item_id"]][1].invoice_id}
                for row in subs.to_pylist()]
    return ThresholdLines(pa.Table.from_pylist(rows_out, schema=lines.schema),
                          pa.Table.from_pylist(sub_rows, schema=subs.schema))


def with_threshold_lines(lake: Lake, catalog: Catalog, month: date, line_items: pa.Table,
                         sub_line_items: pa.Table, excluded: Collection[str] = (),
                         ) -> tuple[pa.Table, pa.Table]:
    """A billing run's line items (and their breakdown) with the lines of the month's
    issued threshold invoices recomputed, but those of ``excluded`` customers (the run
    says nothing of them, so their issued invoices are not corrected either)."""
    records = [r for r in issued(lake, month) if r.customer_id not in excluded]
    lines = threshold_lines(lake, catalog, month, records) if records else None
    if lines is None:
        return line_items, sub_line_items
    return (pa.concat_tables([line_items, lines.line_items.cast(line_items.schema)]),
            pa.concat_tables([sub_line_items, lines.sub_line_items.cast(sub_line_items.schema)]))


def missing_from(lake: Lake, month: date, invoices: pa.Table) -> list[str]:
    """The month's issued threshold invoices that a run's ``invoices`` lack though it
    billed their customers: issued after the run, whose final drafts do not take them
    off yet."""
    ids = set(invoices.column("invoice_id").to_pylist())
    billed = set(invoices.column("customer_id").to_pylist())
    return [r.invoice_id for r in issued(lake, month)
            if r.invoice_id not in ids and r.customer_id in billed]


# -- evaluating and issuing ------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    number: str
    draft: Draft
    record: ThresholdInvoice


def _candidates(catalog: Catalog, month: date, thresholds: dict[str, Decimal],
                done: list[ThresholdInvoice], as_of: datetime,
                final_issued: set[str]) -> list[ThresholdInvoice]:
    """A threshold invoice for each subscription with a threshold whose period on an
    invoice of ``month``'s run is open at ``as_of``: up to the customer's midnight that
    starts ``as_of``'s day, numbered after those already issued."""
    timezones = {c.id: c.timezone for c in catalog.customers}
    customers = {s.id: s.customer_id for s in catalog.subscriptions}
    windows = sorted((w for w in billing_windows(catalog, month)
                      if w.subscription_id in thresholds and not w.in_advance),
                     key=lambda w: (w.subscription_id, w.invoice_id))
    latest = {(r.subscription_id, r.final_invoice_id): r for r in done}
    result = []
    for (sub_id, final_id), group in groupby(windows, lambda w: (w.subscription_id,
                                                                  w.invoice_id)):
        period = list(group)
        timezone = timezones[customers[sub_id]]
        day = periods.local_day(as_of, timezone)
        cutoff = periods.local_midnight(day, timezone)
        before = latest.get((sub_id, final_id))
        if (final_id in final_issued or not in_run(day, month)
                or day >= period[0].invoice_date
                or cutoff <= min(w.period_start for w in period)
                or (before is not None and cutoff <= before.cutoff)):
            continue
        sequence = 1 if before is None else before.sequence + 1
        result.append(ThresholdInvoice(
            threshold_invoice_id(final_id, sub_id, sequence), final_id, sub_id,
            customers[sub_id], period[0].currency, sequence, day, cutoff,
            thresholds[sub_id], Decimal(0), as_of))
    return result


def evaluate(lake: Lake, catalog: Catalog, month: date, threshold_rows: list[ThresholdRow],
             as_of: datetime) -> list[tuple[Draft, ThresholdInvoice]]:
    """The threshold invoices due at ``as_of`` on ``month``'s periods, as drafts with
    their records: those whose usage not yet invoiced (their total) reaches the
    subscription's threshold."""
    thresholds = in_effect(threshold_rows, as_of)
    if not thresholds:
        return []
    done = issued(lake, month)
    heads = documents.issued_heads(lake)
    finals = set(heads.filter(pc.equal(heads["document_type"], "invoice"))
                 .column("invoice_id").to_pylist())
    candidates = _candidates(catalog, month, thresholds, done, as_of, finals)
    if not candidates:
        return []
    earlier = {(r.subscription_id, r.final_invoice_id, r.sequence): r for r in done}
    before = [earlier[c.subscription_id, c.final_invoice_id, c.sequence - 1]
              for c in candidates if c.sequence > 1]
    lines = threshold_lines(lake, catalog, month, [*candidates, *before])
    if lines is None:
        return []
    con = connect()
    con.register("invoice_adjustments", previously_invoiced(con, lines.line_items))
    con.register("invoice_taxes", INVOICE_TAXES.empty_table())  # not taxed: see the docs
    shown = con.sql(load_sql("document_lines")).to_arrow_table().to_pylist()
    net_terms = {c.id: c.net_terms for c in catalog.customers}
    due = []
    for candidate in candidates:
        mine = [DocumentLine.from_row(r) for r in shown if r["invoice_id"] == candidate.invoice_id]
        subtotal = sum((line.amount for line in mine if line.kind == "line"), Decimal(0))
        adjustments = sum((line.amount for line in mine if line.kind == "adjustment"),
                          Decimal(0))
        total = subtotal + adjustments
        if not mine or total < candidate.threshold:
            continue
        record = ThresholdInvoice(**{**asdict(candidate), "evaluated_amount": total})
        due.append((Draft(DocumentHead(
            document_type="invoice", invoice_id=record.invoice_id, correction_id=None,
            corrects=None, customer_id=record.customer_id, currency=record.currency,
            billing_month=month, invoice_date=record.invoice_date,
            due_date=record.invoice_date + timedelta(days=net_terms[record.customer_id]),
            subtotal=subtotal, adjustments=adjustments, credits_applied=Decimal(0),
            total=total), tuple(mine)), record))
    return due


def issue_due(lake: Lake, engine: sa.Engine, catalog: Catalog, month: date,
              threshold_rows: list[ThresholdRow], as_of: datetime, at: datetime,
              ) -> list[Issued]:
    """Evaluate the thresholds at ``as_of`` and issue the threshold invoices due, at
    ``at``: each recorded first, then all issued as one issuing run, then their
    ``subscription.invoicing_threshold_exceeded`` events appended to the outbox. Running
    it again at the same usage issues nothing (the usage not yet invoiced is then 0)."""
    if not in_effect(threshold_rows, as_of):
        publish_exceeded(lake, engine, month)
        return []
    with lake.lock("issue"):
        due = evaluate(lake, catalog, month, threshold_rows, as_of)
        for _, record in due:
            lake.write_file(TABLE, BILLING_MONTH, month, f"{record.invoice_id}.parquet",
                            pa.Table.from_pylist([asdict(record)], schema=THRESHOLD_INVOICES))
        numbered = documents.issue_all(lake, [draft for draft, _ in due], at)
    publish_exceeded(lake, engine, month)
    return [Issued(number, draft, record)
            for (number, draft), (_, record) in zip(numbered, due, strict=True)]


def exceeded_events(lake: Lake, engine: sa.Engine, month: date) -> list[OutboxEvent]:
    """A ``subscription.invoicing_threshold_exceeded`` event (Orb's payload) per issued
    threshold invoice of ``month``, its id made from the invoice."""
    records = issued(lake, month)
    if not records:
        return []
    heads = {row["invoice_id"]: row for row in documents.issued_heads(lake).to_pylist()
             if row["document_type"] == "invoice"}
    with reading(engine) as connection:
        found = rows.read_rows(connection, None, {r.customer_id for r in records},
                               {r.subscription_id for r in records})
    events = []
    for record in records:
        head = heads[record.invoice_id]
        events.append(OutboxEvent(
            derived_event_id(EXCEEDED, record.invoice_id), EXCEEDED, head["issued_at"],
            {"subscription": subscription_object(
                record.subscription_id, found.versions[record.customer_id],
                found.changes[record.subscription_id], head["issued_at"]),
             "properties": {"evaluated_amount": cash(record.evaluated_amount, record.currency),
                            "invoice_id": head["number"],
                            "invoicing_threshold": cash(record.threshold, record.currency),
                            "threshold_invoice_created": True}},
            record.customer_id, record.subscription_id))
    return events


def cash(amount: Decimal, currency: str) -> str:
    """An amount as Orb's payloads give it: text in the currency's minor unit."""
    return str(money.quantize(amount, currency))


def publish_exceeded(lake: Lake, engine: sa.Engine, month: date) -> int:
    """Append the month's threshold events the outbox does not have yet (after a crash
    between issuing and this, the next evaluation appends them); the number appended."""
    events = exceeded_events(lake, engine, month)
    if not events:
        return 0
    with writing(engine) as connection:
        return outbox.append(connection, events, events[-1].created_at, ACTOR)
