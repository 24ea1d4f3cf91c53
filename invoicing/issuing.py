"""From a billing run's drafts to issued documents, and corrections of issued ones.

A run's drafts are its computed invoices not yet issued, plus a correction for each
issued invoice whose recomputed lines differ from what was billed (a credit note when
the difference is negative, an adjustment invoice when positive). Re-running a month
replaces its drafts; issued documents never change. Drafts are read only from a month
whose tables all come from its newest completed billing run (``storage/billing_runs.py``),
and issuing checks again that their totals add up, on the very rows it freezes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from billing import periods
from billing.catalog import Catalog
from invoicing import credit_grants as credits
from invoicing import documents, invoice_metadata, thresholds
from invoicing.assembly import Invoiced, assemble_invoices
from invoicing.checks import total_failures
from invoicing.document_model import (
    CorrectionLine,
    DocumentHead,
    DocumentLine,
    Draft,
    IssuedHead,
    LineKind,
)
from invoicing.sql import load_sql
from state import lake_snapshot
from storage.billing_runs import MonthTables, read_month
from storage.lake import Lake
from storage.tables import INVOICE_CORRECTIONS as CORRECTIONS
from storage.tables import INVOICE_TAXES

# What a month's drafts are made of, read together from one billing run.
DRAFT_TABLES = ("invoices", "line_items", "invoice_adjustments", "invoice_taxes",
                "invoice_corrections")


class IssueRefused(RuntimeError):
    """The drafts about to be issued do not add up: nothing was issued."""


def register_issued(con: duckdb.DuckDBPyConnection, lake: Lake, month: date) -> None:
    """Views ``issued_heads``, ``issued_lines`` and ``document_status`` of the documents
    issued from ``month``'s run: an invoice id belongs to one run, so re-rating a month
    reads that month's documents, not the whole history."""
    heads = documents.issued_heads(lake)
    heads = heads.filter(pc.equal(heads["billing_month"], pa.scalar(month, pa.date32())))
    numbers = heads.column("number").to_pylist()
    con.register("issued_heads", heads)
    con.register("issued_lines", documents.issued_lines(lake, numbers))
    con.register("document_status", pa.Table.from_pylist(
        [{"number": n, "status": s}
         for n, s in documents.statuses(con, lake, numbers).items()],
        schema=pa.schema([("number", pa.string()), ("status", pa.string())])))


def issued_credits(con: duckdb.DuckDBPyConnection, lake: Lake, month: date) -> dict[str, Decimal]:
    """Credits on the month's issued invoices: they stay as issued when the month is re-run."""
    register_issued(con, lake, month)
    return dict(con.execute(
        "SELECT invoice_id, sum(credits_applied) FROM issued_heads "
        "JOIN document_status USING (number) WHERE status <> 'void' "
        "AND document_type = 'invoice' GROUP BY ALL").fetchall())


def invoice_run(con: duckdb.DuckDBPyConnection, lake: Lake, catalog: Catalog, month: date,
                line_items: pa.Table) -> Invoiced:
    """The month's invoices from its line items, with the lake's credit grants and
    balances, and the credits of invoices already issued kept as they were."""
    grants = credits.read_grants(lake)
    return assemble_invoices(con, catalog, month, line_items, grants,
                             credits.balances_before(con, lake, grants, month),
                             issued_credits(con, lake, month))


def document_lines(con: duckdb.DuckDBPyConnection, line_items: pa.Table,
                   adjustments: pa.Table, taxes: pa.Table | None = None) -> pa.Table:
    """document_lines.sql: line items, adjustments and a tax line per rate (``taxes``:
    the run's ``invoice_taxes``; none when omitted)."""
    con.register("line_items", line_items)
    con.register("invoice_adjustments", adjustments)
    con.register("invoice_taxes", INVOICE_TAXES.empty_table() if taxes is None else taxes)
    return con.sql(load_sql("document_lines")).to_arrow_table()


