"""The outbox and webhook delivery (docs/webhooks.md), against a receiver on loopback
(tests/webhook_receiver.py) and a state store in SQLite and in a real PostgreSQL server.
The clock is the test's: retries are driven by moving it, never by waiting."""

from __future__ import annotations

import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from orb import Orb
from standardwebhooks import Webhook

from assets.resources import OrbStore
from billing.catalog import Customer, Subscription, parse_catalog
from cli.main import main
from invoicing import documents
from invoicing.document_model import DocumentHead, DocumentLine, Draft
from payments import ledger
from pipelines.webhooks import deliver_webhooks, webhooks_sensor
from state import (
    AddCustomer,
    Cancel,
    ChangePlan,
    CreateSubscription,
    StateStore,
    UpdateCustomer,
    outbox,
)
from state import schema as state_schema
from state import store as state_store
from state.database import reading, writing
from state.errors import StateError
from state.events import due_events
from state.outbox import OutboxEvent, derived_event_id
from storage.lake import Lake
from tests.clocks import Clock
from tests.servers import free_port
from tests.webhook_receiver import Receiver
from webhooks import dispatch, endpoints, lake_facts, mirror, runs
from webhooks.dispatch import DeliveryOptions, Replay

CATALOG = parse_catalog([("catalog.yaml", """\
metrics:
  - {id: calls, name: Calls, sql: "SELECT count(*) FROM events"}
plans:
  - id: starter
    name: Starter
    currency: USD
    prices:
      - {id: starter_fee, name: Fee, model_type: unit, fixed_price_quantity: 1,
         unit_config: {unit_amount: "49.00"}}
  - id: growth
    name: Growth
    currency: USD
    prices:
      - {id: growth_fee, name: Fee, model_type: unit, fixed_price_quantity: 1,
         unit_config: {unit_amount: "499.00"}}
""")])
T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    server = request.getfixturevalue("postgres")
    name = f"webhooks_{request.node.name.split('[')[0][-40:]}".lower()
    yield server.create_database(name)


@pytest.fixture
def clock():
    return Clock(T0)


@pytest.fixture
def store(url, clock):
    store = StateStore.open(url, clock)
    yield store
    store.close()


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def customer(customer_id: str = "c1") -> AddCustomer:
    return AddCustomer(Customer(id=customer_id, name=f"Customer {customer_id}",
                                external_customer_id=f"ext-{customer_id}"), actor="ana")


def append(store: StateStore, *events: OutboxEvent) -> None:
    with writing(store.engine) as connection:
        outbox.append(connection, events, store.clock(), "test")


def event(number: int, customer_id: str | None = "c1") -> OutboxEvent:
    return OutboxEvent(f"evt_{number:04d}", "invoice.issued", T0 + timedelta(seconds=number),
                       {"invoice": {"id": f"INV-{number}"}}, customer_id)


def attempts(store: StateStore, event_id: str) -> list[tuple[int, str, int | None,
                                                              datetime | None]]:
    table = state_schema.webhook_attempts
    with reading(store.engine) as connection:
        return [tuple(row) for row in connection.execute(
            sa.select(table.c.attempt, table.c.outcome, table.c.status_code,
                      table.c.next_attempt_at)
            .where(table.c.event_id == event_id).order_by(table.c.attempt))]


# -- producers -------------------------------------------------------------------------


