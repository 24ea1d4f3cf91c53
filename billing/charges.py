"""What a billing run charges: the service windows of each subscription.

A window is part or all of one billing cycle of one subscription: the cycle cut to
the subscription's dates, its current phase (plan and version) and the end of any
trial. Every price of that plan version with the window's cycle (N months, N days or
once: billing/cycles.py) and timing is charged for it (the pricing SQL joins the
prices on). Fixed fees are billed in
advance, on the invoice dated the day the window starts; usage (and fixed fees in
arrears) on the invoice dated the end of the cycle, or the subscription's end if it
ends first. A customer's charges with the same invoice date and currency make one
invoice.

The run for billing month M makes every invoice dated after the 1st of M up to and
including the 1st of M+1 (the run that closes M, on the 1st of M+1): the arrears
invoices for cycles ending at the close of M, and in-advance charges for what starts
in that span. Fixed fees are prorated by day over a partial cycle; a usage price only
when its config says ``prorated``. A fixed fee whose quantity changes is charged on
pieces of its windows instead, one per quantity (``billing/quantities.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import NamedTuple, cast

from billing import money, periods, quantities
from billing.catalog import Catalog, Subscription
from billing.catalog.adjustments import Adjustment
from billing.catalog.models import Plan, PlanVersion
from billing.cycles import Cycle, billing_periods, cycle_date, day_periods
from billing.gc_pause import gc_paused


class BillingWindow(NamedTuple):
    """A tuple, not a dataclass: a run at 100,000 customers makes 200,000 of them."""

    invoice_id: str
    invoice_date: date
    billing_month: date
    window_id: str  # subscription and service dates: where usage is counted
    subscription_id: str
    customer_id: str
    plan_id: str
    plan_version: int
    cycle: str  # the prices' cycle (billing/cycles.py Cycle.key): month:1, day:14, one_time
    in_advance: bool
    currency: str
    currency_exponent: int
    service_start: date  # local dates, [start, end)
    service_end: date
    period_start: datetime  # the same, as UTC instants
    period_end: datetime
    active_days: int  # of the cycle's days: for proration
    period_days: int
    # A piece of a fixed fee whose quantity changes (billing/quantities.py): it charges
    # that price only, at this quantity; ``replaced``: the quantity it replaces.
    price_id: str | None = None
    quantity: Decimal | None = None
    replaced: bool = False


@dataclass(frozen=True)
class AdjustmentTerm:
    """An adjustment on one invoice, over the lines of one subscription that match:
    its plan version (plan adjustments), its prices, and its service dates (coupons)."""

    invoice_id: str
    subscription_id: str
    source: str  # "plan <id> v<n>", "subscription <id>" or "coupon <id>"
    adjustment: Adjustment
    plan_id: str | None = None
    plan_version: int | None = None
    valid_from: date | None = None
    valid_until: date | None = None


def run_span(month: date) -> tuple[date, date]:
    """Invoice dates the run for ``month`` makes: ``(first of month, first of next]``."""
    first = month.replace(day=1)
    return first, periods.add_months(first, 1)


def in_run(day: date, month: date) -> bool:
    after, through = run_span(month)
    return after < day <= through


def invoice_id(customer_id: str, invoice_date: date, currency: str) -> str:
    return f"{customer_id}-{_compact(invoice_date)}-{currency}"


@cache
def _compact(day: date) -> str:
    """``20261001``: formatting a date is slow, and a run has few distinct ones."""
    return f"{day:%Y%m%d}"


_Phases = tuple[tuple[str, date, int | None], ...]  # (plan id, start, pinned version)


def _phases(sub: Subscription) -> _Phases:
    """``sub.plan_phases`` as plain tuples: that property builds a model per call."""
    if sub.phases:
        return tuple((p.plan_id, p.start_date, p.plan_version) for p in sub.phases)
    return ((cast(str, sub.plan_id), cast(date, sub.start_date), sub.plan_version),)


def _phase_spans(phases: _Phases, end_date: date | None,
                 ) -> list[tuple[str, int | None, date, date | None]]:
    ends = [start for _, start, _ in phases[1:]] + [end_date]
    return [(plan_id, pinned, start, end)
            for (plan_id, start, pinned), end in zip(phases, ends, strict=True)]


def _versions(plan: Plan, pinned: int | None) -> list[PlanVersion]:
    if pinned is not None:
        return [plan.version(pinned)]
    return plan.all_versions()


def _billings(version: PlanVersion) -> list[tuple[Cycle, bool]]:
    """The (cycle, in advance) pairs the version's prices are billed on."""
    return sorted({(price.cycle, price.in_advance) for price in version.prices})


# Many subscriptions share a start, cycle day and time zone: compute those once.
_month_periods = cache(lambda *args: tuple(billing_periods(*args)))
_day_periods = cache(lambda *args: tuple(day_periods(*args)))
_local_period = cache(periods.local_date_period)