def compute_corrections(con: duckdb.DuckDBPyConnection, lake: Lake, month: date,
                        line_items: pa.Table, adjustments: pa.Table,
                        excluded: Collection[str], taxes: pa.Table | None = None) -> pa.Table:
    """Correction lines for the run's issued invoices, each with its correction's id
    (``<invoice id>~<n>``, n counting the invoice's corrections) and type. The issued
    invoices of ``excluded`` customers (left out of the run because rating them raised:
    ``rating_exclusions``) are not corrected: the run says nothing about them, and a
    credit note reversing them would be wrong. ``taxes``: the run's tax lines, corrected
    like any line (the difference of each rate's tax)."""
    register_issued(con, lake, month)
    con.register("excluded_customers", pa.table({"customer_id": pa.array(
        sorted(excluded), pa.string())}))
    con.register("computed_lines", document_lines(con, line_items, adjustments, taxes))
    rows = con.sql(load_sql("corrections"), params={"month": month}).to_arrow_table().to_pylist()
    issued_before = dict(con.sql("SELECT invoice_id, count(*) FROM issued_heads "
                                 "WHERE document_type <> 'invoice' GROUP BY ALL").fetchall())
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        if row["kind"] != "included_tax":  # in the lines' amounts already
            totals[row["invoice_id"]] += row["amount"]
    for row in rows:
        invoice = row["invoice_id"]
        row["correction_id"] = f"{invoice}~{issued_before.get(invoice, 0) + 1}"
        row["document_type"] = "credit_note" if totals[invoice] < 0 else "adjustment_invoice"
    return pa.Table.from_pylist(rows, schema=CORRECTIONS)


def drafts(con: duckdb.DuckDBPyConnection, lake: Lake, month: date,
           run: MonthTables | None = None) -> list[Draft]:
    """The run's documents waiting to be issued: its invoices not issued (or voided),
    then its corrections, in id order. ``run``: the month's ``DRAFT_TABLES`` already
    read (``read_month``); else they are read here, refused unless they all come from
    the month's newest completed billing run."""
    if run is None:
        run = read_month(lake, month, DRAFT_TABLES)
    register_issued(con, lake, month)
    issued = con.sql("SELECT h.*, s.status FROM issued_heads AS h "
                     "JOIN document_status AS s USING (number)").to_arrow_table().to_pylist()
    live = {h["invoice_id"] for h in issued
            if h["status"] != "void" and h["document_type"] == "invoice"}
    invoices = computed_drafts(con, run["invoices"], run["line_items"],
                               run["invoice_adjustments"], run["invoice_taxes"])
    result = [draft for draft in invoices if draft.head.invoice_id not in live]
    return result + _correction_drafts(
        run, {h["number"]: IssuedHead.from_row(h) for h in issued},
        {draft.head.invoice_id: draft.head for draft in invoices})


def computed_drafts(con: duckdb.DuckDBPyConnection, invoices: pa.Table, line_items: pa.Table,
                    adjustments: pa.Table, taxes: pa.Table | None = None) -> list[Draft]:
    """The computed ``invoices`` as drafts, with their lines: a run's, or one customer's
    computed on demand (the API's upcoming invoice)."""
    lines: defaultdict[str, list[DocumentLine]] = defaultdict(list)
    for row in document_lines(con, line_items, adjustments, taxes).to_pylist():
        lines[row["invoice_id"]].append(DocumentLine.from_row(row))
    return [Draft(head, tuple(lines[head.invoice_id]))
            for head in map(_invoice_head, invoices.to_pylist())]


def _invoice_head(invoice: Mapping[str, Any]) -> DocumentHead:
    """The head of a computed invoice's draft (``invoice``: a row of ``invoices``)."""
    return DocumentHead.from_row({**invoice, "document_type": "invoice", "corrects": None,
                                  "correction_id": None})


