"""Prepaid credits: grants drawn down against invoices, as ledger entries.

A grant (amount in the invoice currency, cost basis per credit, effective and expiry
dates in the customer's calendar) can pay an invoice dated D when
``effective_date < D <= expiry_date``: the invoice's usage happened while the grant was
in effect. Each invoice draws, up to its creditable amount, from its customer's grants
in this order: soonest expiry first (grants without expiry last), then earliest
effective date, then grant id. What is left of a grant when it expires is booked as an
expiry. Nothing here is rounded: grants and invoice amounts are already in minor units.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True)
class Grant:
    grant_id: str
    customer_id: str
    currency: str
    amount: Decimal
    cost_basis: Decimal  # what the customer paid per credit: 0 for a free grant
    effective_date: date
    expiry_date: date | None
    reason: str = ""


@dataclass(frozen=True)
class Entry:
    entry_type: str  # "drawdown" or "expiry" (grants are their own records)
    grant_id: str
    customer_id: str
    currency: str
    entry_date: date
    amount: Decimal  # negative: what the grant lost
    invoice_id: str | None = None


@dataclass(frozen=True)
class Creditable:
    invoice_id: str
    customer_id: str
    currency: str
    invoice_date: date
    amount: Decimal  # the most credits may pay on this invoice


def _usable(grant: Grant, invoice: Creditable) -> bool:
    return (grant.customer_id == invoice.customer_id and grant.currency == invoice.currency
            and grant.effective_date < invoice.invoice_date
            and (grant.expiry_date is None or invoice.invoice_date <= grant.expiry_date))


def _draw_order(grant: Grant) -> tuple[date, date, str]:
    return (grant.expiry_date or date.max, grant.effective_date, grant.grant_id)


def draw_down(grants: list[Grant], balances: dict[str, Decimal], invoices: list[Creditable],
              span: tuple[date, date]) -> list[Entry]:
    """Ledger entries for one billing run: each invoice's drawdowns in date order, then
    the expiries in ``span`` (after its first day, up to and including its last).
    ``balances`` is each grant's balance before the run."""
    after, through = span
    left = {g.grant_id: balances.get(g.grant_id, g.amount) for g in grants}
    entries = []
    ordered = sorted(grants, key=_draw_order)
    by_owner: dict[tuple[str, str], list[Grant]] = {}
    for grant in ordered:
        by_owner.setdefault((grant.customer_id, grant.currency), []).append(grant)
    for invoice in sorted(invoices, key=lambda i: (i.invoice_date, i.invoice_id)):
        need = invoice.amount
        for grant in by_owner.get((invoice.customer_id, invoice.currency), []):
            if need <= 0:
                break
            if left[grant.grant_id] > 0 and _usable(grant, invoice):
                take = min(need, left[grant.grant_id])
                left[grant.grant_id] -= take
                need -= take
                entries.append(Entry("drawdown", grant.grant_id, grant.customer_id,
                                     grant.currency, invoice.invoice_date, -take,
                                     invoice.invoice_id))
    entries += [Entry("expiry", g.grant_id, g.customer_id, g.currency, g.expiry_date,
                      -left[g.grant_id])
                for g in ordered
                if g.expiry_date and after < g.expiry_date <= through and left[g.grant_id] > 0]
    return entries


def applied_by_invoice(entries: list[Entry]) -> dict[str, Decimal]:
    """Credits paid on each invoice (positive)."""
    paid: dict[str, Decimal] = {}
    for entry in entries:
        if entry.entry_type == "drawdown":
            assert entry.invoice_id is not None, "a drawdown is always on an invoice"
            paid[entry.invoice_id] = paid.get(entry.invoice_id, ZERO) - entry.amount
    return paid
