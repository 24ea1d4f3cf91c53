"""The state store (state/, docs/state.md): append-only, bitemporal history of customers
and subscriptions, imports that write everything or nothing, the snapshot as Arrow and
as the catalog models, and the CLI. Every test runs against SQLite and against a real
PostgreSQL server (tests/postgres.py); the values are worked out by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from pydantic import TypeAdapter

from billing.catalog import Customer, Subscription, parse_catalog
from billing.catalog.adjustments import Adjustment
from billing.catalog.models import CouponRedemption, Phase
from billing.catalog.parties import Address, TaxId
from cli.main import main
from pricing_sql.catalog_files import load_catalog
from state import (
    AddAdjustment,
    AddCustomer,
    Cancel,
    ChangePlan,
    CreateSubscription,
    RedeemCoupon,
    SetQuantity,
    StateError,
    StateStore,
    UpdateCustomer,
    lake_snapshot,
)
from state import schema as state_schema
from state.imports import read_files
from state.snapshot import Snapshot
from storage.lake import Lake
from tests.clocks import Clock

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

CATALOG_YAML = """\
metrics:
  - {id: calls, name: Calls, sql: SELECT count(*) FROM events}
plans:
  - id: starter
    name: Starter
    currency: USD
    prices:
      - {id: starter_fee, name: Fee, model_type: unit, fixed_price_quantity: 1,
         unit_config: {unit_amount: "49.00"}}
      - {id: starter_calls, name: Calls, billable_metric_id: calls, model_type: unit,
         unit_config: {unit_amount: "0.002"}}
  - id: growth
    name: Growth
    currency: USD
    prices:
      - {id: growth_fee, name: Fee, model_type: unit, fixed_price_quantity: 1,
         unit_config: {unit_amount: "499.00"}}
    versions:
      - version: 2
        effective_from: 2026-11-01
        prices:
          - {id: growth_fee_v2, name: Fee, model_type: unit, fixed_price_quantity: 1,
             unit_config: {unit_amount: "599.00"}}
coupons:
  - {id: launch20, name: Launch, percentage_discount: "0.2", duration_in_months: 2}
"""
# Customers and subscriptions as a catalog file holds them today (sample_data/generate.py).
CUSTOMERS_YAML = """\
customers:
  - {id: c1, name: Acme, external_customer_id: acct-1, email: billing@acme.test,
     timezone: Europe/Berlin}
  - {id: c2, name: Beta, timezone: America/New_York, net_terms: 15}
  - {id: c3, name: Gamma}
subscriptions:
  - {id: s1, customer_id: c1, plan_id: starter, start_date: 2026-10-01,
     coupons: [{coupon_id: launch20, redeemed_on: 2026-10-01}]}
  - id: s2
    customer_id: c2
    phases:
      - {plan_id: starter, start_date: 2026-10-01}
      - {plan_id: growth, start_date: 2026-11-15, plan_version: 2}
    trial_end_date: 2026-10-15
    end_date: 2027-01-01
  - id: s3
    customer_id: c3
    plan_id: growth
    start_date: 2026-10-10
    align_billing_with_subscription_start_date: true
    adjustments:
      - {id: cap, adjustment_type: maximum, maximum_amount: "1000.00",
         applies_to_price_ids: [growth_fee]}
  - {id: s4, customer_id: c1, plan_id: starter, start_date: 2026-10-01, billing_cycle_day: 15,
     coupons: [{coupon_id: launch20}]}
"""
REFERENCES = parse_catalog([("catalog.yaml", CATALOG_YAML)])


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- the two backends ------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_database(postgres, request) -> str:
    """One database for this module's tests; each test empties it afterwards."""
    return postgres.create_database(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    url = request.getfixturevalue("postgres_database")
    yield url
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        # every table the migrations make (0002 added the outbox's and others)
        names = [table.name for table in state_schema.metadata.sorted_tables]
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {', '.join(names)}, "
                                   "alembic_version CASCADE")
    engine.dispose()


@pytest.fixture
def clock():
    return Clock("2026-10-01T08:00:00+00:00")


@pytest.fixture
def store(url, clock):
    store = StateStore.open(url, clock)
    yield store
    store.close()


def problems(call) -> list[str]:
    with pytest.raises(StateError) as caught:
        call()
    return caught.value.problems


def acme(timezone: str = "Europe/Berlin") -> AddCustomer:
    return AddCustomer(Customer(id="c1", name="Acme", timezone=timezone), actor="ana")


def on_starter(start: date = date(2026, 10, 1), **terms) -> CreateSubscription:
    return CreateSubscription(Subscription(id="s1", customer_id="c1", plan_id="starter",
                                           start_date=start, **terms), actor="ana")


# -- schema and migrations -------------------------------------------------------------


def test_a_new_database_is_migrated_to_the_declared_schema(url):
    StateStore.open(url).close()
    StateStore.open(url).close()  # at head already: nothing to do
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() == "0004"
        assert compare_metadata(context, state_schema.metadata) == []
    engine.dispose()


