"""No event can stop a month: numbers a metric sums are bounded at ingestion, and rating
leaves out, and reports, a customer whose values still make it raise (issue 20, item 2).

The bound: a property a metric reads as a number must be below 10^18 in absolute value
as rated (rounded to 9 decimals), so a month of up to 10^11 events sums inside the
DECIMAL(38, 9) of quantities (below 10^29)."""

import json
import shutil
from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient

from api.access import ApiConfig
from api.app import create_app
from api.registry import Registry, registry_url
from assets.resources import OrbStore
from ingestion.batches import ingest_files
from invoicing.issuing import drafts, issue_month
from pipelines import runner
from pipelines.definitions import build_definitions
from pricing_sql.isolation import MAX_EXCLUDED, RatingError
from pricing_sql.rating import compute_usage
from storage.duck import connect
from storage.lake import Lake
from storage.tables import BATCHES, EVENTS
from tests.api_tenants import API_VARIABLES
from tests.batches import batch, ev
from tests.catalogs import catalog, unit, write_data_dir

NOW = datetime(2026, 11, 10, tzinfo=UTC)
OCTOBER = date(2026, 10, 1)
TOKENS = "SELECT sum(properties.tokens) FROM events WHERE event_name = 'completion'"
OUT_OF_RANGE = "property tokens is out of range: its absolute value must be below 10^18"


def shop(customers):
    """``customers`` on a plan with a 10.00 fee and 0.01 a token, since 2026-01-01 (UTC)."""
    return {
        "metrics": [{"id": "tokens", "name": "tokens", "sql": TOKENS}],
        "plans": [{"id": "p", "name": "P", "currency": "USD", "prices": [
            unit("platform", "10.00", fixed_quantity=1),
            unit("per_token", "0.01", metric="tokens")]}],
        "customers": [{"id": c, "name": c} for c in customers],
        "subscriptions": [{"id": f"s_{c}", "customer_id": c, "plan_id": "p",
                           "start_date": "2026-01-01"} for c in customers],
    }


def quarantined(lake):
    files = lake.all_files("quarantine")
    rows = pq.read_table(files, partitioning=None).to_pylist() if files else []
    return sorted((r["idempotency_key"], r["reject_reason"]) for r in rows)


def accepted(lake):
    files = lake.all_files("events")
    rows = pq.read_table(files, partitioning=None).to_pylist() if files else []
    return sorted((r["idempotency_key"], json.loads(r["properties"])["tokens"]) for r in rows)


# -- ingestion -------------------------------------------------------------------------

def test_the_issues_two_huge_events_are_quarantined_naming_the_bound(tmp_path):
    """Two events of 10^29 - 1 tokens fit DECIMAL(38, 9) one by one but not summed: both
    are quarantined, naming the property and the bound."""
    lake, cat = Lake(tmp_path), catalog([], [{"id": "c1", "name": "c1"}], [],
                                        metrics={"tokens": TOKENS})
    huge = "99999999999999999999999999999"
    (result,) = ingest_files(connect(), lake, cat, [batch(
        tmp_path / "a.jsonl", ev("big-1", tokens=huge), ev("big-2", tokens=huge),
        ev("fine", tokens=7))], NOW)
    assert (result.rows, result.accepted, result.rejected) == (3, 1, 2)
    assert quarantined(lake) == [("big-1", OUT_OF_RANGE), ("big-2", OUT_OF_RANGE)]
    assert accepted(lake) == [("fine", 7)]


def test_the_bound_is_exact_as_rated(tmp_path):
    """10^18 - 10^-9 is the largest magnitude accepted; a value is judged as rating reads
    it, rounded half up to 9 decimals, so ...9.9999999995 is 10^18 and refused, and
    ...9.9999999994 is ...9.999999999 and kept."""
    lake, cat = Lake(tmp_path), catalog([], [{"id": "c1", "name": "c1"}], [],
                                        metrics={"tokens": TOKENS})
    ingest_files(connect(), lake, cat, [batch(
        tmp_path / "a.jsonl",
        ev("at-bound", tokens="999999999999999999.999999999"),
        ev("at-minus-bound", tokens="-999999999999999999.999999999"),
        ev("rounds-down", tokens="999999999999999999.9999999994"),
        ev("just-beyond", tokens="1000000000000000000"),
        ev("minus-just-beyond", tokens="-1000000000000000000"),
        ev("rounds-up", tokens="999999999999999999.9999999995"),
        ev("json-number", tokens=1e18),
        ev("words", tokens="lots"),
        ev("nan", tokens="NaN"))], NOW)
    assert quarantined(lake) == [
        ("json-number", OUT_OF_RANGE),
        ("just-beyond", OUT_OF_RANGE),
        ("minus-just-beyond", OUT_OF_RANGE),
        ("nan", "property tokens is not a number"),
        ("rounds-up", OUT_OF_RANGE),
        ("words", "property tokens is not a number"),
    ]
    assert accepted(lake) == [("at-bound", "999999999999999999.999999999"),
                              ("at-minus-bound", "-999999999999999999.999999999"),
                              ("rounds-down", "999999999999999999.9999999994")]


