"""What a request reads of its tenant's deployment: the catalog folder's plans and
metrics, and the state store's customers and subscriptions as they are now (the same
snapshot and models a billing run keeps, ``state.lake_snapshot``), each with the instant
it was created."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from billing import periods
from billing.catalog import Catalog, Customer, Subscription
from billing.catalog.models import Plan
from billing.cycles import billing_periods
from pricing_sql.run_catalog import plans_and_metrics
from state import StateStore, lake_snapshot
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

    def customer(self, customer_id: str) -> Customer | None:
        return next((c for c in self.customers if c.id == customer_id), None)

    def customer_by_external_id(self, external_id: str) -> Customer | None:
        return next((c for c in self.customers if c.external_customer_id == external_id),
                    None)

    def subscription(self, subscription_id: str) -> Subscription | None:
        return next((s for s in self.subscriptions if s.id == subscription_id), None)

    def plan(self, plan_id: str) -> Plan | None:
        return next((p for p in self.references.plans if p.id == plan_id), None)

    def today(self, customer: Customer) -> date:
        return self.now.astimezone(periods.zone(customer.timezone)).date()


def read(deployment: Settings, now: datetime) -> View:
    references = plans_and_metrics(deployment)
    with StateStore.open(deployment.state_store_url) as store:
        tables = store.snapshot().tables()
        thresholds = in_effect(read_rows(store.engine), now)
    created = {("customer", row["customer_id"]): row["created_at"]
               for row in tables["customers"].select(["customer_id", "created_at"]).to_pylist()}
    created |= {("subscription", row["subscription_id"]): row["created_at"]
                for row in tables["subscriptions"].select(["subscription_id", "created_at"]
                                                          ).to_pylist()}
    files = [path.stat().st_mtime for path in Path(deployment.catalog_path).glob("*.y*ml")]
    changed = datetime.fromtimestamp(max(files, default=0), UTC)
    return View(references, lake_snapshot.customers(tables["customers"]),
                lake_snapshot.subscriptions(tables["subscriptions"],
                                            tables["subscription_phases"],
                                            tables["subscription_changes"]),
                created, changed, now, thresholds)


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