def test_a_state_write_appends_its_events_in_the_same_transaction(store, clock):
    store.apply([customer(), CreateSubscription(Subscription(
        id="s1", customer_id="c1", plan_id="starter", start_date=date(2026, 11, 1)),
        actor="ana")], CATALOG)
    clock.now = T0 + timedelta(hours=1)
    store.apply([ChangePlan("s1", "growth", actor="ana", effective=date(2026, 12, 1)),
                 Cancel("s1", actor="ana", effective=date(2027, 1, 1))], CATALOG)
    with reading(store.engine) as connection:
        found = outbox.read(connection)
    assert [(e.sequence, e.event.type) for e in found] == [
        (1, "customer.created"), (2, "subscription.created"),
        (3, "subscription.plan_change_scheduled"), (4, "subscription.cancellation_scheduled")]
    created = found[0].event
    assert created.event_id == derived_event_id("customer.created", "c1")
    assert (created.payload["customer"]["id"], created.payload["customer"]["name"],
            created.payload["customer"]["external_customer_id"],
            created.payload["created_at"]) == ("c1", "Customer c1", "ext-c1",
                                               "2026-10-01T08:00:00Z")
    subscription = found[1].event.payload["subscription"]
    # the start is Nov 1 UTC midnight, after the write at Oct 1 08:00: upcoming
    assert (subscription["start_date"], subscription["status"], subscription["plan"]["id"]) \
        == ("2026-11-01T00:00:00Z", "upcoming", "starter")
    assert found[2].event.payload["properties"] == {
        "change_date": "2026-12-01", "new_plan_id": "growth", "previous_plan_id": "starter"}
    assert found[3].event.payload["properties"] == {"cancellation_date": "2027-01-01"}
    assert found[3].event.payload["subscription"]["end_date"] == "2027-01-01T00:00:00Z"
    clock.now = T0 + timedelta(hours=2)
    store.apply([UpdateCustomer("c1", {"name": "Acme GmbH"}, actor="bob")], CATALOG)
    with reading(store.engine) as connection:
        edited = outbox.read(connection, after_sequence=4)[0].event
    assert (edited.type, edited.payload["customer"]["name"], edited.payload["properties"],
            edited.created_at) == ("customer.edited", "Acme GmbH",
                                   {"previous_attributes": {"name": "Customer c1"}},
                                   T0 + timedelta(hours=2))
    # a refused write appends nothing: the events are in the write's transaction
    with pytest.raises(StateError):
        store.apply([customer("c2"), Cancel("nope", actor="ana")], CATALOG)
    with reading(store.engine) as connection:
        assert outbox.newest_sequence(connection) == 5


def test_a_crash_between_a_state_write_and_its_events_leaves_neither(store, monkeypatch):
    def die(*_args):
        raise SystemExit("killed after the rows, before the events")

    monkeypatch.setattr(state_store, "written_events", die)
    with pytest.raises(SystemExit):
        store.apply([customer()], CATALOG)
    monkeypatch.undo()
    assert store.customer_ids() == []  # the rows went with the events' transaction
    store.apply([customer()], CATALOG)  # run again: the customer and its one event
    with reading(store.engine) as connection:
        assert [(e.sequence, e.event.type) for e in outbox.read(connection)] == [
            (1, "customer.created")]


def test_time_makes_starts_plan_changes_and_ends_true_once(store, clock, tmp_path):
    store.apply([customer(), CreateSubscription(Subscription(
        id="s1", customer_id="c1", plan_id="starter", start_date=date(2026, 11, 1)),
        actor="ana")], CATALOG)
    store.apply([ChangePlan("s1", "growth", actor="ana", effective=date(2026, 12, 1)),
                 Cancel("s1", actor="ana", effective=date(2027, 1, 1))], CATALOG)
    with reading(store.engine) as connection:
        assert due_events(connection, datetime(2026, 10, 31, 23, 59, tzinfo=UTC)) == []
        on_dec_1 = due_events(connection, datetime(2026, 12, 1, tzinfo=UTC))
    assert [(e.type, e.created_at) for e in on_dec_1] == [
        ("subscription.started", datetime(2026, 11, 1, tzinfo=UTC)),
        ("subscription.plan_changed", datetime(2026, 12, 1, tzinfo=UTC))]
    assert on_dec_1[1].payload["properties"] == {"previous_plan_id": "starter"}
    assert on_dec_1[1].payload["subscription"]["plan"]["id"] == "growth"
    lake = Lake(tmp_path / "data")
    clock.now = datetime(2027, 1, 2, tzinfo=UTC)
    # 4 written + started, plan_changed, ended; a second catch-up finds nothing new
    assert runs.catch_up(lake, store.engine, clock) == 3
    assert runs.catch_up(lake, store.engine, clock) == 0
    with reading(store.engine) as connection:
        ended = outbox.read(connection, types=["subscription.ended"])
    assert [(e.sequence, e.event.event_id, e.event.payload["subscription"]["status"])
            for e in ended] == [(7, derived_event_id("subscription.ended", "s1", "2027-01-01"),
                                 "ended")]