def test_http_ingestion_refuses_the_same_events(tmp_path, monkeypatch):
    for variable in API_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    write_data_dir(tmp_path, shop(["c1"]))
    registry = Registry.open(registry_url(tmp_path), tmp_path, clock=lambda: NOW)
    client = TestClient(create_app(ApiConfig(registry, require_auth=False, clock=lambda: NOW)))
    answer = client.post("/v1/ingest", params={"debug": "true"}, json={"events": [
        ev("big", tokens="99999999999999999999999999999"),
        ev("bound", tokens="999999999999999999.999999999")]})
    assert answer.status_code == 400
    assert answer.json()["validation_failed"] == [
        {"idempotency_key": "big", "validation_errors": [OUT_OF_RANGE]}]
    assert answer.json()["debug"]["ingested"] == ["bound"]


# -- rating ----------------------------------------------------------------------------

def write_old_events(lake, batch_id, rows):
    """Events straight into the lake, with their batch's commit record, as a lake written
    before ingestion bounded numbers holds them (all on 2026-10-15, UTC)."""
    events = pa.Table.from_pylist([
        {"timestamp": datetime(2026, 10, 15, 12, i, tzinfo=UTC), "event_name": "completion",
         "customer_id": customer, "idempotency_key": key,
         "properties": json.dumps({"tokens": tokens}), "batch_id": batch_id,
         "source_file": "old.jsonl", "source_row": i, "late": False}
        for i, (customer, key, tokens) in enumerate(rows)], schema=EVENTS)
    lake.write_file("events", "event_date", date(2026, 10, 15), f"{batch_id}.parquet", events)
    lake.write_partition("batches", "batch_id", batch_id, pa.Table.from_pylist([{
        "batch_id": batch_id, "file": "old.jsonl", "status": "ingested",
        "committed_at": datetime(2026, 10, 16, tzinfo=UTC),
        "checked_at": datetime(2026, 10, 16, tzinfo=UTC), "rows": len(rows),
        "accepted": len(rows), "rejected": 0, "duplicates": 0, "late": 0,
        "first_day": date(2026, 10, 15), "last_day": date(2026, 10, 15)}], schema=BATCHES))


def month_table(store, table):
    return pq.read_table(store.lake.partition_file(table, "billing_month", OCTOBER),
                         partitioning=None).to_pylist()