def test_alembic_upgrade_head_from_the_command_line(url, tmp_path):
    env = {"PATH": os.environ["PATH"], "ORB_STATE_URL": url}
    result = subprocess.run([str(BIN / "alembic"), "upgrade", "head"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    current = subprocess.run([str(BIN / "alembic"), "current"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert current.stdout.strip() == "0004 (head)"


def test_a_shared_store_is_opened_once_and_sees_what_others_write_later(url, clock):
    shared = StateStore.shared(url)
    assert StateStore.shared(url) is shared
    assert shared.last_recorded_at() is None
    with StateStore.open(url, clock) as writer:
        writer.apply([acme()], REFERENCES)
    assert shared.last_recorded_at() == at("2026-10-01T08:00:00+00:00")
    assert [c.id for c in shared.snapshot().customers()] == ["c1"]


# -- history ---------------------------------------------------------------------------


def test_a_plan_change_recorded_later_shows_only_from_then(store, clock):
    store.apply([acme(), on_starter()], REFERENCES)
    clock.set("2026-10-20T09:00:00+00:00")
    store.apply([ChangePlan("s1", "growth", "bob", effective=date(2026, 10, 15))], REFERENCES)

    assert store.snapshot(at("2026-09-30T00:00:00+00:00")).subscriptions() == []
    before = store.snapshot(at("2026-10-18T00:00:00+00:00"))
    assert before.subscriptions() == [Subscription(
        id="s1", customer_id="c1", plan_id="starter", start_date=date(2026, 10, 1))]
    after = store.snapshot(at("2026-10-20T09:00:00+00:00"))
    assert after.subscriptions() == [Subscription(
        id="s1", customer_id="c1", phases=[Phase(plan_id="starter", start_date=date(2026, 10, 1)),
                                           Phase(plan_id="growth", start_date=date(2026, 10, 15))])]
    assert store.snapshot().subscriptions() == after.subscriptions()
    # Berlin is on CEST (UTC+2) until 25 October: local midnights at 22:00 UTC the day before.
    assert after.phases_table().to_pylist() == [
        {"subscription_id": "s1", "phase_index": 0, "plan_id": "starter", "plan_version": None,
         "start_date": date(2026, 10, 1), "end_date": date(2026, 10, 15),
         "effective_at": at("2026-09-30T22:00:00+00:00"),
         "recorded_at": at("2026-10-01T08:00:00+00:00"), "actor": "ana"},
        {"subscription_id": "s1", "phase_index": 1, "plan_id": "growth", "plan_version": None,
         "start_date": date(2026, 10, 15), "end_date": None,
         "effective_at": at("2026-10-14T22:00:00+00:00"),
         "recorded_at": at("2026-10-20T09:00:00+00:00"), "actor": "bob"}]
    assert [(c["change_id"], c["kind"], c["plan_id"], c["effective_date"])
            for c in after.changes_table().to_pylist()] == [
        (1, "create", "starter", date(2026, 10, 1)), (2, "plan", "growth", date(2026, 10, 15))]
    assert before.changes_table().num_rows == 1


def test_a_later_plan_change_replaces_the_ones_scheduled_after_it(store, clock):
    store.apply([acme(), on_starter()], REFERENCES)
    clock.set("2026-10-05T00:00:00+00:00")
    store.apply([ChangePlan("s1", "growth", "bob", effective=date(2026, 12, 1))], REFERENCES)
    clock.set("2026-10-10T00:00:00+00:00")
    store.apply([ChangePlan("s1", "growth", "bob", plan_version=2,
                            effective=date(2026, 11, 15))], REFERENCES)

    def phases(as_recorded_at: str) -> list[tuple[str, int | None, date]]:
        return [(p.plan_id, p.plan_version, p.start_date) for p in
                store.snapshot(at(as_recorded_at)).subscriptions()[0].plan_phases]

    assert phases("2026-10-05T00:00:00+00:00") == [
        ("starter", None, date(2026, 10, 1)), ("growth", None, date(2026, 12, 1))]
    assert phases("2026-10-10T00:00:00+00:00") == [
        ("starter", None, date(2026, 10, 1)), ("growth", 2, date(2026, 11, 15))]
    # on the start day, a change corrects the first plan
    clock.set("2026-10-11T00:00:00+00:00")
    store.apply([ChangePlan("s1", "growth", "bob", effective=date(2026, 10, 1))], REFERENCES)
    assert phases("2026-10-11T00:00:00+00:00") == [("growth", None, date(2026, 10, 1))]
    assert problems(lambda: store.apply([
        ChangePlan("s1", "growth", "bob", plan_version=3, effective=date(2026, 9, 15)),
        ChangePlan("s1", "gold", "bob")], REFERENCES)) == [
        "plan_version: plan 'growth' has no version 3",
        "effective: the change takes effect on 2026-09-15, before the subscription starts on "
        "2026-10-01",
        "plan_id: unknown plan 'gold'"]


def test_cancellation_ends_a_subscription_and_can_be_moved(store, clock):
    store.apply([acme(), on_starter(trial_end_date=date(2026, 10, 15))], REFERENCES)
    clock.set("2026-10-05T00:00:00+00:00")
    store.apply([ChangePlan("s1", "growth", "bob", effective=date(2026, 12, 1))], REFERENCES)
    clock.set("2026-10-20T00:00:00+00:00")
    # 16:00 in Berlin (CET, UTC+1, from 25 October): it ends at the next local midnight
    store.apply([Cancel("s1", "carl", effective=at("2026-11-10T15:00:00+00:00"))], REFERENCES)
    clock.set("2026-10-21T00:00:00+00:00")
    store.apply([Cancel("s1", "carl", effective=date(2026, 11, 30))], REFERENCES)

    def subscription(as_recorded_at: str) -> Subscription:
        return store.snapshot(at(as_recorded_at)).subscriptions()[0]

    assert subscription("2026-10-05T00:00:00+00:00") == Subscription(
        id="s1", customer_id="c1", trial_end_date=date(2026, 10, 15),
        phases=[Phase(plan_id="starter", start_date=date(2026, 10, 1)),
                Phase(plan_id="growth", start_date=date(2026, 12, 1))])
    # the cancellation drops the plan change scheduled after its end
    assert subscription("2026-10-20T00:00:00+00:00") == Subscription(
        id="s1", customer_id="c1", plan_id="starter", start_date=date(2026, 10, 1),
        trial_end_date=date(2026, 10, 15), end_date=date(2026, 11, 11))
    assert subscription("2026-10-21T00:00:00+00:00").end_date == date(2026, 11, 30)
    cancels = [(c["effective_at"], c["effective_date"], c["actor"])
               for c in store.snapshot().changes_table().to_pylist() if c["kind"] == "cancel"]
    assert cancels == [(at("2026-11-10T15:00:00+00:00"), date(2026, 11, 11), "carl"),
                       (at("2026-11-29T23:00:00+00:00"), date(2026, 11, 30), "carl")]

    clock.set("2026-10-22T00:00:00+00:00")
    assert problems(lambda: store.apply([Cancel("s1", "carl", effective=date(2026, 10, 10))],
                                        REFERENCES)) == [
        "(value): Value error, trial_end_date 2026-10-15 must fall inside the subscription"]
    assert problems(lambda: store.apply([Cancel("s9", "carl")], REFERENCES)) == [
        "subscription_id: unknown subscription 's9'"]
    assert store.snapshot().changes_table().num_rows == 4  # nothing written by either


def test_customer_edits_are_versions_in_effect_field_by_field(store, clock):
    store.apply([AddCustomer(Customer(id="c1", name="Acme", email="billing@acme.test"),
                             actor="ana")], REFERENCES)
    clock.set("2026-10-05T00:00:00+00:00")
    store.apply([UpdateCustomer("c1", {"name": "Acme GmbH"}, "bob",
                                effective=date(2026, 11, 1))], REFERENCES)
    clock.set("2026-10-06T00:00:00+00:00")  # recorded later, in effect earlier
    store.apply([UpdateCustomer("c1", {"email": "ap@acme.test"}, "carl",
                                effective=date(2026, 10, 15))], REFERENCES)

    def customer(as_recorded_at: str, as_of: str | None = None) -> tuple[str, str | None]:
        found = store.snapshot(at(as_recorded_at), as_of and at(as_of)).customers()
        return found[0].name, found[0].email

    assert customer("2026-10-01T08:00:00+00:00") == ("Acme", "billing@acme.test")
    assert customer("2026-10-06T00:00:00+00:00") == ("Acme", "billing@acme.test")
    assert customer("2026-10-06T00:00:00+00:00", "2026-10-20T00:00:00+00:00") == (
        "Acme", "ap@acme.test")
    assert customer("2026-10-06T00:00:00+00:00", "2026-11-02T00:00:00+00:00") == (
        "Acme GmbH", "ap@acme.test")
    assert customer("2026-10-05T00:00:00+00:00", "2026-11-02T00:00:00+00:00") == (
        "Acme GmbH", "billing@acme.test")

    snapshot = store.snapshot(at("2026-10-06T00:00:00+00:00"), at("2026-11-02T00:00:00+00:00"))
    assert snapshot.customers_table().to_pylist() == [
        {"customer_id": "c1", "name": "Acme GmbH", "external_customer_id": None,
         "email": "ap@acme.test", "timezone": "UTC", "net_terms": 30,
         "billing_address": None, "shipping_address": None, "tax_id": None,
         "created_at": at("2026-10-01T08:00:00+00:00"),
         "effective_at": at("2026-11-01T00:00:00+00:00"),
         "recorded_at": at("2026-10-05T00:00:00+00:00"), "actor": "bob"}]
    assert [(v["version_id"], v["fields"], v["name"], v["email"], v["effective_at"])
            for v in snapshot.customer_versions_table().to_pylist()] == [
        (1, ["name", "external_customer_id", "email", "timezone", "net_terms",
             "billing_address", "shipping_address", "tax_id"], "Acme",
         "billing@acme.test", at("2026-10-01T08:00:00+00:00")),
        (2, ["name"], "Acme GmbH", None, at("2026-11-01T00:00:00+00:00")),
        (3, ["email"], None, "ap@acme.test", at("2026-10-15T00:00:00+00:00"))]
    assert problems(lambda: store.apply([
        UpdateCustomer("c9", {"name": "X"}, "bob"),
        UpdateCustomer("c1", {"timezone": "Mars/Olympus", "net_terms": -1}, "bob"),
        AddCustomer(Customer(id="c1", name="Again"), "bob")], REFERENCES)) == [
        "id: unknown customer 'c9'",
        "timezone: Value error, unknown IANA time zone 'Mars/Olympus'",
        "net_terms: Input should be greater than or equal to 0",
        "id: customer 'c1' already exists (orb customers update changes it)"]


def test_an_external_id_stays_with_its_customer(store, clock):
    store.apply([AddCustomer(Customer(id="c1", name="Acme", external_customer_id="acct-1"),
                             "ana")], REFERENCES)
    taken = ["external_customer_id: external_customer_id 'acct-1' is already used by "
             "customer 'c1'"]
    assert problems(lambda: store.apply([AddCustomer(
        Customer(id="c2", name="Beta", external_customer_id="acct-1"), "ana")],
        REFERENCES)) == taken
    store.apply([UpdateCustomer("c1", {"external_customer_id": None}, "ana")], REFERENCES)
    assert store.snapshot().customers()[0].external_customer_id is None
    assert problems(lambda: store.apply([AddCustomer(
        Customer(id="c2", name="Beta", external_customer_id="acct-1"), "ana")],
        REFERENCES)) == taken
    assert problems(lambda: store.apply([
        AddCustomer(Customer(id="c3", name="Gamma", external_customer_id="acct-3"), "ana"),
        AddCustomer(Customer(id="c3", name="Gamma"), "ana"),
        AddCustomer(Customer(id="c4", name="Delta", external_customer_id="acct-3"), "ana")],
        REFERENCES)) == [
        "id: duplicate id 'c3' (first defined at id)",
        "external_customer_id: external_customer_id 'acct-3' is already used by customer 'c3'"]


def test_a_refused_write_writes_nothing(store):
    store.apply([acme()], REFERENCES)
    assert problems(lambda: store.apply([
        AddCustomer(Customer(id="c2", name="Beta"), "ana"),
        CreateSubscription(Subscription(
            id="s2", customer_id="c2", plan_id="gold", start_date=date(2026, 10, 1),
            coupons=[CouponRedemption(coupon_id="nope")]), "ana"),
        CreateSubscription(Subscription(id="s3", customer_id="c9", plan_id="starter",
                                        start_date=date(2026, 10, 1)), "ana")],
        REFERENCES)) == ["plan_id: unknown plan 'gold'", "coupons.0.coupon_id: unknown coupon "
                         "'nope'", "customer_id: unknown customer 'c9'"]
    snapshot = store.snapshot()
    assert [c.id for c in snapshot.customers()] == ["c1"]
    assert snapshot.subscriptions() == []


def test_adjustments_coupons_and_quantities_from_their_instant(store, clock):
    cap = TypeAdapter(Adjustment).validate_python(
        {"id": "cap", "adjustment_type": "maximum", "maximum_amount": "100.00"})
    ten = TypeAdapter(Adjustment).validate_python(
        {"id": "ten", "adjustment_type": "percentage_discount", "percentage_discount": "0.1",
         "applies_to_price_ids": ["starter_calls"]})
    store.apply([acme("UTC"), on_starter(adjustments=[cap])], REFERENCES)
    clock.set("2026-10-10T00:00:00+00:00")
    store.apply([AddAdjustment("s1", ten, "bob", effective=date(2026, 11, 1)),
                 RedeemCoupon("s1", "launch20", "bob", effective=date(2026, 11, 1)),
                 SetQuantity("s1", Decimal("3"), "bob", "starter_fee",
                             effective=date(2026, 11, 1))], REFERENCES)

    october = store.snapshot(at("2026-10-10T00:00:00+00:00"), at("2026-10-20T00:00:00+00:00"))
    november = store.snapshot(at("2026-10-10T00:00:00+00:00"), at("2026-11-02T00:00:00+00:00"))
    assert october.subscriptions()[0].adjustments == [cap]
    assert november.subscriptions()[0].adjustments == [cap, ten]
    assert october.subscriptions()[0].coupons == [
        CouponRedemption(coupon_id="launch20", redeemed_on=date(2026, 11, 1))]
    assert [(c["kind"], c["price_id"], c["quantity"])
            for c in november.changes_table().to_pylist() if c["kind"] == "quantity"] == [
        ("quantity", "starter_fee", Decimal("3"))]
    for snapshot in (october, november):
        assert subscriptions_from_tables(snapshot) == snapshot.subscriptions()
    assert problems(lambda: store.apply([
        SetQuantity("s1", Decimal("-1"), "bob"),
        SetQuantity("s1", Decimal("0.0000000001"), "bob"),
        SetQuantity("s1", Decimal("2"), "bob", "growth_fee"),
        AddAdjustment("s1", TypeAdapter(Adjustment).validate_python(
            {"id": "x", "adjustment_type": "amount_discount", "amount_discount": "5",
             "applies_to_price_ids": ["growth_fee"]}), "bob"),
        RedeemCoupon("s1", "nope", "bob")], REFERENCES)) == [
        "quantity: must be a number, zero or more, got -1",
        "quantity: at most 9 decimal places, got 1E-10",
        "price_id: price 'growth_fee' is not on the subscription's plans",
        "adjustment.applies_to_price_ids: prices ['growth_fee'] are not on the "
        "subscription's plans",
        "coupon_id: unknown coupon 'nope'"]


def test_writers_record_in_order_even_when_a_clock_lags(store, clock):
    first = store.apply([acme()], REFERENCES)
    clock.set("2026-09-01T00:00:00+00:00")  # behind the first write
    second = store.apply([on_starter()], REFERENCES)
    assert first.recorded_at == at("2026-10-01T08:00:00+00:00")
    assert second.recorded_at == at("2026-10-01T08:00:00.000001+00:00")


def test_concurrent_writers_take_turns(url):
    stores = [StateStore.open(url), StateStore.open(url)]

    def write(index: int) -> list[datetime]:
        return [stores[index].apply([AddCustomer(Customer(id=f"c{index}-{n}", name="C"), "ana")],
                                    REFERENCES).recorded_at for n in range(5)]

    with ThreadPoolExecutor(2) as pool:
        recorded = [instant for batch in pool.map(write, (0, 1)) for instant in batch]
    versions = stores[0].snapshot().customer_versions_table().to_pylist()
    assert len(versions) == 10 and len(set(recorded)) == 10
    # numbered in the order recorded: each write saw every one before it
    assert [v["recorded_at"] for v in versions] == sorted(recorded)
    for store in stores:
        store.close()


# -- the snapshot: Arrow and the catalog models agree with catalog YAML ----------------


def subscriptions_from_tables(snapshot: Snapshot) -> list[Subscription]:
    """The subscriptions the Arrow tables describe, as the catalog models."""
    phases: dict[str, list[dict]] = {}
    for phase in snapshot.phases_table().to_pylist():
        phases.setdefault(phase["subscription_id"], []).append(
            {"plan_id": phase["plan_id"], "start_date": phase["start_date"]}
            | ({"plan_version": phase["plan_version"]} if phase["plan_version"] else {}))
    quantities: dict[str, list[dict]] = {}  # the quantity rows, in the order recorded
    for change in snapshot.changes_table().to_pylist():
        if change["kind"] == "quantity":
            quantities.setdefault(change["subscription_id"], []).append(
                {"price_id": change["price_id"], "start_date": change["effective_date"],
                 "quantity": change["quantity"]})
    found = []
    for row in snapshot.subscriptions_table().to_pylist():
        sub = {"id": row["subscription_id"], "customer_id": row["customer_id"],
               "fixed_fee_quantities": quantities.get(row["subscription_id"], []),
               "end_date": row["end_date"], "trial_end_date": row["trial_end_date"],
               "billing_cycle_day": row["billing_cycle_day"],
               "align_billing_with_subscription_start_date":
                   row["align_billing_with_subscription_start_date"],
               "coupons": json.loads(row["coupons"] or "[]"),
               "adjustments": json.loads(row["adjustments"] or "[]")}
        mine = phases[row["subscription_id"]]
        sub |= {"phases": mine} if len(mine) > 1 else mine[0]
        assert mine[0]["start_date"] == row["start_date"]
        found.append(Subscription.model_validate(sub))
    return found


def catalog_folder(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def test_an_imported_catalog_file_gives_back_what_the_yaml_gives(store, clock, tmp_path):
    references = load_catalog(catalog_folder(tmp_path / "catalog", **{"c.yaml": CATALOG_YAML}))
    expected = load_catalog(catalog_folder(tmp_path / "full", **{
        "c.yaml": CATALOG_YAML, "customers.yaml": CUSTOMERS_YAML}))
    path = catalog_folder(tmp_path / "import", **{"customers.yaml": CUSTOMERS_YAML}
                          ) / "customers.yaml"
    written = store.apply(read_files([path], references, store.customer_ids()), references)
    # s1: create, coupon; s2: create, plan, cancel; s3: create, adjustment; s4: create, coupon
    assert (written.customers, written.versions, written.subscriptions, written.changes) == (
        3, 3, 4, 9)

    snapshot = store.snapshot()
    assert snapshot.customers() == expected.customers
    assert snapshot.subscriptions() == expected.subscriptions
    assert subscriptions_from_tables(snapshot) == expected.subscriptions
    assert {row["actor"] for row in snapshot.changes_table().to_pylist()} == {f"import:{path}"}
    tables = snapshot.tables()
    assert {name: table.num_rows for name, table in tables.items()} == {
        "customers": 3, "customer_versions": 3, "subscriptions": 4, "subscription_phases": 5,
        "subscription_changes": 9}
    assert tables["subscriptions"].column("coupons").to_pylist() == [
        '[{"coupon_id": "launch20", "redeemed_on": "2026-10-01"}]', None, None,
        '[{"coupon_id": "launch20"}]']
    # kept in the lake and read back, it is the same catalog the YAML gives
    lake = Lake(tmp_path / "data")
    kept = lake_snapshot.take(store, lake, date(2026, 10, 1), "run-1")
    read = lake_snapshot.read(lake, date(2026, 10, 1), lake_snapshot.find(lake, date(2026, 10, 1)))
    assert read.snapshot_id == kept.snapshot_id
    # the tables a run's catalog is built from in the process that took it (kept in
    # memory, which ``read`` gives back here) are the lake's
    on_disk = {name: pq.read_table(lake.table_dir(lake_snapshot.lake_table(name))
                                   / "billing_month=2026-10-01" / f"{kept.snapshot_id}.parquet",
                                   partitioning=None) for name in read.tables}
    assert kept.tables.keys() == on_disk.keys()
    assert all(kept.tables[name].equals(on_disk[name]) for name in on_disk)
    assert lake_snapshot.customers(read.tables["customers"]) == expected.customers
    assert lake_snapshot.subscriptions(read.tables["subscriptions"],
                                       read.tables["subscription_phases"]) == expected.subscriptions

    again = store.apply(read_files([path], references, store.customer_ids()), references)
    assert (again.customers, again.versions, again.subscriptions, again.changes) == (0, 0, 0, 0)
    clock.set("2026-10-02T00:00:00+00:00")
    edited = path.parent / "edited.yaml"
    edited.write_text(CUSTOMERS_YAML.replace("name: Beta", "name: Beta LLC"))
    once_more = store.apply(read_files([edited], references, store.customer_ids()), references)
    assert (once_more.customers, once_more.versions, once_more.changes) == (0, 1, 0)
    assert store.snapshot().customers()[1].name == "Beta LLC"


def test_an_import_with_a_bad_line_writes_nothing(store, tmp_path):
    path = tmp_path / "customers.yaml"
    path.write_text(CUSTOMERS_YAML.replace("timezone: America/New_York", "timezone: Mars/Base")
                    .replace("plan_id: growth\n", "plan_id: gold\n"))
    assert problems(lambda: read_files([path], REFERENCES, [])) == [
        f"{path}:4: customers[1].timezone: Value error, unknown IANA time zone 'Mars/Base'",
        f"{path}:18: subscriptions[2].plan_id: unknown plan 'gold'"]
    plans = tmp_path / "plans.yaml"
    plans.write_text(CATALOG_YAML)
    assert problems(lambda: read_files([plans], REFERENCES, [])) == [
        f"{plans}:{line}: {section} are catalog as code and stay in the catalog folder; an "
        "import takes customers and subscriptions"
        for line, section in ((1, "metrics"), (3, "plans"), (24, "coupons"))]
    assert store.snapshot().customers() == []


def test_csv_and_parquet_imports(store, tmp_path):
    customers = tmp_path / "customers.csv"
    customers.write_text("id,name,external_customer_id,email,timezone,net_terms\n"
                         "c1,Acme,acct-1,billing@acme.test,Europe/Berlin,15\n"
                         '"c2","Beta, Inc.",,,,\n')
    subscriptions = tmp_path / "subscriptions.parquet"
    pq.write_table(pa.table({
        "id": ["s1", "s2"],
        "customer_id": ["c1", "c2"],
        "plan_id": ["starter", None],
        "start_date": [date(2026, 10, 1), None],
        "phases": [None, json.dumps([{"plan_id": "starter", "start_date": "2026-10-01"},
                                     {"plan_id": "growth", "start_date": "2026-11-15"}])],
        "end_date": [None, date(2027, 1, 1)],
        "trial_end_date": [None, date(2026, 10, 15)],
        "billing_cycle_day": pa.array([15, None], pa.int32()),
        "coupons": ["launch20", None],
    }), subscriptions)
    written = store.apply(read_files([customers, subscriptions], REFERENCES, []), REFERENCES)
    assert (written.customers, written.subscriptions, written.changes) == (2, 2, 5)
    snapshot = store.snapshot()
    assert snapshot.customers() == [
        Customer(id="c1", name="Acme", external_customer_id="acct-1", email="billing@acme.test",
                 timezone="Europe/Berlin", net_terms=15),
        Customer(id="c2", name="Beta, Inc.")]
    assert snapshot.subscriptions() == [
        Subscription(id="s1", customer_id="c1", plan_id="starter", start_date=date(2026, 10, 1),
                     billing_cycle_day=15, coupons=[CouponRedemption(coupon_id="launch20")]),
        Subscription(id="s2", customer_id="c2", end_date=date(2027, 1, 1),
                     trial_end_date=date(2026, 10, 15),
                     phases=[Phase(plan_id="starter", start_date=date(2026, 10, 1)),
                             Phase(plan_id="growth", start_date=date(2026, 11, 15))])]
    assert subscriptions_from_tables(snapshot) == snapshot.subscriptions()
    assert {c["actor"] for c in snapshot.customer_versions_table().to_pylist()} == {
        f"import:{customers}"}


def test_a_bad_csv_or_parquet_row_is_named_and_nothing_is_written(store, tmp_path):
    customers = tmp_path / "customers.csv"
    customers.write_text("id,name,timezone\nc1,Acme,UTC\nc2,Beta,Mars/Olympus\n")
    assert problems(lambda: read_files([customers], REFERENCES, [])) == [
        f"{customers}:row 2: timezone: Value error, unknown IANA time zone 'Mars/Olympus'"]

    customers.write_text("id,name,timezone\nc1,Acme,UTC\nc2,Beta,UTC\n")
    subscriptions = tmp_path / "subscriptions.csv"
    subscriptions.write_text("id,customer_id,plan_id,start_date\n"
                             "s1,c1,starter,2026-10-01\n"
                             "s2,c2,gold,2026-10-01\n"
                             "s3,c9,starter,2026-10-01\n")
    operations = read_files([customers, subscriptions], REFERENCES, [])
    assert problems(lambda: store.apply(operations, REFERENCES)) == [
        f"{subscriptions}:row 2: plan_id: unknown plan 'gold'",
        f"{subscriptions}:row 3: customer_id: unknown customer 'c9'"]
    assert store.snapshot().customers() == []  # not even the good file's

    parquet = tmp_path / "subscriptions.parquet"
    pq.write_table(pa.table({"id": ["s1"], "customer_id": ["c1"], "plan_id": ["starter"],
                             "start_date": ["soon"], "colour": ["red"]}), parquet)
    assert problems(lambda: read_files([parquet], REFERENCES, [])) == [
        f"{parquet}: unknown columns ['colour'] for subscriptions (expected some of "
        "['id', 'customer_id', 'plan_id', 'plan_version', 'start_date', 'phases', 'end_date', "
        "'trial_end_date', 'billing_cycle_day', 'align_billing_with_subscription_start_date',"
        " 'coupons', 'adjustments'])"]
    pq.write_table(pa.table({"id": ["s1"], "customer_id": ["c1"], "plan_id": ["starter"],
                             "start_date": ["soon"], "adjustments": ["[{"]}), parquet)
    found = problems(lambda: read_files([parquet], REFERENCES, []))
    assert found[0].startswith(f"{parquet}:row 1: adjustments: not valid JSON: ")
    pq.write_table(pa.table({"id": ["s1"], "customer_id": ["c1"], "plan_id": ["starter"],
                             "start_date": ["soon"]}), parquet)
    assert problems(lambda: read_files([parquet], REFERENCES, [])) == [
        f"{parquet}:row 1: start_date: Input should be a valid date or datetime, input is too "
        "short"]


# -- the CLI ---------------------------------------------------------------------------


def orb(*args: str):
    return CliRunner(env={"COLUMNS": "200"}).invoke(main, list(args), catch_exceptions=False)


def rows(output: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("│")[1:-1]]
            for line in output.splitlines() if line.startswith("│")]


def test_the_cli_writes_lists_and_refuses_with_the_argument_named(url, tmp_path, monkeypatch):
    monkeypatch.setenv("ORB_STATE_URL", url)
    catalog_folder(tmp_path / "catalog", **{"c.yaml": CATALOG_YAML})
    data = ("--data-dir", str(tmp_path))
    ok = [orb("customers", "add", "c1", "--name", "Acme", "--timezone", "Europe/Berlin",
              "--external-id", "acct-1", "--effective", "2026-10-01", "--actor", "ana", *data),
          orb("subscriptions", "create", "s1", "--customer", "c1", "--plan", "starter",
              "--start", "2026-10-01", "--coupon", "launch20", "--adjustment",
              '{"id": "cap", "adjustment_type": "maximum", "maximum_amount": "100.00"}', *data),
          orb("subscriptions", "change", "s1", "--plan", "growth", "--effective", "2026-10-15",
              "--quantity", "3", "--price", "growth_fee", "--actor", "bob", *data),
          orb("subscriptions", "cancel", "s1", "--effective", "2027-01-01", *data),
          orb("customers", "update", "c1", "--name", "Acme GmbH", "--email", "ap@acme.test",
              "--effective", "2026-11-01T00:00:00Z", *data)]
    assert [r.exit_code for r in ok] == [0] * 5, [r.output for r in ok]
    assert "Recorded customer c1 at " in ok[0].output and ok[0].output.endswith(" by ana\n")
    assert "Recorded 2 change(s) to subscription s1" in ok[2].output

    listed = orb("subscriptions", "list", *data)
    assert rows(listed.output) == [["s1", "c1", "starter from 2026-10-01; growth from 2026-10-15",
                                    "2027-01-01", "", "1", "launch20"]]
    customers = rows(orb("customers", "list", *data).output)
    assert customers[0][:6] == ["c1", "Acme GmbH", "acct-1", "ap@acme.test", "Europe/Berlin",
                                "30"]
    assert rows(orb("customers", "list", "--as-recorded-at", "2026-01-01T00:00:00Z",
                    *data).output) == []

    refused = {
        ("subscriptions", "change", "s1", "--plan", "gold"): "--plan: unknown plan 'gold'",
        ("subscriptions", "change", "s9", "--plan", "growth"):
            "SUBSCRIPTION_ID: unknown subscription 's9'",
        ("subscriptions", "cancel", "s1", "--effective", "2026-09-01"):
            "--effective: Value error, end_date 2026-09-01 must be after the last phase's "
            "start 2026-10-01",
        ("customers", "add", "c2", "--name", "Beta", "--timezone", "Mars/Olympus"):
            "--timezone: Value error, unknown IANA time zone 'Mars/Olympus'",
        ("customers", "add", "c2", "--name", "Beta", "--external-id", "acct-1"):
            "--external-id: external_customer_id 'acct-1' is already used by customer 'c1'",
        ("subscriptions", "create", "s2", "--customer", "c1", "--plan", "starter", "--start",
         "2026-10-01", "--coupon", "nope", "--billing-cycle-day", "40"):
            "--billing-cycle-day: Input should be less than or equal to 31",
        ("subscriptions", "create", "s2", "--customer", "c1", "--plan", "starter", "--start",
         "2026-10-01", "--coupon", "launch20", "--coupon", "nope"):
            "--coupon #2: unknown coupon 'nope'",
    }
    for args, message in refused.items():
        result = orb(*args, *data)
        assert result.exit_code == 1, (args, result.output)
        assert result.output == f"Error: nothing was written:\n  {message}\n", args
    malformed = orb("subscriptions", "cancel", "s1", "--effective", "next week", *data)
    assert malformed.exit_code == 1
    assert malformed.output == ("Error: --effective: expected a day (YYYY-MM-DD) or an ISO "
                                "8601 instant, got 'next week'\n")
    assert "Traceback" not in malformed.output


def test_the_cli_imports_everything_or_nothing(url, tmp_path, monkeypatch):
    monkeypatch.setenv("ORB_STATE_URL", url)
    catalog_folder(tmp_path / "catalog", **{"c.yaml": CATALOG_YAML})
    data = ("--data-dir", str(tmp_path))
    good = tmp_path / "customers.yaml"
    good.write_text(CUSTOMERS_YAML)
    bad = tmp_path / "more.csv"
    bad.write_text("id,customer_id,plan_id,start_date\ns9,c1,gold,2026-10-01\n")

    refused = orb("state", "import", str(good), str(bad), *data)
    assert refused.exit_code == 1
    assert refused.output == (f"Error: nothing was written:\n  {bad}:row 1: plan_id: unknown "
                              "plan 'gold'\n")
    assert rows(orb("customers", "list", *data).output) == []

    imported = orb("state", "import", str(good), *data)
    assert imported.exit_code == 0, imported.output
    assert imported.output.endswith("3 new customers, 3 customer versions, 4 new "
                                    "subscriptions, 9 subscription rows\n")
    assert [row[0] for row in rows(orb("subscriptions", "list", "--customer", "c1",
                                       *data).output)] == ["s1", "s4"]


# -- addresses and tax ids (Orb's customer fields) --------------------------------------

AUSTIN = {"line1": "1 Congress Ave", "city": "Austin", "state": "TX", "postal_code": "78701",
          "country": "US"}
EIN = {"country": "US", "type": "us_ein", "value": "12-3456789"}


def test_addresses_and_tax_ids_are_customer_versions_kept_in_the_lake(store, clock, tmp_path):
    store.apply([AddCustomer(Customer.model_validate(
        {"id": "c1", "name": "Acme", "billing_address": AUSTIN, "tax_id": EIN}), "ana")],
        REFERENCES)
    clock.set("2026-10-05T00:00:00+00:00")
    store.apply([UpdateCustomer("c1", {"tax_id": None, "shipping_address": {
        "line1": "9 Dock Rd", "country": "US"}}, "bob")], REFERENCES)

    snapshot = store.snapshot()
    [customer] = snapshot.customers()
    assert customer.billing_address == Address(**AUSTIN)
    assert customer.shipping_address == Address(line1="9 Dock Rd", country="US")
    assert customer.tax_id is None  # cleared by the second version
    # kept as Orb's JSON, keys sorted, fields not given left out
    row = snapshot.customers_table().to_pylist()[0]
    assert (row["billing_address"], row["shipping_address"], row["tax_id"]) == (
        '{"city": "Austin", "country": "US", "line1": "1 Congress Ave", "postal_code": '
        '"78701", "state": "TX"}', '{"country": "US", "line1": "9 Dock Rd"}', None)
    first, second = snapshot.customer_versions_table().to_pylist()
    assert first["tax_id"] == '{"country": "US", "type": "us_ein", "value": "12-3456789"}'
    assert (second["fields"], second["tax_id"]) == (["tax_id", "shipping_address"], None)
    # as it was before the edit
    [before] = store.snapshot(at("2026-10-01T08:00:00+00:00")).customers()
    assert before.tax_id == TaxId(**EIN) and before.shipping_address is None

    lake = Lake(tmp_path / "data")
    kept = lake_snapshot.take(store, lake, date(2026, 10, 1), "run-1")
    read = lake_snapshot.read(lake, date(2026, 10, 1), kept.snapshot_id)
    assert lake_snapshot.customers(read.tables["customers"]) == [customer]


def test_a_bad_country_or_tax_id_is_refused_with_its_place(store, tmp_path):
    store.apply([acme()], REFERENCES)
    assert problems(lambda: store.apply([UpdateCustomer("c1", {
        "billing_address": {"city": "Austin", "country": "USA"},
        "tax_id": {"country": "FR", "type": "us_ein", "value": "1"}}, "bob")],
        REFERENCES)) == [
        "billing_address.country: Value error, country must be an ISO 3166-1 alpha-2 code "
        "such as US or FR, got 'USA'",
        "tax_id: Value error, tax_id.type 'us_ein' is not a tax id of country 'FR'"]
    customers = tmp_path / "customers.csv"
    customers.write_text('id,name,billing_address,tax_id\n'
                         'c2,Beta,"{""country"": ""FR"", ""city"": ""Paris""}",'
                         '"{""country"": ""FR"", ""type"": ""eu_vat"", ""value"": ""FR1""}"\n'
                         'c3,Gamma,{not json},\n')
    assert problems(lambda: read_files([customers], REFERENCES, [])) == [
        f"{customers}:row 2: billing_address: not valid JSON: Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1)"]
    customers.write_text(customers.read_text().splitlines()[0] + "\n"
                         + customers.read_text().splitlines()[1] + "\n")
    store.apply(read_files([customers], REFERENCES, []), REFERENCES)
    beta = store.snapshot().customers()[1]
    assert beta.billing_address == Address(city="Paris", country="FR")
    assert beta.tax_id == TaxId(country="FR", type="eu_vat", value="FR1")


def test_the_cli_takes_addresses_and_tax_ids_as_orbs_json(url, tmp_path, monkeypatch):
    monkeypatch.setenv("ORB_STATE_URL", url)
    catalog_folder(tmp_path / "catalog", **{"c.yaml": CATALOG_YAML})
    data = ("--data-dir", str(tmp_path))
    address = tmp_path / "address.json"
    address.write_text(json.dumps(AUSTIN))
    added = orb("customers", "add", "c1", "--name", "Acme", "--billing-address", f"@{address}",
                "--tax-id", json.dumps(EIN), *data)
    assert added.exit_code == 0, added.output
    cleared = orb("customers", "update", "c1", "--tax-id", "", *data)
    assert cleared.exit_code == 0, cleared.output
    assert "(tax_id)" in cleared.output
    with StateStore.open(url) as store:
        [customer] = store.snapshot().customers()
    assert (customer.billing_address, customer.tax_id) == (Address(**AUSTIN), None)
    refused = orb("customers", "update", "c1", "--billing-address", '{"country": "us"}',
                  "--tax-id", "[1]", *data)
    assert (refused.exit_code, refused.output) == (
        1, "Error: --tax-id: expected a JSON object, got '[1]'\n")
    refused = orb("customers", "update", "c1", "--billing-address", '{"country": "us"}', *data)
    assert (refused.exit_code, refused.output) == (1, (
        "Error: nothing was written:\n  --billing-address: Value error, country must be an "
        "ISO 3166-1 alpha-2 code such as US or FR, got 'us'\n"))


def test_a_runs_snapshot_is_found_among_the_months_newest_first(tmp_path, clock):
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}", clock)
    lake, october = Lake(tmp_path / "data"), date(2026, 10, 1)
    taken = {}
    # taken in this order, 08:00, 09:00 and 09:30 UTC, the clock in another zone for the
    # last: its local time, 04:30, sorts first
    for run, now in (("run-1", "2026-11-01T08:00:00+00:00"),
                     ("run-2", "2026-11-01T09:00:00+00:00"),
                     ("run-3", "2026-11-01T04:30:00-05:00")):
        clock.set(now)
        taken[run] = lake_snapshot.take(store, lake, october, run).snapshot_id
    store.close()
    lake_snapshot._head.cache_clear()
    assert lake_snapshot.find(lake, october, "run-3") == taken["run-3"]
    assert lake_snapshot._head.cache_info().misses == 1  # the newest only
    assert lake_snapshot.find(lake, october, "run-1") == taken["run-1"]
    assert lake_snapshot.find(lake, october) == taken["run-3"]
    assert lake_snapshot.find(lake, october, "run-never") == taken["run-3"]


def test_a_snapshot_is_committed_after_its_tables_whatever_the_build_meanwhile_met(
        store, tmp_path, monkeypatch):
    """``take`` hands the snapshot's tables to the lake's writer thread and calls
    ``meanwhile`` (the run's catalog build) while they are written; its row in
    state_snapshots, which commits it, is written last, on the caller's thread, even when
    ``meanwhile`` fails."""
    store.apply([acme()], REFERENCES)
    lake, october = Lake(tmp_path / "data"), date(2026, 10, 1)
    writes: list[tuple[str, str]] = []
    write_file_now = Lake.write_file_now

    def recorded(lake, table, *args, **kwargs):
        writes.append((table, threading.current_thread().name.split("_")[0]))
        return write_file_now(lake, table, *args, **kwargs)

    monkeypatch.setattr(Lake, "write_file_now", recorded)
    seen = []

    def build(taken):
        seen.append(taken.tables["customers"].column("customer_id").to_pylist())
        with pytest.raises(lake_snapshot.SnapshotMissing):  # not committed yet
            lake_snapshot.find(lake, october)
        raise RuntimeError("the build failed")

    with pytest.raises(RuntimeError, match="the build failed"):
        lake_snapshot.take(store, lake, october, "run-1", meanwhile=build)
    assert seen == [["c1"]]
    assert writes == [
        *((f"state_{name}", "lake-writer") for name in (
            "customers", "customer_versions", "subscriptions", "subscription_phases",
            "subscription_changes", "invoicing_thresholds")),
        ("state_snapshots", "MainThread")]
    committed = lake_snapshot.find(lake, october, "run-1")
    assert lake_snapshot.read(lake, october, committed).tables["customers"].num_rows == 1