def _periods(cycle: Cycle, starts_on: date, cycle_day: int, phase_start: date,
             phase_end: date | None, first: date, through: date, billable_from: date,
             adds: bool) -> tuple[tuple[date, date], ...]:
    """The cycles of ``cycle`` over the phase that the run may bill. A one-time fee's is
    the first billable day of the phase that ``adds`` it (a phase on another plan than
    the one before it)."""
    if cycle.unit == "month":
        return _month_periods(starts_on, cycle_day, cycle.duration, phase_start, phase_end,
                              first, through)
    if cycle.unit == "day":  # counted from the subscription's start, cycle day aside
        return _day_periods(starts_on, cycle.duration, phase_start, phase_end, first,
                            through)
    day = max(phase_start, billable_from)
    if not adds or (phase_end is not None and day >= phase_end):
        return ()
    return ((day, day + timedelta(days=1)),)


class _Entry(NamedTuple):
    """One window of a subscription's calendar: what a BillingWindow holds but its
    subscription's and customer's names, and whether the run invoices it."""

    invoice_date: date
    in_run: bool
    version: PlanVersion
    span: str  # the service dates, as the window id ends
    # from here on BillingWindow's fields, in its order (``_named`` passes them on as is)
    plan_id: str
    plan_version: int
    cycle: str
    in_advance: bool
    currency: str
    currency_exponent: int
    service_start: date
    service_end: date
    period_start: datetime
    period_end: datetime
    active_days: int
    period_days: int


def _calendar(sub: Subscription, phases: _Phases, timezone: str, first: date, through: date,
              plans: dict[str, Plan],
              billings: dict[tuple[str, int], list[tuple[Cycle, bool]]],
              versions: dict[tuple[str, int | None], list[PlanVersion]]) -> tuple[_Entry, ...]:
    """The windows of ``sub`` (its ``phases``) that the run for ``(first, through]``
    invoices, in time zone ``timezone``; with fixed-fee quantities, also those it does not
    (their pieces may be invoiced in this run). ``billings``: each (plan id, version)'s
    ``_billings``; ``versions``: each (plan id, pinned version)'s ``_versions``; both
    computed once per run, as the lookups by id."""
    exponent = money.exponent
    starts_on, cycle_day = phases[0][1], sub.cycle_day
    billable_from = sub.trial_end_date or starts_on
    every = bool(sub.fixed_fee_quantities)
    entries = []
    previous_plan = None
    for plan_id, pinned, phase_start, phase_end in _phase_spans(phases, sub.end_date):
        plan = plans[plan_id]
        adds, previous_plan = plan.id != previous_plan, plan.id
        for version in versions[plan.id, pinned]:
            for cycle, in_advance in billings[plan.id, version.version]:
                for begin, after in _periods(cycle, starts_on, cycle_day, phase_start,
                                             phase_end, first, through, billable_from, adds):
                    start = max(begin, phase_start, billable_from)
                    end = min(after, phase_end or after)
                    # An unpinned phase bills each window at the version in effect when
                    # the window starts.
                    if start >= end or (pinned is None and plan.versions
                                        and plan.version_on(start).version != version.version):
                        continue
                    invoice_date = start if in_advance else min(after, sub.end_date or after)
                    in_run = first < invoice_date <= through  # inline: called a lot
                    if not in_run and not every:
                        continue
                    window = _local_period(start, end, timezone)
                    entries.append(_Entry(
                        invoice_date, in_run, version,
                        f"{_compact(start)}-{_compact(end)}", plan.id, version.version,
                        cycle.key, in_advance, plan.currency, exponent(plan.currency), start,
                        end, window.start, window.end, (end - start).days,
                        (after - begin).days))
    return tuple(entries)


def _calendar_key(sub: Subscription, phases: _Phases, timezone: str) -> tuple[object, ...]:
    """Every field ``_calendar`` reads: subscriptions with the same key (many start on the
    same dates, on a few plans) share one calendar."""
    return (phases, sub.end_date, sub.trial_end_date, sub.billing_cycle_day,
            sub.align_billing_with_subscription_start_date, bool(sub.fixed_fee_quantities),
            timezone)


def _named(calendar: tuple[_Entry, ...], sub: Subscription, first: date, through: date,
           timezone: str) -> list[BillingWindow]:
    """The windows of ``calendar`` the run invoices, as ``sub``'s and its customer's
    (a calendar holds windows outside the run only for fixed-fee quantities' pieces)."""
    customer_id = sub.customer_id
    windows = []
    for entry in calendar:
        charged = BillingWindow(
            invoice_id(customer_id, entry.invoice_date, entry.currency), entry.invoice_date,
            first, f"{sub.id}:{entry.span}", sub.id, customer_id, *entry[4:])
        if sub.fixed_fee_quantities:
            windows += _quantity_windows(charged, sub, entry.version, entry.in_run, first,
                                         through, timezone)
        else:
            windows.append(charged)
    return windows