def test_a_lake_holding_poison_events_bills_everyone_else(tmp_path):
    """October 2026, every customer on 10.00 a month in advance and 0.01 a token:
    good:  1200 + 25 tokens = 1225 x 0.01 = 12.25; invoice of Nov 1 with November's fee:
           10.00 + 12.25 = 22.25
    small: 0.5 + 2 = 2.5 tokens x 0.01 = 0.025 -> 0.03 (half up); 10.00 + 0.03 = 10.03
    sum:   two events of 10^29 - 1 tokens: their sum passes DECIMAL(38, 9), the usage
           query raises for this customer
    price: one such event: usage 10^29 - 1, but x 0.01 passes the 10^17 of a line's
           precise amount, DECIMAL(38, 21): pricing raises for this customer
    text:  tokens "lots": not a number, the usage query's cast raises
    The three are left out of the month (no usage, no invoice, not even the fee) and
    reported; the month's revenue is computed without them."""
    customers = ["good", "price", "small", "sum", "text"]
    write_data_dir(tmp_path, shop(customers))
    store = OrbStore(data_dir=str(tmp_path), max_event_age_days=36500)
    huge = "99999999999999999999999999999"
    write_old_events(store.lake, "old-batch", [
        ("good", "g-1", 1200), ("good", "g-2", 25), ("small", "s-1", 0.5), ("small", "s-2", 2),
        ("sum", "sum-1", huge), ("sum", "sum-2", huge), ("sum", "sum-ok", 3),
        ("price", "price-1", huge), ("text", "text-1", "lots"), ("text", "text-ok", 4)])
    instance = dg.DagsterInstance.ephemeral()
    runner.bill_month(build_definitions(store), OCTOBER, instance)

    invoices = {row["customer_id"]: row["total"] for row in month_table(store, "invoices")}
    assert invoices == {"good": Decimal("22.25"), "small": Decimal("10.03")}
    usage = {(row["window_id"].split(":")[0], row["quantity"])
             for row in month_table(store, "usage")}
    assert usage == {("s_good", Decimal(1225)), ("s_small", Decimal("2.5"))}
    assert {row["customer_id"] for row in month_table(store, "line_items")} == {"good", "small"}

    excluded = {row["customer_id"]: row for row in month_table(store, "rating_exclusions")}
    assert {c: (row["step"], row["idempotency_keys"]) for c, row in excluded.items()} == {
        "price": ("line_items", ["price-1"]),
        "sum": ("usage", ["sum-1", "sum-2"]),
        "text": ("usage", ["text-1"]),
    }
    assert "Overflow" in excluded["sum"]["error"]
    assert "Overflow" in excluded["price"]["error"]
    assert "lots" in excluded["text"]["error"]
    # the run's record says so too, where the UI shows it
    materialization = instance.get_latest_materialization_event(dg.AssetKey("usage"))
    assert materialization.asset_materialization.metadata["excluded_customers"].value == [
        "sum", "text"]


def test_an_issued_invoice_of_a_customer_left_out_later_is_not_corrected(tmp_path):
    """October billed and issued: good 22.25 and small 10.03 (as above). Then an old
    poison event of small's is found in the lake and October re-run: small is left out,
    which says nothing about what small owes; its issued 10.03 must not be reversed by a
    credit note, and good's invoice is unchanged, so the run corrects nothing."""
    write_data_dir(tmp_path, shop(["good", "small"]))
    store = OrbStore(data_dir=str(tmp_path), max_event_age_days=36500)
    write_old_events(store.lake, "old-batch", [
        ("good", "g-1", 1200), ("good", "g-2", 25), ("small", "s-1", 0.5), ("small", "s-2", 2)])
    defs, instance = build_definitions(store), dg.DagsterInstance.ephemeral()
    runner.bill_month(defs, OCTOBER, instance)
    issued = issue_month(connect(), store.lake, OCTOBER, NOW)
    assert sorted(draft.head.total for _, draft in issued) == [Decimal("10.03"), Decimal("22.25")]

    huge = "99999999999999999999999999999"
    write_old_events(store.lake, "poison-batch", [("small", "p-1", huge), ("small", "p-2", huge)])
    runner.bill_month(defs, OCTOBER, instance)
    assert [row["customer_id"] for row in month_table(store, "rating_exclusions")] == ["small"]
    assert month_table(store, "invoice_corrections") == []
    assert drafts(connect(), store.lake, OCTOBER) == []


def ingested_shop(tmp_path, metrics, events):
    cat = catalog(
        plans=[{"id": "p", "name": "P", "currency": "USD",
                "prices": [unit(m, "1", metric=m) for m in metrics]}],
        customers=[{"id": c, "name": c} for c in sorted({e["customer_id"] for e in events})],
        subscriptions=[{"id": f"s_{c}", "customer_id": c, "plan_id": "p",
                        "start_date": "2026-01-01"}
                       for c in sorted({e["customer_id"] for e in events})],
        metrics=metrics)
    lake = Lake(tmp_path)
    (result,) = ingest_files(connect(), lake, cat, [batch(tmp_path / "a.jsonl", *events)], NOW)
    assert result.rejected == 0  # every value is within the bound
    return lake, cat


def named(name, key, customer, tokens):
    return {**ev(key, customer=customer, tokens=tokens), "event_name": name}