def draft(invoice_id: str, customer_id: str, total: str) -> Draft:
    amount = Decimal(total)
    return Draft(DocumentHead("invoice", invoice_id, None, None, customer_id, "USD",
                              date(2026, 10, 1), date(2026, 11, 1), date(2026, 12, 1),
                              amount, Decimal(0), Decimal(0), amount),
                 (DocumentLine(f"{invoice_id}-l1", "line", "Fee", Decimal(1),
                               date(2026, 10, 1), date(2026, 11, 1), amount),))


def test_a_crash_between_the_lake_write_and_the_append_loses_nothing(store, clock, tmp_path):
    store.apply([customer()], CATALOG)
    lake = Lake(tmp_path / "data")
    issued_at = datetime(2026, 11, 1, 9, tzinfo=UTC)
    with lake.lock("issue"):
        issued = documents.issue_all(lake, [draft("i1", "c1", "49.50")], issued_at)
    # ... the process dies here, before lake_facts.publish: the catch-up finds it
    assert [number for number, _ in issued] == ["INV-000001"]
    assert runs.catch_up(lake, store.engine, clock) == 1
    documents.change_status(lake, "INV-000001", "paid", issued_at + timedelta(days=2),
                            "wire 42")
    assert lake_facts.publish(lake, store.engine, clock()) == 1  # the path that wrote it
    assert lake_facts.publish(lake, store.engine, clock()) == 0  # and again: nothing new
    assert runs.catch_up(lake, store.engine, clock) == 0
    with reading(store.engine) as connection:
        found = [e.event for e in outbox.read(connection, after_sequence=1)]
    assert [(e.type, e.event_id) for e in found] == [
        ("invoice.issued", derived_event_id("invoice.issued", "INV-000001")),
        ("invoice.manually_marked_as_paid",
         derived_event_id("invoice.manually_marked_as_paid", "INV-000001", "2"))]
    invoice = found[0].payload["invoice"]
    assert (invoice["id"], invoice["total"], invoice["amount_due"], invoice["status"],
            invoice["customer"], invoice["invoice_date"]) == (
        "INV-000001", "49.50", "49.50", "issued",
        {"id": "c1", "external_customer_id": "ext-c1"}, "2026-11-01T00:00:00Z")
    paid = found[1].payload
    assert (paid["invoice"]["status"], paid["invoice"]["amount_due"],
            paid["invoice"]["paid_at"], paid["properties"]["notes"]) == (
        "paid", "0", "2026-11-03T09:00:00Z", "wire 42")


def test_a_processor_s_failure_and_payment_are_told_as_orb_does(store, clock, tmp_path):
    store.apply([customer()], CATALOG)
    lake = Lake(tmp_path / "data")
    issued_at = datetime(2026, 11, 1, 9, tzinfo=UTC)
    with lake.lock("issue"):
        documents.issue_all(lake, [draft("i1", "c1", "49.50")], issued_at)
    stripe = ledger.Ledger(lake, "stripe")
    failed_at, paid_at = issued_at + timedelta(days=1), issued_at + timedelta(days=2)
    stripe.write("INV-000001", "collect", 1, "outcome", failed_at, status="failed",
                 reference="pi_1", detail="card declined")
    stripe.write("INV-000001", "collect", 2, "outcome", paid_at, status="paid",
                 reference="pi_2", amount=Decimal("49.50"), currency="USD")
    documents.change_status(lake, "INV-000001", "paid", paid_at, "stripe pi_2")
    assert lake_facts.publish(lake, store.engine, clock()) == 3
    with reading(store.engine) as connection:
        found = [e.event for e in outbox.read(connection, after_sequence=1)]
    assert [(e.type, e.created_at, e.payload["properties"]["payment_provider_transaction_id"]
             if "payment" in e.type else None) for e in found] == [
        ("invoice.issued", issued_at, None),
        ("invoice.payment_failed", failed_at, "pi_1"),
        ("invoice.payment_succeeded", paid_at, "pi_2")]
    assert found[1].event_id == derived_event_id("invoice.payment_failed",
                                                 "INV-000001~collect~1~outcome")
    assert (found[2].payload["invoice"]["status"], found[2].payload["invoice"]["amount_due"],
            found[2].payload["properties"]["payment_provider"]) == ("paid", "0", "stripe")


# -- delivery --------------------------------------------------------------------------


