"""What a request reads of its tenant's deployment: the catalog folder's plans and
metrics, and the state store's customers and subscriptions as they are now (the same
snapshot and models a billing run keeps, ``state.lake_snapshot``), each with the instant
it was created.

The customers and subscriptions are ``current_catalog``'s, built again only when a row was
written since (one query when none was), and so are the creation instants; what else a
request needs (invoicing thresholds, pending changes) is read per request, a few rows.
Lookups by id go through dictionaries built once per view."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from pathlib import Path

import sqlalchemy as sa

from billing import periods
from billing.catalog import Catalog, Customer, Subscription
from billing.catalog.models import Plan
from billing.cycles import billing_periods
from pricing_sql.run_catalog import current_catalog, plans_and_metrics
from state import StateStore, schema
from state.database import reading
from state.pending_changes import pending_by_subscription
from state.thresholds import in_effect, read_rows
from storage.settings import Settings


@dataclass(frozen=True)
class View:
    references: Catalog  # plans, metrics, coupons: what subscriptions may name
    customers: list[Customer]  # in the order created
    subscriptions: list[Subscription]
    created_at: dict[tuple[str, str], datetime]  # ("customer" | "subscription", id)
    catalog_changed_at: datetime  # the catalog folder's newest file: plans' created_at
    now: datetime
    # each subscription's invoicing threshold in effect now (state/thresholds.py)
    invoicing_thresholds: dict[str, Decimal] = field(default_factory=dict)
    # each subscription's pending change's id (state/pending_changes.py)
    pending_changes: dict[str, str] = field(default_factory=dict)

    @cached_property
    def _customers(self) -> dict[str, Customer]:
        return {c.id: c for c in self.customers}

    @cached_property
    def _external_ids(self) -> dict[str, Customer]:
        return {c.external_customer_id: c for c in reversed(self.customers)
                if c.external_customer_id}  # the first of an id, as a scan finds it

    @cached_property
    def _subscriptions(self) -> dict[str, Subscription]:
        return {s.id: s for s in self.subscriptions}

    @cached_property
    def _plans(self) -> dict[str, Plan]:
        return {p.id: p for p in reversed(self.references.plans)}  # the first of an id

    def customer(self, customer_id: str) -> Customer | None:
        return self._customers.get(customer_id)

    def customer_by_external_id(self, external_id: str) -> Customer | None:
        return self._external_ids.get(external_id)

    def subscription(self, subscription_id: str) -> Subscription | None:
        return self._subscriptions.get(subscription_id)

    def plan(self, plan_id: str) -> Plan | None:
        return self._plans.get(plan_id)

    def today(self, customer: Customer) -> date:
        return periods.local_day(self.now, customer.timezone)


def read(deployment: Settings, now: datetime) -> View:
    catalog = current_catalog(deployment)
    with StateStore.open(deployment.state_store_url) as store:
        created = _created(store)
        thresholds = in_effect(read_rows(store.engine), now)
        pending = pending_by_subscription(store.engine, now)
    files = [path.stat().st_mtime for path in Path(deployment.catalog_path).glob("*.y*ml")]
    changed = datetime.fromtimestamp(max(files, default=0), UTC)
    # the catalog folder, parsed once while its files are unchanged (catalog_files)
    return View(plans_and_metrics(deployment), catalog.customers, catalog.subscriptions,
                created, changed, now, thresholds, pending)


# Creation instants by (store URL, its newest row's instant): rows are only inserted, so
# they change only when that does; the newest few stores' kept.
_CREATED: dict[tuple[str, datetime | None], dict[tuple[str, str], datetime]] = {}


def _created(store: StateStore) -> dict[tuple[str, str], datetime]:
    key = (str(store.engine.url), store.last_recorded_at())
    found = _CREATED.get(key)
    if found is None:
        with reading(store.engine) as connection:
            found = {("customer", row[0]): row[1] for row in connection.execute(
                sa.select(schema.customers.c.customer_id, schema.customers.c.recorded_at))}
            found |= {("subscription", row[0]): row[1] for row in connection.execute(
                sa.select(schema.subscriptions.c.subscription_id,
                          schema.subscriptions.c.recorded_at))}
        _CREATED.pop(key, None)
        _CREATED[key] = found
        while len(_CREATED) > 4:
            del _CREATED[next(iter(_CREATED))]
    return found


def current_period(view: View, sub: Subscription, customer: Customer
                   ) -> tuple[date, date] | None:
    """The billing period ``[start, end)`` under way today, on the longest cadence of the
    plan in effect (Orb's term); None before the start and after the end."""
    today = view.today(customer)
    if today < sub.starts_on or (sub.end_date is not None and today >= sub.end_date):
        return None
    plan, version = plan_on(view, sub, today)
    if plan is None:
        return None
    months = max(price.cadence_months for price in plan.version(version).prices)
    return next(iter(billing_periods(sub.starts_on, sub.cycle_day, months, sub.starts_on,
                                     sub.end_date, today, today)), None)


def plan_on(view: View, sub: Subscription, day: date) -> tuple[Plan | None, int]:
    """The plan of the phase in effect on ``day`` (the first phase before the start), and
    its version: the pinned one, else the one in effect that day."""
    phases = sub.plan_phases
    phase = next((p for p in reversed(phases) if p.start_date <= day), phases[0])
    plan = view.plan(phase.plan_id)
    if plan is None:
        return None, 1
    return plan, phase.plan_version or plan.version_on(day).version