def multiplying_lake(tmp_path):
    """Values within the bound can still overflow a metric that multiplies them.
    squares: tokens x tokens is DECIMAL(38, 18), below 10^20, so b's 10^10 squared
    (10^20) raises on its own: b is left out and that event found by halving b's events.
    scaled: tokens x 10^19 is DECIMAL(38, 9), below 10^29; c's two events of 6 x 10^9
    make 6 x 10^28 each, 1.2 x 10^29 together: c is left out, no single event named.
    a: squares 1 + 4 + 9 = 14; scaled (1 + 2) x 10^19 = 3 x 10^19."""
    metrics = {"squares": "SELECT sum(properties.tokens * properties.tokens) FROM events "
                          "WHERE event_name = 'sq'",
               "scaled": "SELECT sum(properties.tokens * 10000000000000000000) FROM events "
                         "WHERE event_name = 'sc'"}
    return ingested_shop(tmp_path, metrics, [
        named("sq", "a-1", "a", 1), named("sq", "a-2", "a", 2), named("sq", "a-3", "a", 3),
        named("sc", "a-4", "a", 1), named("sc", "a-5", "a", 2),
        named("sq", "b-1", "b", 5), named("sq", "b-huge", "b", 10**10),
        named("sq", "b-2", "b", 7),
        named("sc", "c-1", "c", 6 * 10**9), named("sc", "c-2", "c", 6 * 10**9)])


def assert_multiplying_lake_rated(rated):
    assert {(r["window_id"].split(":")[0], r["metric_id"], r["quantity"])
            for r in rated.usage.to_pylist()} == {
        ("s_a", "squares", Decimal(14)), ("s_a", "scaled", Decimal(3 * 10**19))}
    assert {r["customer_id"]: (r["step"], r["idempotency_keys"])
            for r in rated.exclusions.to_pylist()} == {
        "b": ("usage", ["b-huge"]), "c": ("usage", [])}


def test_a_metric_whose_own_arithmetic_overflows_leaves_out_one_customer(tmp_path):
    lake, cat = multiplying_lake(tmp_path)
    assert_multiplying_lake_rated(compute_usage(connect(), lake, cat, date(2026, 11, 1)))


def test_spark_leaves_out_the_same_customers(tmp_path):
    """Spark raises errors of its own (ANSI mode): the same customers are left out, with
    the same events. good: 1200 + 25 = 1225 tokens; sum: two events of 10^29 - 1 overflow
    the sum; text: "lots" does not convert."""
    assert shutil.which("java"), "Spark needs a Java runtime: apt-get install default-jre-headless"
    from pricing_sql.engine import SparkEngine, spark_session

    data = shop(["good", "sum", "text"])
    cat = catalog(data["plans"], data["customers"], data["subscriptions"],
                  metrics={"tokens": TOKENS})
    lake = Lake(tmp_path)
    huge = "99999999999999999999999999999"
    write_old_events(lake, "old-batch", [
        ("good", "g-1", 1200), ("good", "g-2", 25), ("sum", "sum-1", huge),
        ("sum", "sum-2", huge), ("sum", "sum-ok", 3), ("text", "text-1", "lots")])
    session = spark_session("local[2]")
    try:
        on_spark = compute_usage(SparkEngine(session), lake, cat, OCTOBER)
    finally:
        session.stop()
    on_duckdb = compute_usage(connect(), lake, cat, OCTOBER)
    for rated in (on_spark, on_duckdb):
        assert [(r["window_id"].split(":")[0], r["quantity"]) for r in rated.usage.to_pylist()
                ] == [("s_good", Decimal(1225))]
        assert [(r["customer_id"], r["step"], r["idempotency_keys"])
                for r in rated.exclusions.to_pylist()] == [
            ("sum", "usage", ["sum-1", "sum-2"]), ("text", "usage", ["text-1"])]


def test_a_metric_that_fails_for_everyone_fails_the_run(tmp_path):
    """More than MAX_EXCLUDED customers failing is a broken metric, not poison events."""
    customers = [f"c{i:03d}" for i in range(MAX_EXCLUDED + 1)]
    lake, cat = ingested_shop(
        tmp_path, {"scaled": "SELECT sum(properties.tokens * 1e300) FROM events"},
        [ev(f"{c}-1", customer=c, tokens=1) for c in customers])
    with pytest.raises(RatingError, match=f"more than {MAX_EXCLUDED} customers.*'c000'"):
        compute_usage(connect(), lake, cat, date(2026, 11, 1))
