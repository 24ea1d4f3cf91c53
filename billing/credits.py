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

from dataclasses import dataclass
from datetime import date
from decimal import Decimal


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