def _correction_drafts(run: MonthTables, originals: dict[str, IssuedHead],
                       invoices: dict[str, DocumentHead]) -> list[Draft]:
    month = run.month
    corrections: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in run["invoice_corrections"].to_pylist():
        corrections[row["correction_id"]].append(row)
    result = []
    for correction_id in sorted(corrections):
        first = corrections[correction_id][0]
        lines = tuple(CorrectionLine.from_row(row) for row in corrections[correction_id])
        original = originals[first["corrects"]]
        # Due like the recomputed invoice; one the run no longer makes keeps its own date.
        due = invoices.get(first["invoice_id"], original).due_date
        result.append(Draft(DocumentHead(
            document_type=first["document_type"], invoice_id=first["invoice_id"],
            correction_id=correction_id, corrects=original.number,
            customer_id=original.customer_id, currency=original.currency,
            billing_month=month, invoice_date=original.invoice_date, due_date=due,
            subtotal=_total(lines, "line"), adjustments=_total(lines, "adjustment"),
            credits_applied=Decimal(0), tax=_total(lines, "tax"),
            total=_total(lines, "line", "adjustment", "tax")), lines))
    return result


def _total(lines: tuple[DocumentLine, ...], *kinds: LineKind) -> Decimal:
    return sum((line.amount for line in lines if line.kind in kinds), Decimal(0))


def issue_month(con: duckdb.DuckDBPyConnection, lake: Lake, month: date, at: datetime,
                customers: set[str] | None = None, references: set[str] | None = None,
                ) -> list[tuple[str, Draft]]:
    """Issue every draft of the run for ``month`` (or of ``customers``, or those named
    by ``references``: the API issues one) dated on or before ``at`` as one issuing run:
    numbers in draft order, frozen heads and lines and an 'issued' event each, in one
    file per table (``documents.issue_all``). A draft dated later (its period has not
    closed: its date has not begun in the customer's time zone, ``customers_today``)
    stays a draft. Returns (number, draft) pairs.

    Refused, with nothing issued, when the month's tables are not all from its newest
    completed billing run (``MixedBillingRun``), or when the invoice totals check fails
    on the rows read (``IssueRefused``)."""
    with lake.lock("issue"):
        run = read_month(lake, month, DRAFT_TABLES)
        if stale := thresholds.missing_from(lake, month, run["invoices"]):
            raise IssueRefused(
                f"threshold invoices {', '.join(stale)} were issued after the newest "
                f"completed billing run of {month:%Y-%m}, whose final invoices do not take "
                f"them off yet; nothing was issued: re-run the month with "
                f"`orb bill --period {month:%Y-%m}`")
        failures = total_failures(run)
        if failures:
            raise IssueRefused(
                f"the drafts of {month:%Y-%m} do not add up, nothing was issued: "
                + "; ".join(f"{invoice}: {problem}" for invoice, problem in failures[:10])
                + f"; re-run the month with `orb bill --period {month:%Y-%m}`")
        today = customers_today(lake, run, at)
        due = [draft for draft in drafts(con, lake, month, run)
               if draft.head.invoice_date <= today(draft.head.customer_id)
               and (customers is None or draft.head.customer_id in customers)
               and (references is None or draft.head.reference in references)]
        return documents.issue_all(lake, with_custom_fields(lake, due), at)


def customers_today(lake: Lake, run: MonthTables, at: datetime) -> Callable[[str], date]:
    """Each customer's day at ``at``, on the calendar the run dated their invoices on:
    the time zone in the run's state snapshot. A draft dated D is due once D has begun
    there; by UTC's day, a customer west of UTC would be issued up to their offset early.
    A month billed before runs kept snapshots, or a customer its snapshot does not hold,
    has only UTC's day."""
    try:
        zones = lake_snapshot.time_zones(
            lake, run.month, lake_snapshot.find(lake, run.month, run.run_id))
    except lake_snapshot.SnapshotMissing:
        zones = {}
    return periods.local_days(at, zones)


def with_custom_fields(lake: Lake, due: list[Draft]) -> list[Draft]:
    """The drafts with what they print as custom fields: their metadata now, frozen
    with them when issued (``invoicing/invoice_metadata.py``)."""
    fields = invoice_metadata.custom_fields(lake, {d.head.reference for d in due})
    return [replace(d, details=replace(d.details, custom_fields=fields[d.head.reference]))
            if d.head.reference in fields else d for d in due]
