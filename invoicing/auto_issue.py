"""Auto-issue: a billing run's draft invoices are issued by themselves once their period
has been over for a grace period (``ORB_AUTO_ISSUE_GRACE_DAYS``; unset: off, drafts wait
for ``orb invoices issue``), as Lago's grace period and Orb's ``auto_issuance`` do.

A draft invoice dated D (the day its period ended, for usage in arrears) is issued from day
``D + grace`` on, days of the customer's calendar (the time zone its run dated it in),
through ``issue_month``, the issuing run ``orb invoices issue`` uses: the next numbers,
frozen lines, custom fields at issue. Issuing takes only drafts not issued, so running it
again issues nothing twice. Only invoices are auto-issued: re-rating's credit notes and
adjustment invoices wait for a person, and so do one-off invoices (Orb: issued on creation
with ``will_auto_issue``, else by hand). A month whose tables are not all from its
newest completed run is skipped, named in the result, not issued.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import duckdb

from invoicing.document_model import Draft
from invoicing.issuing import DRAFT_TABLES, customers_today, drafts, issue_month
from storage.billing_runs import MixedBillingRun, completed_runs, read_month
from storage.lake import Lake


@dataclass
class AutoIssued:
    issued: list[tuple[str, Draft]] = field(default_factory=list)
    skipped: dict[date, str] = field(default_factory=dict)  # month -> why


def billed_months(lake: Lake) -> list[date]:
    """The billing months with a completed billing run."""
    months = {date.fromisoformat(Lake.partition_value(path))
              for path in lake.all_files("billing_runs")}
    return sorted(m for m in months if completed_runs(lake, m))


def due(draft: Draft, grace_days: int, today: date) -> bool:
    """Whether ``draft`` is issued by itself on its customer's ``today``."""
    return (draft.head.document_type == "invoice"
            and draft.head.invoice_date + timedelta(days=grace_days) <= today)


def auto_issue(con: duckdb.DuckDBPyConnection, lake: Lake, grace_days: int | None,
               at: datetime) -> AutoIssued:
    """Issue every billed month's draft invoices dated ``grace_days`` or more before
    ``at``'s day in their customer's time zone; nothing when ``grace_days`` is None (the
    default: off)."""
    result = AutoIssued()
    if grace_days is None:
        return result
    if grace_days < 0:
        raise ValueError(f"ORB_AUTO_ISSUE_GRACE_DAYS must be 0 or more days, not {grace_days}")
    # a customer's today is at most a day after UTC's (UTC+14 is the most)
    cutoff = at.astimezone(UTC).date() + timedelta(days=1 - grace_days)
    # a run of month M drafts invoices dated up to the 1st of M+1: earlier months only
    for month in (m for m in billed_months(lake) if m <= cutoff):
        try:
            run = read_month(lake, month, DRAFT_TABLES)
            today = customers_today(lake, run, at)
            references = {d.head.reference for d in drafts(con, lake, month, run)
                          if due(d, grace_days, today(d.head.customer_id))}
            if references:
                result.issued += issue_month(con, lake, month, at, references=references)
        except MixedBillingRun as exc:
            result.skipped[month] = str(exc)
    return result