def _quantity_windows(charged: BillingWindow, sub: Subscription, version: PlanVersion,
                      in_run: bool, first: date, through: date,
                      timezone: str) -> list[BillingWindow]:
    """``charged`` (when the run makes its invoice) and the pieces of each of its fixed
    fees whose quantity changes that the run's invoices charge; the pricing SQL charges
    such a fee on its pieces only. A piece of an in-advance fee may be invoiced in a later
    run than its window (a change mid-period)."""
    schedule = sub.fixed_fee_quantities
    made = [charged] if in_run else []
    for price in version.prices:
        if (price.fixed_price_quantity is None or price.cycle.key != charged.cycle
                or price.in_advance != charged.in_advance
                or not quantities.scheduled(schedule, price.id)):
            continue
        for piece in quantities.pieces(schedule, price.id, price.fixed_price_quantity,
                                       charged.service_start, charged.service_end,
                                       charged.in_advance, charged.invoice_date):
            if not first < piece.invoice_date <= through:
                continue
            period = _local_period(piece.start, piece.end, timezone)
            made.append(charged._replace(
                invoice_id=invoice_id(charged.customer_id, piece.invoice_date,
                                      charged.currency),
                invoice_date=piece.invoice_date, service_start=piece.start,
                service_end=piece.end, period_start=period.start, period_end=period.end,
                active_days=(piece.end - piece.start).days, price_id=price.id,
                quantity=piece.quantity, replaced=piece.replaced))
    return made


def billing_windows(catalog: Catalog, month: date) -> tuple[BillingWindow, ...]:
    """Every window charged on the invoices the run for ``month`` makes; computed once
    per catalog and month (rating, pricing and invoicing each ask)."""
    key = ("billing_windows", month)
    if key not in catalog.derived:
        with gc_paused():
            catalog.derived[key] = _billing_windows(catalog, month)
    return cast(tuple[BillingWindow, ...], catalog.derived[key])


def _billing_windows(catalog: Catalog, month: date) -> tuple[BillingWindow, ...]:
    first, through = run_span(month)
    billings = {(plan.id, version.version): _billings(version) for plan in catalog.plans
                for version in plan.all_versions()}
    versions = {(plan.id, pinned): _versions(plan, pinned) for plan in catalog.plans
                for pinned in (None, *(version.version for version in plan.all_versions()))}
    timezones = {c.id: c.timezone for c in catalog.customers}
    plans = {p.id: p for p in catalog.plans}
    calendars: dict[tuple[object, ...], tuple[_Entry, ...]] = {}
    rows = []
    for sub in catalog.subscriptions:
        timezone = timezones[sub.customer_id]
        phases = _phases(sub)
        key = _calendar_key(sub, phases, timezone)
        calendar = calendars.get(key)
        if calendar is None:
            calendar = calendars[key] = _calendar(sub, phases, timezone, first, through,
                                                  plans, billings, versions)
        rows += _named(calendar, sub, first, through, timezone)
    return tuple(sorted(rows, key=lambda w: (w.invoice_id, w.window_id, w.cycle,
                                             w.in_advance)))


def adjustment_terms(catalog: Catalog, windows: Sequence[BillingWindow]) -> list[AdjustmentTerm]:
    """Each plan, subscription and coupon adjustment on each invoice it can touch."""
    subs = {sub.id: sub for sub in catalog.subscriptions}
    terms: dict[tuple[str, str, str, str], AdjustmentTerm] = {}
    plan_adjustments = {(plan.id, version.version): version.adjustments
                        for plan in catalog.plans for version in plan.all_versions()}
    # Most invoices have nothing to look at, so only the windows of a plan version with
    # adjustments, or of a subscription with adjustments or coupons of its own, are
    # looked at: a loop over every invoice cost as much as making the terms. The terms
    # depend on the invoice, subscription and plan version only: each such set of
    # windows (an invoice's several prices and cycles) is looked at once.
    adjusted = {key for key, adjustments in plan_adjustments.items() if adjustments}
    own = {sub.id for sub in catalog.subscriptions if sub.adjustments or sub.coupons}
    for invoice_id, sub_id, plan_id, plan_version in {
            (w.invoice_id, w.subscription_id, w.plan_id, w.plan_version) for w in windows
            if w.subscription_id in own or (w.plan_id, w.plan_version) in adjusted}:
        sub = subs[sub_id]
        candidates = [AdjustmentTerm(invoice_id, sub.id, f"plan {plan_id} v{plan_version}",
                                     a, plan_id, plan_version)
                      for a in plan_adjustments[plan_id, plan_version]]
        candidates += [AdjustmentTerm(invoice_id, sub.id, f"subscription {sub.id}", a)
                       for a in sub.adjustments]
        for redemption in sub.coupons:
            coupon = catalog.coupon(redemption.coupon_id)
            redeemed = redemption.redeemed_on or sub.starts_on
            until = None if coupon.duration_in_months is None else cycle_date(
                periods.add_months(redeemed, coupon.duration_in_months), redeemed.day)
            candidates.append(AdjustmentTerm(invoice_id, sub.id, f"coupon {coupon.id}",
                                             coupon.adjustment(), valid_from=redeemed,
                                             valid_until=until))
        for term in candidates:
            terms.setdefault((term.invoice_id, term.subscription_id, term.source,
                              term.adjustment.id), term)
    return [terms[key] for key in sorted(terms)]
