"""Events through Orb's official SDK against the real ``orb serve`` on loopback
(docs/api.md#events): ingest, search, amend, deprecate, Orb's 31-day grace period, and
backfills created, ingested into, closed and reverted, seen in a billed month's invoice;
another tenant's key finds none of it, a read-only key writes none of it."""

from __future__ import annotations

import json
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import orb
import pytest

from assets.resources import OrbStore
from billing import periods
from ingestion.backfills import close_backfill, create_backfill, enroll, revert_backfill
from ingestion.batches import batch_id_of, ingest_files
from ingestion.event_requests import TOO_OLD
from pipelines import runner
from pipelines.definitions import build_definitions
from pricing_sql.active_events import register_active_events
from storage.duck import connect
from storage.lake import Lake
from tests.api_tenants import API_VARIABLES, create_key, serve
from tests.api_tenants import orb as orb_cli
from tests.batches import batch, ev
from tests.catalogs import catalog, unit, write_data_dir

CALLS = {"id": "calls", "name": "API calls", "sql": "SELECT count(*) FROM events"}
# one cent a call, nothing else: a month's invoice is its calls x 0.01
METERED = {"metrics": [CALLS], "plans": [{"id": "metered", "name": "Metered", "currency": "USD",
                                          "prices": [unit("per_call", "0.01", metric="calls")]}]}


@dataclass(frozen=True)
class Server:
    url: str
    admin: str
    operator: str
    reader: str
    tenant_b: str
    data_dir: Path

    def client(self, key: str) -> orb.Orb:
        # no retries: a refused request is the answer under test
        return orb.Orb(api_key=key, base_url=self.url, max_retries=0)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("events")
    a, b = root / "a", root / "b"
    with pytest.MonkeyPatch.context() as patch:
        for variable in API_VARIABLES:
            patch.delenv(variable, raising=False)
        write_data_dir(a, METERED)
        write_data_dir(b, METERED)
        orb_cli(["tenants", "add", "b", "--tenant-data-dir", str(b), "--data-dir", str(a)])
        keys = (create_key(a, "admin"), create_key(a, "billing_operator"),
                create_key(a, "read_only"), create_key(a, "admin", tenant="b"))
    with serve(a, drop=("DAGSTER_HOME",)) as root:
        yield Server(f"{root}/v1", *keys, a)
    assert "Traceback" not in (a / "serve.log").read_text()


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(key: str, customer_id: str, at: datetime, **properties) -> dict:
    return {"event_name": "call", "timestamp": stamp(at), "customer_id": customer_id,
            "idempotency_key": key, "properties": properties}


def debug(response) -> dict:
    """The ``debug`` part of an ingest answer (asked for with ``?debug=true``)."""
    return response.model_extra["debug"]


def test_ingest_search_amend_and_deprecate(server):
    client = server.client(server.operator)
    live = client.customers.create(email="l@x.test", name="Live", external_customer_id="live-1")
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    sent = client.events.ingest(events=[event("k-1", live.id, at, n=1),
                                        event("k-2", live.id, at + timedelta(minutes=1), n=2)],
                                extra_query={"debug": "true"})
    assert (sent.validation_failed, debug(sent)) == (
        [], {"duplicate": [], "ingested": ["k-1", "k-2"]})
    again = client.events.ingest(events=[event("k-2", live.id, at)],
                                 extra_query={"debug": "true"})
    assert debug(again) == {"duplicate": ["k-2"], "ingested": []}

    def found(*ids):
        return [(e.id, e.customer_id, e.external_customer_id, e.timestamp, e.properties,
                 e.deprecated) for e in client.events.search(
            event_ids=list(ids), timeframe_start=at - timedelta(hours=1)).data]

    assert found("k-1", "k-2", "k-9") == [
        ("k-1", live.id, "live-1", at, {"n": 1}, False),
        ("k-2", live.id, "live-1", at + timedelta(minutes=1), {"n": 2}, False)]

    amended = client.events.update("k-1", event_name="call", timestamp=stamp(at),
                                   properties={"n": 5}, external_customer_id="live-1")
    assert amended.amended == "k-1"
    # the old event stays, deprecated; the new one counts, with the same id
    assert found("k-1") == [("k-1", live.id, "live-1", at, {"n": 1}, True),
                            ("k-1", live.id, "live-1", at, {"n": 5}, False)]
    with pytest.raises(orb.BadRequestError) as moved:
        client.events.update("k-2", event_name="call", timestamp=stamp(at),
                             properties={}, customer_id=live.id)
    assert moved.value.body["validation_errors"] == [
        f"body.timestamp: must be the event's, {stamp(at + timedelta(minutes=1))}"]

    assert client.events.deprecate("k-2").deprecated == "k-2"
    assert found("k-2") == [("k-2", live.id, "live-1", at + timedelta(minutes=1), {"n": 2},
                             True)]
    with pytest.raises(orb.NotFoundError):
        client.events.deprecate("k-2")  # nothing counts under that id any more
    with pytest.raises(orb.NotFoundError):
        client.events.deprecate("k-404")

    # a read-only key searches, and writes nothing; another tenant finds nothing
    reader = server.client(server.reader)
    assert [e.id for e in reader.events.search(event_ids=["k-1"]).data] == ["k-1", "k-1"]
    with pytest.raises(orb.PermissionDeniedError):
        reader.events.ingest(events=[event("k-3", live.id, at)])
    with pytest.raises(orb.PermissionDeniedError):
        reader.events.deprecate("k-1")
    other = server.client(server.tenant_b)
    assert other.events.search(event_ids=["k-1"]).data == []
    with pytest.raises(orb.NotFoundError):
        other.events.deprecate("k-1")
    with pytest.raises(orb.NotFoundError):
        other.events.update("k-1", event_name="call", timestamp=stamp(at), properties={},
                            customer_id=live.id)