def test_signatures_verify_with_the_standard_webhooks_and_orb_verifiers(store, clock,
                                                                        receiver):
    standard = endpoints.create(store.engine, receiver.url, T0, "ana")
    orb_style = endpoints.create(store.engine, receiver.url, T0, "ana",
                                 signature_style="orb", payload_style="expanded")
    store.apply([customer()], CATALOG)
    summary = dispatch.deliver(store.engine, clock)
    assert (summary.delivered, summary.retrying, summary.failed) == (2, 0, 0)
    by_style = {("x-orb-signature" in r.headers): r for r in receiver.received}
    plain, orb_signed = by_style[False], by_style[True]
    verified = Webhook(standard.secret).verify(plain.body, plain.headers)
    assert (verified["type"], verified["customer"]["id"], verified["payload_style"]) == (
        "customer.created", "c1", "standard")
    client = Orb(api_key="unused", webhook_secret=orb_style.secret)
    unwrapped = client.webhooks.unwrap(orb_signed.body.decode(), orb_signed.headers)
    assert (unwrapped.type, unwrapped.id) == ("customer.created",
                                              derived_event_id("customer.created", "c1"))
    # a signature with the other endpoint's secret does not verify
    with pytest.raises(Exception, match="signature"):
        Webhook(orb_style.secret).verify(plain.body, plain.headers)


def test_a_receiver_that_fails_twice_gets_the_event_once_after_retries(store, clock,
                                                                       receiver):
    answers = iter([500, 503, 200])
    receiver.answer = lambda _request: next(answers)
    endpoints.create(store.engine, receiver.url, T0, "ana")
    append(store, event(1))
    dispatch.deliver(store.engine, clock)  # 500 at T0: again at T0 + 5 s
    clock.now = T0 + timedelta(seconds=4)
    assert dispatch.deliver(store.engine, clock).lanes == 0  # not due yet
    clock.now = T0 + timedelta(seconds=5)
    dispatch.deliver(store.engine, clock)  # 503 at T0 + 5 s: again 5 min later
    clock.now = T0 + timedelta(minutes=5, seconds=5)
    dispatch.deliver(store.engine, clock)  # 200
    clock.now = T0 + timedelta(days=1)
    assert dispatch.deliver(store.engine, clock).lanes == 0  # delivered: never again
    assert receiver.ids() == ["evt_0001"] * 3
    assert attempts(store, "evt_0001") == [
        (1, "retrying", 500, T0 + timedelta(seconds=5)),
        (2, "retrying", 503, T0 + timedelta(minutes=5, seconds=5)),
        (3, "delivered", 200, None)]


def test_a_receiver_down_for_three_days_leaves_the_event_failed_and_replayable(
        store, clock, receiver):
    down = endpoints.create(store.engine, f"http://127.0.0.1:{free_port()}/hooks", T0, "ana")
    append(store, event(1))
    while dispatch.deliver(store.engine, clock).lanes:
        last = attempts(store, "evt_0001")[-1]
        if last[3] is None:
            break
        clock.now = last[3]
    tried = attempts(store, "evt_0001")
    # 5 s, 5 min, 30 min, 2 h, 5 h, then 10 h steps: the 12th attempt at 67 h 35 min 5 s;
    # a 13th at 77 h 35 min 5 s would be past the 72 h window
    assert [a[1] for a in tried] == ["retrying"] * 11 + ["failed"]
    assert tried[-2][3] == T0 + timedelta(hours=67, minutes=35, seconds=5)
    assert all(a[2] is None for a in tried)  # no answer: connection refused
    endpoints.update(store.engine, down.id, clock(), "ana", url=receiver.url)
    assert dispatch.deliver(store.engine, clock).lanes == 0  # failed: not retried
    summary = dispatch.deliver(store.engine, clock, replay=Replay(since=T0))
    assert summary.delivered == 1
    assert receiver.ids() == ["evt_0001"]
    assert attempts(store, "evt_0001")[-1][:3] == (13, "delivered", 200)


