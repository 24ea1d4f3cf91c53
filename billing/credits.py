"""Prepaid credits: a grant, and the rules by which grants pay invoices.

A grant (amount in the invoice currency, cost basis per credit, effective and expiry
dates in the customer's calendar) can pay an invoice dated D when
``effective_date < D <= expiry_date``: the invoice's usage happened while the grant was
in effect. Each invoice, in date order, draws, up to its creditable amount, from its
customer's grants in its currency in this order: soonest expiry first (grants without
expiry last), then earliest effective date, then grant id. What is left of a grant when
it expires is booked as an expiry. Nothing is rounded: grants and invoice amounts are
already in minor units. The drawdown itself is set-based SQL over every customer at once
(``invoicing/sql/credit_drawdown.sql``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from billing import money


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
    """A ledger entry made by hand, written once: a ``decrement`` (``amount`` taken off the
    grant, negative), an ``amendment`` (``amount`` given back to it, positive), an
    ``expiration_change`` (the grant expires on ``new_expiry_date`` from then on;
    ``amount`` 0) or a ``void`` (what is left of the grant is gone from ``entry_date`` on;
    ``amount`` what was left when it was recorded)."""

    entry_id: str
    entry_type: str
    grant_id: str
    customer_id: str
    currency: str
    entry_date: date
    amount: Decimal
    new_expiry_date: date | None
    description: str
    actor: str
    created_at: datetime


class CreditsError(ValueError):
    """A ledger entry refused; ``problems`` are every field's, found in one pass."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("credit ledger entry refused: " + "; ".join(problems))


def draw_key(grant: Grant) -> tuple[date, date, str]:
    """The order grants pay in: soonest expiry first (none last), then earliest
    effective date, then grant id (as credit_drawdown.sql draws)."""
    return grant.expiry_date or date.max, grant.effective_date, grant.grant_id


def in_effect(grant: Grant, day: date) -> bool:
    """Whether ``grant`` can be drawn on during ``day``: in effect from its effective
    date, gone on its expiry date."""
    return grant.effective_date <= day and (grant.expiry_date is None
                                            or day < grant.expiry_date)


def with_expiry_changes(grants: list[Grant], entries: list[Entry]) -> list[Grant]:
    """The grants with each one's latest expiration change applied."""
    latest: dict[str, Entry] = {}
    for entry in sorted(entries, key=lambda e: e.created_at):
        if entry.entry_type == "expiration_change":
            latest[entry.grant_id] = entry
    return [replace(g, expiry_date=latest[g.grant_id].new_expiry_date)
            if g.grant_id in latest else g for g in grants]


def allocate(amount: Decimal, currency: str, grants: list[Grant],
             balances: dict[str, Decimal], day: date) -> list[tuple[Grant, Decimal]]:
    """Take ``amount`` off ``grants`` (one customer's, in one currency) as a drawdown
    would on ``day``: from the grants in effect that day with a balance, in draw order.
    Raises CreditsError when they do not hold it."""
    usable = sorted((g for g in grants if in_effect(g, day) and balances[g.grant_id] > 0),
                    key=draw_key)
    available = sum((balances[g.grant_id] for g in usable), Decimal(0))
    if amount > available:
        raise CreditsError([f"amount {amount} is more than the "
                            f"{money.quantize(available, currency)} the customer's "
                            f"grants in effect on {day} hold"])
    taken: list[tuple[Grant, Decimal]] = []
    left = amount
    for grant in usable:
        if left <= 0:
            break
        part = min(left, balances[grant.grant_id])
        taken.append((grant, part))
        left -= part
    return taken
