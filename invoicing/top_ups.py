"""Credit top-ups evaluated (docs/api.md#top-ups): when a customer's prepaid balance in a
currency is at or below its active top-up's threshold (Orb's rule), the top-up grants
``amount`` credits (a credit grant, ``credit_grants.record_grant``) and bills their
purchase, ``amount × per_unit_cost_basis`` rounded once to the currency's minor unit
(ROUND_HALF_UP, by the one-off invoice's line: ``invoicing.one_off``), once per crossing
(``state.top_ups``' triggers).

Evaluated where the balance can have changed: after each billing run's drawdowns and
every alert evaluation (``webhooks.alerts.evaluate_logged``), after a credit ledger entry
or a top-up made through the API, and by ``orb credits top-up evaluate``.

A fired trigger is written first, with the grant id made from it; the grant and the
purchase invoice follow. An evaluation that finds a fired trigger without its grant or
invoice (a crash between the writes) completes it, so neither is lost nor made twice
(except an invoice made just before a crash, before its id was recorded: made again).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from billing import money, periods
from billing.catalog import Catalog, Customer
from invoicing import credit_grants, one_off
from pricing_sql.run_catalog import current_catalog
from state import StateError, StateStore
from state import top_ups as stored
from state.top_ups import TopUp, Trigger
from storage.settings import Deployment
from storage.tables import TABLES

log = logging.getLogger(__name__)

ACTOR = "top_ups"


@dataclass(frozen=True)
class Evaluated:
    fired: int = 0  # top-ups fired: a grant and a purchase each
    rearmed: int = 0


def create(deployment: Deployment, top_up: TopUp, actor: str) -> str | None:
    """Check and write ``top_up`` (fields named ``body.<field>``): ``stored.checked``'s
    rules, and a currency the customer is billed in (a grant pays only invoices in its
    currency) with a cost basis a grant holds. Returns the id of the one it replaced."""
    top_up = stored.checked(top_up)
    catalog = current_catalog(deployment)
    problems = []
    billed_in = credit_grants.customer_currencies(catalog, top_up.customer_id)
    if top_up.currency not in billed_in:
        problems.append(f"body.currency: customer {top_up.customer_id!r} is billed in "
                        f"{', '.join(sorted(billed_in)) or 'no currency (no subscription)'}; "
                        f"a top-up's credits pay only invoices in {top_up.currency}")
    problems += [f"body.per_unit_cost_basis: {p}"
                 for p in credit_grants.cost_basis_problems(top_up.per_unit_cost_basis)]
    if problems:
        raise StateError(problems)
    with StateStore.open(deployment.state_store_url) as store:
        return stored.create(store.engine, top_up, actor)


def evaluate(deployment: Deployment, now: datetime,
             customer_ids: Collection[str] | None = None) -> Evaluated:
    """Evaluate the active top-ups of ``customer_ids`` (None: every customer) as of
    ``now``: fire those at or below their threshold and armed, re-arm those above it."""
    with StateStore.open(deployment.state_store_url) as store:
        engine = store.engine
        top_ups = [t for t in stored.active(engine, customer_ids) if t.active_from <= now]
        if not top_ups:
            return Evaluated()
        catalog = current_catalog(deployment)
        customers = {c.id: c for c in catalog.customers}
        latest = stored.latest_triggers(engine, [t.top_up_id for t in top_ups])
        for top_up in top_ups:  # a fired trigger left without its grant or invoice
            last = latest.get(top_up.top_up_id)
            if last is not None and last.kind == "fired":
                _complete(deployment, catalog, customers[top_up.customer_id], top_up, last,
                          now, engine)
        left = credit_grants.balances_in_effect(
            deployment.lake, {(t.customer_id, t.currency) for t in top_ups}, customers, now)
        fired = rearmed = 0
        for top_up in top_ups:
            balance = left.get((top_up.customer_id, top_up.currency), Decimal(0))
            if balance <= top_up.threshold:
                purchase = money.quantize(top_up.amount * top_up.per_unit_cost_basis,
                                          top_up.currency)
                trigger = stored.record_trigger(engine, top_up.top_up_id, "fired", balance,
                                                ACTOR, now, purchase)
                if trigger is not None:
                    _complete(deployment, catalog, customers[top_up.customer_id], top_up,
                              trigger, now, engine)
                    fired += 1
            elif stored.record_trigger(engine, top_up.top_up_id, "cleared", balance,
                                       ACTOR, now) is not None:
                rearmed += 1
    return Evaluated(fired, rearmed)


def evaluate_logged(deployment: Deployment, now: datetime,
                    customer_ids: Collection[str] | None = None) -> Evaluated:
    """``evaluate``, a failure logged rather than raised (a hook's: what it follows is
    committed already)."""
    try:
        return evaluate(deployment, now, customer_ids)
    except Exception:
        log.exception("top-ups not evaluated")
        return Evaluated()


def _complete(deployment: Deployment, catalog: Catalog, customer: Customer, top_up: TopUp,
              trigger: Trigger, now: datetime, engine: sa.Engine) -> None:
    """Write the fired trigger's grant and purchase invoice, each unless it exists."""
    assert trigger.grant_id is not None
    lake = deployment.lake
    today = periods.local_day(now, customer.timezone)
    key = TABLES["credit_grants"].key
    if not lake.partition_file("credit_grants", key, trigger.grant_id).exists():
        credit_grants.record_grant(
            lake, catalog, top_up.customer_id, top_up.currency, top_up.amount,
            top_up.per_unit_cost_basis, today, expiry(top_up, today),
            f"top-up {top_up.top_up_id}", trigger.grant_id)
    purchase = trigger.purchase_amount or Decimal(0)
    if trigger.invoice_id is None and purchase > 0:
        settings = top_up.invoice_settings
        invoice_id, _ = one_off.create(
            lake, top_up.customer_id, top_up.currency, today,
            [one_off.OneOffLine(f"Credit top-up: {top_up.amount} credits", top_up.amount,
                                top_up.per_unit_cost_basis, today, today)],
            int(settings.get("net_terms") or 0), now, settings.get("memo"),
            will_auto_issue=True, timezone=customer.timezone)
        stored.record_invoice(engine, trigger, invoice_id, ACTOR, now)


def expiry(top_up: TopUp, day: date) -> date | None:
    """The day a top-up's grant made on ``day`` expires: ``expires_after`` days or months
    later (None: never)."""
    if top_up.expires_after is None:
        return None
    if top_up.expires_after_unit == "month":
        return periods.add_months(day, top_up.expires_after)
    return day + timedelta(days=top_up.expires_after)
