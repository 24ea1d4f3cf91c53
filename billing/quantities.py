"""Fixed-fee quantities that change within a billing period (Orb's
``update_fixed_fee_quantity``), and the pieces of a window each quantity is charged for.

A subscription's schedule is its quantity changes in the order recorded; a later change
takes the place of earlier-recorded ones for the same price starting on or after its day
(a correction), as plan changes do. A price's quantity on a day is that of the change
for it (or for every fixed fee: ``price_id`` None) with the latest start on or before
the day, else the price's own ``fixed_price_quantity``.

How a window is charged (docs/invoicing.md#fixed-fee-quantity-changes):

- in arrears: one piece per quantity, each prorated by its days, on the window's invoice;
- in advance: the whole window at its first day's quantity, on the invoice dated its
  start, as it was invoiced then; a change on a later day ``d`` of the window charges
  the difference, price(new) - price(old), prorated over ``[d, end)``: an increase on an
  invoice dated ``d`` (Orb's immediate invoice), a decrease as a credit on the invoice
  dated the window's end, the next regular one (Orb credits the customer's balance,
  which the next invoice draws on; no invoice may be negative here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from itertools import pairwise
from typing import NamedTuple

from billing.catalog.models import FixedFeeQuantity


def folded(schedule: Iterable[FixedFeeQuantity]) -> list[FixedFeeQuantity]:
    """The changes in effect, of ``schedule`` in the order recorded: each drops the
    earlier ones for the same price that start on or after its day."""
    kept: list[FixedFeeQuantity] = []
    for change in schedule:
        kept = [q for q in kept
                if q.price_id != change.price_id or q.start_date < change.start_date]
        kept.append(change)
    return kept


def _own(schedule: Sequence[FixedFeeQuantity], price_id: str) -> list[FixedFeeQuantity]:
    """The changes in effect for ``price_id``, by start; of the same start, the one for
    the price itself over one for every fixed fee."""
    ours = [(q.start_date, q.price_id is not None, q) for q in folded(schedule)
            if q.price_id in (None, price_id)]
    return [q for *_, q in sorted(ours, key=lambda row: row[:2])]


def quantity_on(schedule: Sequence[FixedFeeQuantity], price_id: str, day: date,
                default: Decimal) -> Decimal:
    found = default
    for change in _own(schedule, price_id):
        if change.start_date > day:
            break
        found = change.quantity
    return found


def scheduled(schedule: Sequence[FixedFeeQuantity], price_id: str) -> bool:
    return any(q.price_id in (None, price_id) for q in schedule)


def intervals(schedule: Sequence[FixedFeeQuantity], price_id: str, default: Decimal,
              start: date, end: date | None) -> list[tuple[date, date | None, Decimal]]:
    """The price's quantity over ``[start, end)`` as ``(from, until, quantity)``, until
    None for open-ended, a change to the same quantity merged into the one before."""
    found: list[tuple[date, date | None, Decimal]] = []
    days = [start] + [q.start_date for q in _own(schedule, price_id)
                      if start < q.start_date and (end is None or q.start_date < end)]
    for day in sorted(set(days)):
        quantity = quantity_on(schedule, price_id, day, default)
        if found and found[-1][2] == quantity:
            continue
        if found:
            found[-1] = (found[-1][0], day, found[-1][2])
        found.append((day, end, quantity))
    return found


class Piece(NamedTuple):
    """Part of a window charged at one quantity, on the invoice dated ``invoice_date``.
    ``replaced``: the quantity already invoiced, priced and subtracted from the piece of
    the same price and start (the difference of an in-advance fee)."""

    start: date
    end: date
    invoice_date: date
    quantity: Decimal
    replaced: bool = False


def pieces(schedule: Sequence[FixedFeeQuantity], price_id: str, default: Decimal,
           start: date, end: date, in_advance: bool, invoice_date: date) -> list[Piece]:
    """The pieces of the window ``[start, end)`` of a fixed fee invoiced on
    ``invoice_date`` (its start in advance, its cycle's end in arrears)."""
    spans = intervals(schedule, price_id, default, start, end)
    if not in_advance:
        return [Piece(a, b or end, invoice_date, quantity) for a, b, quantity in spans]
    found = [Piece(start, end, invoice_date, spans[0][2])]
    for (_, _, before), (day, _, now) in pairwise(spans):
        dated = day if now > before else end
        found += [Piece(day, end, dated, now), Piece(day, end, dated, before, True)]
    return found