def bill(server: Server, month: date) -> None:
    runner.bill_months(build_definitions(OrbStore(data_dir=str(server.data_dir))), [month],
                       dg.DagsterInstance.ephemeral())


def test_backfills_add_replace_and_revert_a_billed_months_events(server):
    client = server.client(server.operator)
    customer = client.customers.create(email="b@x.test", name="Backfilled", timezone="UTC")
    # 40 days ago: past Orb's 31-day grace period, in a month that is over
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=40)
    month = t0.date().replace(day=1)
    client.subscriptions.create(customer_id=customer.id, plan_id="metered",
                                start_date=month.isoformat())
    invoice_id = f"{customer.id}-{periods.add_months(month, 1):%Y%m%d}-USD"

    # debug: answered synchronously (a buffered request finds it at landing, quarantined)
    with pytest.raises(orb.BadRequestError) as old:
        client.events.ingest(events=[event("b-0", customer.id, t0)],
                             extra_query={"debug": "true"})
    assert old.value.body["validation_failed"] == [
        {"idempotency_key": "b-0", "validation_errors": [TOO_OLD]}]

    start, end = t0 - timedelta(days=1), t0 + timedelta(days=1)
    first = client.events.backfills.create(timeframe_start=stamp(start),
                                           timeframe_end=stamp(end), customer_id=customer.id)
    assert (first.status, first.customer_id, first.timeframe_start, first.timeframe_end,
            first.replace_existing_events, first.events_ingested, first.reverted_at) == (
        "pending", customer.id, start, end, False, 0, None)
    # Orb's default: it would close by itself a day after its creation
    assert first.close_time - first.created_at == timedelta(days=1)
    twelve = [event(f"b-{i}", customer.id, t0 + timedelta(minutes=i)) for i in range(12)]
    into = client.events.ingest(events=twelve, backfill_id=first.id,
                                extra_query={"debug": "true"})
    assert debug(into) == {"duplicate": [], "ingested": [f"b-{i}" for i in range(12)]}
    with pytest.raises(orb.BadRequestError) as outside:
        client.events.ingest(events=[event("late", customer.id, end)], backfill_id=first.id)
    assert outside.value.body["validation_failed"] == [
        {"idempotency_key": "late", "validation_errors": [
            "timestamp is outside the backfill's timeframe"]}]
    # pending: counted, but not part of the usage yet
    assert client.events.backfills.fetch(first.id).events_ingested == 12
    assert client.events.search(event_ids=["b-0"], timeframe_start=stamp(start),
                                timeframe_end=stamp(end)).data == []
    closed = client.events.backfills.close(first.id)
    assert closed.status == "reflected" and closed.close_time <= datetime.now(UTC)
    with pytest.raises(orb.BadRequestError):
        client.events.ingest(events=twelve, backfill_id=first.id)  # closed: no more
    bill(server, month)
    # 12 calls x 0.01
    assert client.invoices.fetch(invoice_id).total == "0.12"

    # 15 events replace the 12 (keys b-0 to b-11 reused: those events will not count)
    second = client.events.backfills.create(
        timeframe_start=stamp(start), timeframe_end=stamp(end), customer_id=customer.id,
        replace_existing_events=True)
    fifteen = [event(f"b-{i}", customer.id, t0 + timedelta(minutes=i)) for i in range(15)]
    into = client.events.ingest(events=fifteen, backfill_id=second.id,
                                extra_query={"debug": "true"})
    assert debug(into) == {"duplicate": [], "ingested": [f"b-{i}" for i in range(15)]}
    with pytest.raises(orb.BadRequestError) as overlap:  # Orb's rule: one pending at a time
        client.events.backfills.create(timeframe_start=stamp(t0), timeframe_end=stamp(end))
    assert overlap.value.body["validation_errors"] == [
        f"body.timeframe_start: the timeframe overlaps pending backfill {second.id} of "
        f"{customer.id}; close or revert it first"]
    bill(server, month)
    assert client.invoices.fetch(invoice_id).total == "0.12"  # pending: nothing changed
    client.events.backfills.close(second.id)
    bill(server, month)
    # 15 calls x 0.01: 0.03 more than the 12
    assert client.invoices.fetch(invoice_id).total == "0.15"
    assert [e.deprecated for e in client.events.search(
        event_ids=["b-0"], timeframe_start=stamp(start), timeframe_end=stamp(end)).data] == [
        True, False]

    reverted = client.events.backfills.revert(second.id)
    assert (reverted.status, reverted.reverted_at is not None) == ("reverted", True)
    bill(server, month)
    assert client.invoices.fetch(invoice_id).total == "0.12"  # the 12 count again
    assert [(b.id, b.status) for b in client.events.backfills.list()] == [
        (second.id, "reverted"), (first.id, "reflected")]
    assert [b.id for b in client.events.backfills.list(status="reflected")] == [first.id]

    # another tenant's key finds none of it; a read-only key changes none of it
    other = server.client(server.tenant_b)
    for call in (other.events.backfills.fetch, other.events.backfills.close,
                 other.events.backfills.revert):
        with pytest.raises(orb.NotFoundError):
            call(first.id)
    with pytest.raises(orb.NotFoundError):
        other.events.ingest(events=twelve, backfill_id=first.id)
    assert other.events.backfills.list().data == []
    reader = server.client(server.reader)
    assert reader.events.backfills.fetch(first.id).status == "reflected"
    with pytest.raises(orb.PermissionDeniedError):
        reader.events.backfills.revert(first.id)
    with pytest.raises(orb.PermissionDeniedError):
        reader.events.backfills.create(timeframe_start=stamp(start), timeframe_end=stamp(end))