def test_a_customer_s_events_arrive_in_sequence_under_concurrent_dispatchers(
        store, clock, receiver):
    first_try = {"evt_0001"}

    def answer(request):
        if request.event_id in first_try:  # c1's first event fails once
            first_try.discard(request.event_id)
            return 500
        return 200

    receiver.answer = answer
    endpoints.create(store.engine, receiver.url, T0, "ana")
    # 60 events over 6 customers, interleaved: customer c<n % 6>
    append(store, *(event(n, f"c{n % 6}") for n in range(1, 61)))
    summary = dispatch.deliver(store.engine, clock, DeliveryOptions(concurrency=4,
                                                                    lanes_per_claim=1))
    # c1's first event failed and holds its 9 later ones; the other 5 x 10 are delivered
    assert (summary.delivered, summary.retrying) == (50, 1)
    assert not {f"evt_{n:04d}" for n in range(7, 61, 6)} & set(receiver.ids())
    clock.now = T0 + timedelta(seconds=5)
    options = DeliveryOptions(concurrency=4, lanes_per_claim=1)
    with ThreadPoolExecutor(2) as pool:
        both = [pool.submit(dispatch.deliver, store.engine, clock, options)
                for _ in range(2)]
        delivered = sum(future.result().delivered for future in both)
    assert delivered == 10
    seen = receiver.ids()
    assert sorted(set(seen)) == [f"evt_{n:04d}" for n in range(1, 61)]
    assert len(seen) == 61  # each once, and evt_0001 twice (its failed first try)
    by_customer: defaultdict[str, list[str]] = defaultdict(list)
    for request in receiver.received:
        assert json.loads(request.body)["id"] == request.event_id
        by_customer[f"c{int(request.event_id[4:]) % 6}"].append(request.event_id)
    for ids in by_customer.values():
        assert ids == sorted(ids)


def test_a_crash_between_the_post_and_its_record_sends_the_same_id_again(
        store, clock, receiver, monkeypatch):
    endpoints.create(store.engine, receiver.url, T0, "ana")
    append(store, event(1))
    recorded = dispatch._record

    def die(*_args):
        raise SystemExit("killed before the attempt is recorded")

    monkeypatch.setattr(dispatch, "_record", die)
    with pytest.raises(SystemExit):
        dispatch.deliver(store.engine, clock)
    monkeypatch.setattr(dispatch, "_record", recorded)
    assert attempts(store, "evt_0001") == []
    assert dispatch.deliver(store.engine, clock).skipped_lanes == 1  # the lease holds it
    clock.now = T0 + DeliveryOptions().lease
    assert dispatch.deliver(store.engine, clock).delivered == 1
    assert receiver.ids() == ["evt_0001", "evt_0001"]  # the same webhook-id: no new id
    assert attempts(store, "evt_0001") == [(1, "delivered", 200, None)]


def test_an_endpoint_receives_its_event_types_from_its_creation_on(store, clock, receiver):
    append(store, event(1))  # before the endpoint: not sent
    made = endpoints.create(store.engine, receiver.url, T0, "ana",
                            enabled_event_types=["customer.created"])
    append(store, event(2))  # an invoice.issued: not among its types
    store.apply([customer("c9")], CATALOG)
    dispatch.deliver(store.engine, clock)
    assert receiver.ids() == [derived_event_id("customer.created", "c9")]
    endpoints.update(store.engine, made.id, clock(), "ana", enabled=False)
    store.apply([customer("c10")], CATALOG)
    assert dispatch.deliver(store.engine, clock).lanes == 0
    with pytest.raises(endpoints.EndpointError, match=r"enabled_event_types: unknown event "
                                                      r"types \['invoice.paid'\]"):
        endpoints.create(store.engine, receiver.url, T0, "ana",
                         enabled_event_types=["invoice.paid"])
    with pytest.raises(endpoints.EndpointError, match="url: expected an http"):
        endpoints.update(store.engine, made.id, T0, "ana", url="ftp://x")


def test_the_outbox_is_mirrored_to_the_lake(store, clock, tmp_path, receiver):
    lake = Lake(tmp_path / "data")
    append(store, event(1), event(2, None))
    assert mirror.mirror(lake, store.engine) == 2
    assert mirror.mirror(lake, store.engine) == 0
    append(store, event(3))
    result = runs.run_once(lake, store.engine, clock)
    assert result.mirrored == 1
    table = pq.read_table(lake.table_dir("webhook_events"), partitioning=None)
    rows = sorted(table.select(["sequence", "event_id", "customer_id"]).to_pylist(),
                  key=lambda r: r["sequence"])
    assert rows == [{"sequence": 1, "event_id": "evt_0001", "customer_id": "c1"},
                    {"sequence": 2, "event_id": "evt_0002", "customer_id": None},
                    {"sequence": 3, "event_id": "evt_0003", "customer_id": "c1"}]
    assert sorted(p.name for p in lake.table_dir("webhook_events").iterdir()) == [
        "first_sequence=1", "first_sequence=3"]


