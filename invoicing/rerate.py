"""Re-rating a billing month: what recomputing it would change, before anything is written.

The month is recomputed in memory from the lake, the catalog folder and the state store
as they are now (usage,
prices, adjustments, credits) and compared with what stands: the current draft of
each invoice, or for an issued invoice what it and its issued corrections billed.
Writing it is an ordinary run of the month (``orb rerate`` without ``--dry-run``, or
a backfill in the UI): drafts are replaced, issued invoices get corrections.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from invoicing.issuing import compute_corrections, invoice_run, register_issued
from invoicing.thresholds import with_threshold_lines
from pricing_sql.rating import compute_usage, price_line_items
from pricing_sql.run_catalog import current_catalog
from storage.duck import connect
from storage.settings import Deployment

ZERO = Decimal(0)
# What re-running the month does to an invoice: to its draft, or to an issued invoice.
Action = Literal["new draft", "replace draft", "draft dropped", "none", "credit note",
                 "adjustment invoice", "none (issued)"]


@dataclass(frozen=True)
class Difference:
    customer_id: str
    invoice_id: str
    currency: str
    before: Decimal | None  # None: no such invoice yet
    after: Decimal | None  # None: the run no longer makes it
    action: Action

    @property
    def difference(self) -> Decimal:
        return (self.after or ZERO) - (self.before or ZERO)


def preview(deployment: Deployment, month: date) -> list[Difference]:
    """Every invoice of the month whose amount a re-run would change, or create."""
    lake, con = deployment.lake, connect()
    # a preview: the state store as it is now, as the month's next run would read it
    catalog = current_catalog(deployment)
    rated = compute_usage(con, lake, catalog, month)
    priced = price_line_items(con, catalog, month, rated.usage, rated.excluded)
    line_items, _ = with_threshold_lines(lake, catalog, month, priced.line_items,
                                         priced.sub_line_items,
                                         rated.excluded | set(priced.failures))
    invoiced = invoice_run(con, lake, catalog, month, line_items)
    corrections = compute_corrections(con, lake, month, line_items,
                                      invoiced.adjustments,
                                      rated.excluded | set(priced.failures),
                                      invoiced.taxes).to_pylist()
    after = {row["invoice_id"]: row for row in invoiced.invoices.to_pylist()}
    drafts_file = lake.partition_file("invoices", "billing_month", month)
    before = ({row["invoice_id"]: row for row in
               lake.read_partition("invoices", "billing_month", month).to_pylist()}
              if drafts_file.exists() else {})
    register_issued(con, lake, month)
    issued = {row["invoice_id"]: row for row in con.sql(
        "SELECT h.invoice_id, any_value(h.customer_id) AS customer_id, "
        "any_value(h.currency) AS currency, "
        "sum(h.subtotal + h.adjustments + coalesce(h.tax, 0)) AS billed "
        "FROM issued_heads AS h JOIN document_status USING (number) "
        "WHERE status <> 'void' GROUP BY h.invoice_id").to_arrow_table().to_pylist()}
    corrected: defaultdict[str, Decimal] = defaultdict(Decimal)
    for row in corrections:
        corrected[row["invoice_id"]] += row["amount"]

    result = []
    action: Action
    for invoice_id in sorted(set(after) | set(before) | set(issued)):
        head = after.get(invoice_id) or before.get(invoice_id) or issued[invoice_id]
        if invoice_id in issued:
            billed = issued[invoice_id]["billed"]
            change = corrected.get(invoice_id, ZERO)
            action = ("credit note" if change < 0 else "adjustment invoice") if (
                invoice_id in corrected) else "none (issued)"
            result.append(Difference(head["customer_id"], invoice_id, head["currency"], billed,
                                     billed + change, action))
            continue
        old = before.get(invoice_id, {}).get("total")
        new = after.get(invoice_id, {}).get("total")
        action = ("new draft" if old is None else "draft dropped" if new is None
                  else "replace draft" if new != old else "none")
        result.append(Difference(head["customer_id"], invoice_id, head["currency"], old, new,
                                 action))
    return result