def test_backfill_requests_orb_refuses(server):
    client = server.client(server.admin)
    now = datetime.now(UTC).replace(microsecond=0)
    with pytest.raises(orb.BadRequestError) as long:
        client.events.backfills.create(timeframe_start=stamp(now - timedelta(days=40)),
                                       timeframe_end=stamp(now - timedelta(days=8)))
    assert long.value.body["validation_errors"] == [
        "body.timeframe_end: a backfill covers at most 31 days; this one covers 32 days, "
        "0:00:00"]
    with pytest.raises(orb.BadRequestError) as future:
        client.events.backfills.create(timeframe_start=stamp(now - timedelta(days=1)),
                                       timeframe_end=stamp(now + timedelta(days=1)))
    assert future.value.body["validation_errors"][0].startswith("body.timeframe_end: ")
    with pytest.raises(orb.BadRequestError) as filtered:  # it narrows what is replaced
        client.events.backfills.create(timeframe_start=stamp(now - timedelta(days=2)),
                                       timeframe_end=stamp(now - timedelta(days=1)),
                                       deprecation_filter="properties.region = 'eu'")
    assert filtered.value.body["validation_errors"] == [
        "body.deprecation_filter: applies to the events a backfill replaces: set "
        "replace_existing_events too"]
    with pytest.raises(orb.BadRequestError) as query:
        client.events.backfills.create(timeframe_start=stamp(now - timedelta(days=2)),
                                       timeframe_end=stamp(now - timedelta(days=1)),
                                       replace_existing_events=True,
                                       deprecation_filter="my_udf(properties.x) = 1")
    assert query.value.body["validation_errors"] == [
        "body.deprecation_filter: line 1, column 1: function my_udf is not allowed in a "
        "metric"]
    with pytest.raises(orb.NotFoundError):
        client.events.backfills.fetch("bf_404")


# -- the lake: a backfill as every reader of events sees it ------------------------------