def test_the_sensor_starts_a_pass_only_when_there_is_work(tmp_path, receiver):
    orb_store = OrbStore(data_dir=str(tmp_path))
    with StateStore.open(orb_store.state_store_url) as store:
        endpoints.create(store.engine, receiver.url, T0, "ana")
        store.apply([customer()], CATALOG)
    with dg.instance_for_test() as instance:
        def tick():
            return webhooks_sensor(dg.build_sensor_context(
                instance=instance, resources={"store": orb_store}))

        assert isinstance(tick(), dg.RunRequest)
        result = deliver_webhooks.execute_in_process(instance=instance,
                                                     resources={"store": orb_store})
        assert result.success
        assert receiver.ids() == [derived_event_id("customer.created", "c1")]
        skipped = tick()
        assert isinstance(skipped, dg.SkipReason)
        assert skipped.skip_message == "no event is due and the lake has every event"


def orb(*args: str, code: int = 0) -> str:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_the_cli_creates_endpoints_replays_and_lists(tmp_path, receiver):
    data = str(tmp_path)
    created = orb("webhooks", "endpoints", "create", "--url", receiver.url, "--event-type",
                  "invoice.issued", "--data-dir", data)
    endpoint_id = created.split()[0]
    secret = created.split("secret (shown once): ")[1].strip()
    assert endpoint_id.startswith("whe_") and secret.startswith("whsec_")
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        append(store, event(1), event(2))
    assert "2 delivered" in orb("webhooks", "deliver", "--data-dir", data)
    listed = json.loads(orb("webhooks", "events", "--since", "2026-10-01T08:00:02Z",
                            "--format", "json", "--data-dir", data))
    assert [(e["sequence"], e["event_id"]) for e in listed] == [(2, "evt_0002")]
    # [08:00:02, 08:00:03): the second event only, posted again with its own id
    assert "1 delivered, 0 failed" in orb(
        "webhooks", "replay", "--since", "2026-10-01T08:00:02Z", "--until",
        "2026-10-01T08:00:03Z", "--endpoint", endpoint_id, "--data-dir", data)
    assert receiver.ids() == ["evt_0001", "evt_0002", "evt_0002"]
    Webhook(secret).verify(receiver.received[-1].body, receiver.received[-1].headers)
    assert "disabled" in orb("webhooks", "endpoints", "disable", endpoint_id,
                             "--data-dir", data)
    assert "unknown webhook endpoint 'whe_nope'" in orb(
        "webhooks", "replay", "--since", "2026-10-01T00:00:00Z", "--endpoint", "whe_nope",
        "--data-dir", data, code=1)
    assert "needs a UTC offset" in orb("webhooks", "events", "--since", "2026-10-01T00:00",
                                       "--data-dir", data, code=2)
    assert "no event 'evt_x' in the outbox" in orb("webhooks", "attempts", "evt_x",
                                                   "--data-dir", data, code=1)


def test_an_export_tells_its_success_once(tmp_path):
    data = tmp_path / "data"
    with StateStore.open(f"sqlite:///{data / 'state.db'}") as store:
        append(store, event(1), event(2, None))
        mirror.mirror(Lake(data), store.engine)  # the lake's one table: webhook_events
    orb("export", "--to", str(tmp_path / "out"), "--data-dir", str(data))
    orb("export", "--to", str(tmp_path / "out"), "--data-dir", str(data))  # unchanged
    with StateStore.open(f"sqlite:///{data / 'state.db'}") as store, \
            reading(store.engine) as connection:
        told = outbox.read(connection, types=["data_exports.transfer_success"])
    assert len(told) == 1
    properties = told[0].event.payload["properties"]
    # the two events mirrored are the export's rows
    assert (properties["resources"], properties["rows_transferred"],
            properties["destination_name"]) == (["webhook_events"], 2,
                                                 str(tmp_path / "out"))
    assert told[0].event.customer_id is None