def counted(lake: Lake) -> list[tuple[str, int]]:
    """(key, tokens) of the events that count, as rating reads them (active_events)."""
    with closing(connect()) as con:
        register_active_events(con, lake, lake.all_files("events"))
        return sorted((key, json.loads(properties)["tokens"]) for key, properties in con.sql(
            "SELECT idempotency_key, properties FROM active_events").fetchall())


def test_a_backfill_cut_short_counts_nothing_until_closed_and_a_revert_undoes_it(tmp_path):
    lake = Lake(tmp_path)
    shop = catalog([], [{"id": "c1", "name": "c1"}, {"id": "c2", "name": "c2"}], [])
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    ordinary = batch(tmp_path / "ordinary.jsonl", ev("a", stamp(t), tokens=1),
                     ev("b", stamp(t + timedelta(hours=1)), tokens=2),
                     ev("c", stamp(t), customer="c2", tokens=4))
    ingest_files(connect(), lake, shop, [ordinary], t + timedelta(days=1))
    # closing by itself a week from now, unless closed before
    backfill = create_backfill(lake, "c1", t - timedelta(hours=1), t + timedelta(hours=2),
                               True, t + timedelta(days=10), t + timedelta(days=2),
                               timedelta(days=400))
    fixed = batch(tmp_path / "fixed.jsonl", ev("a", stamp(t), tokens=10),
                  ev("d", stamp(t + timedelta(minutes=5)), tokens=20))
    # killed after enrolling the batch and before ingesting it: nothing changed
    enroll(lake, backfill, batch_id_of(fixed))
    assert counted(lake) == [("a", 1), ("b", 2), ("c", 4)]
    # sent again: ingested (key a is free: the event it names will be replaced), and still
    # not counted while the backfill is pending
    (result,) = ingest_files(connect(), lake, shop, [fixed], t + timedelta(days=2, hours=1),
                             scope=backfill.scope)
    assert (result.accepted, result.duplicates) == (2, 0)
    assert counted(lake) == [("a", 1), ("b", 2), ("c", 4)]
    # closed: c1's two events in the timeframe are replaced by the backfill's two; c2's stays
    close_backfill(lake, backfill.backfill_id, t + timedelta(days=2, hours=2))
    assert counted(lake) == [("a", 10), ("c", 4), ("d", 20)]
    revert_backfill(lake, backfill.backfill_id, t + timedelta(days=2, hours=3))
    assert counted(lake) == [("a", 1), ("b", 2), ("c", 4)]


def test_a_deprecation_filter_replaces_only_the_events_it_matches(tmp_path):
    """c1 has a (us, 1 token) and b (eu, 2) in the timeframe, c2 has c (us, 4). A backfill
    of c1 replacing the events where region is 'us' brings e (us, 10): once closed, a is
    deprecated, b stays (eu), c stays (another customer): b 2, c 4, e 10."""
    lake = Lake(tmp_path)
    shop = catalog([], [{"id": "c1", "name": "c1"}, {"id": "c2", "name": "c2"}], [])
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    ordinary = batch(tmp_path / "ordinary.jsonl", ev("a", stamp(t), tokens=1, region="us"),
                     ev("b", stamp(t), tokens=2, region="eu"),
                     ev("c", stamp(t), customer="c2", tokens=4, region="us"))
    ingest_files(connect(), lake, shop, [ordinary], t + timedelta(days=1))
    with pytest.raises(ValueError) as unknown:  # checked as a price's filter is
        create_backfill(lake, "c1", t - timedelta(hours=1), t + timedelta(hours=1), True,
                        None, t + timedelta(days=2), timedelta(days=400), "region = 'us'")
    assert str(unknown.value).startswith("deprecation_filter: line 1, column 1: unknown "
                                         "column region")
    backfill = create_backfill(lake, "c1", t - timedelta(hours=1), t + timedelta(hours=1),
                               True, None, t + timedelta(days=2), timedelta(days=400),
                               "properties.region = 'us'")
    fixed = batch(tmp_path / "fixed.jsonl", ev("e", stamp(t), tokens=10, region="us"))
    enroll(lake, backfill, batch_id_of(fixed))
    ingest_files(connect(), lake, shop, [fixed], t + timedelta(days=2, hours=1),
                 scope=backfill.scope)
    close_backfill(lake, backfill.backfill_id, t + timedelta(days=2, hours=2))
    assert counted(lake) == [("b", 2), ("c", 4), ("e", 10)]
    revert_backfill(lake, backfill.backfill_id, t + timedelta(days=2, hours=3))
    assert counted(lake) == [("a", 1), ("b", 2), ("c", 4)]
