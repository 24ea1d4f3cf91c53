"""DuckDB and Spark give identical usage, line items and invoices from the same SQL.

The rating SQL is written once (DuckDB's dialect) and transpiled to Spark with sqlglot
(pricing_sql/engine.py, docs/engines.md). One local SparkSession serves the module.
"""

import re
import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal, localcontext

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from billing.catalog import Catalog
from billing.charges import billing_windows
from billing.credits import Grant
from ingestion.amendments import record_amendment
from ingestion.backfills import create_backfill
from ingestion.batches import ingest_files
from invoicing.assembly import assemble_invoices
from pricing_sql.engine import (
    SHARED_SQL,
    DuckDBEngine,
    engine_from_env,
    parse_script,
    temp_relation,
    to_spark,
)
from pricing_sql.metrics import compile_usage_query
from pricing_sql.rating import compute_usage, price_line_items, usage_requests
from pricing_sql.sql import load_sql
from storage.duck import connect
from storage.lake import Lake
from storage.tables import USAGE as USAGE_SCHEMA
from tests.batches import batch
from tests.catalogs import catalog, model, unit

OCTOBER = date(2026, 10, 1)
NOW = datetime(2026, 11, 10, tzinfo=UTC)
LATER = datetime(2026, 11, 11, tzinfo=UTC)

REGION_TIERS = [{"tier_lower_bound": "0", "unit_amount": "1.00"},
                {"tier_lower_bound": "10", "unit_amount": "0.50"}]
MATRIX = {"dimensions": ["region"], "default_unit_amount": "0.003",
          "matrix_values": [{"dimension_values": ["eu"], "unit_amount": "0.002"},
                            {"dimension_values": ["us"], "unit_amount": "0.0015"}]}
TIERS = {"tiers": [{"first_unit": 0, "last_unit": 1000, "unit_amount": "0.01"},
                   {"first_unit": 1000, "last_unit": None, "unit_amount": "0.005"}]}
FILTER = "properties.region IN ('us', 'eu') AND properties.tokens > 100"
# Every model, on calls (count), tokens (a fractional sum) and tokens by region.
PRICES = [
    unit("platform", "49.00", fixed_quantity=2),
    model("support", "unit", {"unit_amount": "20.00", "prorated": True}, fixed_quantity=1),
    unit("calls", "0.0001", metric="calls"),
    {**model("us_tokens", "grouped_tiered", {"grouping_key": "region", "tiers": REGION_TIERS},
             metric="tokens"), "filter": FILTER},
    model("tiered_calls", "tiered", TIERS, metric="calls"),
    model("package", "package", {"package_amount": "1.00", "package_size": "0.7"}, metric="tokens"),
    model("matrix", "matrix", MATRIX, metric="tokens"),
    model("matrix_alloc", "matrix_with_allocation", {**MATRIX, "allocation": "500.5"},
          metric="tokens"),
    model("bulk", "bulk", {"tiers": [{"maximum_units": 1000, "unit_amount": "0.01"},
                                     {"maximum_units": None, "unit_amount": "0.008"}]},
          metric="tokens"),
    model("threshold", "threshold_total_amount", {"consumption_table": [
        {"threshold": "5", "total_amount": "5"}, {"threshold": "1000", "total_amount": "40"}]},
          metric="calls"),
    model("tiered_package", "tiered_package", {"package_size": "10", "tiers": [
        {"tier_lower_bound": "0", "per_unit": "1"},
        {"tier_lower_bound": "500", "per_unit": "0.8"}]},
          metric="tokens"),
    model("with_minimum", "tiered_with_minimum", {"prorate": True, "tiers": [
        {**tier, "minimum_amount": "3"} for tier in REGION_TIERS]}, metric="calls"),
    model("package_alloc", "package_with_allocation",
          {"allocation": "100", "package_amount": "2", "package_size": "3"}, metric="tokens"),
    model("percent", "unit_with_percent", {"unit_amount": "0.5", "percent": "2"}, metric="tokens"),
    model("bps", "bps", {"bps": 125}, metric="tokens"),
    model("bulk_bps", "bulk_bps", {"tiers": [{"maximum_amount": "10000", "bps": 125},
                                             {"maximum_amount": None, "bps": 100}]},
          metric="tokens"),
    model("capped_bps", "bps", {"bps": "125", "per_unit_maximum": "0.5"}, metric="tokens"),
    model("capped_bulk_bps", "bulk_bps", {"tiers": [
        {"maximum_amount": "10000", "bps": "125", "per_unit_maximum": "0.3"},
        {"maximum_amount": None, "bps": "100", "per_unit_maximum": "0.7"}]}, metric="tokens"),
    model("tiered_bps", "tiered_bps", {"tiers": [
        {"minimum_amount": "0", "maximum_amount": "100", "bps": 125},
        {"minimum_amount": "100", "maximum_amount": None, "bps": 100}]}, metric="tokens"),
    model("grouped_tiered", "grouped_tiered", {"grouping_key": "region", "tiers": REGION_TIERS},
          metric="tokens"),
    model("proration", "unit_with_proration", {"unit_amount": "0.031"}, metric="calls"),
    model("grouped_alloc", "grouped_allocation", {"grouping_key": "region", "allocation": "100",
                                                  "overage_unit_rate": "0.013"}, metric="tokens"),
    model("tiered_proration", "tiered_with_proration", {"tiers": REGION_TIERS}, metric="tokens"),
    model("bulk_proration", "bulk_with_proration", {"tiers": [
        {"unit_amount": "0.01"}, {"tier_lower_bound": "1000", "unit_amount": "0.008"}]},
          metric="tokens"),
    model("package_minimum", "tiered_package_with_minimum", {"package_size": "10", "tiers": [
        {"tier_lower_bound": "0", "per_unit": "1", "minimum_amount": "7"},
        {"tier_lower_bound": "500", "per_unit": "0.8", "minimum_amount": "60"}]},
          metric="tokens"),
    model("grouped_package", "grouped_tiered_package", {
        "grouping_key": "region", "package_size": "0.7", "tiers": [
            {"tier_lower_bound": "0", "per_unit": "1"},
            {"tier_lower_bound": "700", "per_unit": "0.5"}]}, metric="tokens"),
    model("display_names", "matrix_with_display_name", {"dimension": "region", "unit_amounts": [
        {"dimension_value": "eu", "display_name": "Europe", "unit_amount": "0.002"},
        {"dimension_value": "us", "display_name": "US", "unit_amount": "0.0015"}]},
          metric="tokens"),
    model("scalable", "scalable_matrix_with_unit_pricing", {
        "first_dimension": "region", "unit_price": "0.003", "prorate": True,
        "matrix_scaling_factors": [{"first_dimension_value": "eu", "scaling_factor": "0.5"},
                                   {"first_dimension_value": "us", "scaling_factor": "1.25"}]},
          metric="tokens"),
    model("min_max", "grouped_with_min_max_thresholds", {
        "grouping_key": "region", "per_unit_rate": "0.013", "minimum_charge": "5",
        "maximum_charge": "9.5"}, metric="tokens"),
    model("max_group", "max_group_tiered_package", {
        "grouping_key": "region", "package_size": "10", "tiers": [
            {"tier_lower_bound": "0", "unit_amount": "0.01"},
            {"tier_lower_bound": "500", "unit_amount": "0.004"}]}, metric="tokens"),
    model("cumulative", "cumulative_grouped_allocation", {
        "grouping_key": "region", "cumulative_allocation": "700.5", "group_allocation": "400",
        "unit_amount": "0.013"}, metric="tokens"),
    model("filtered", "bulk_with_filters", {
        "filters": [{"property_key": "region", "property_value": "eu"}],
        "tiers": [{"unit_amount": "0.01"}, {"tier_lower_bound": "1000", "unit_amount": "0.008"}]},
          metric="tokens"),
    model("event_output", "event_output", {"unit_rating_key": "user_id",
                                           "default_unit_rate": "0.5"}, metric="calls"),
    model("tiered_matrix", "grouped_tiered_matrix", {
        "dimension": "region", "default_unit_amount": "0.003", "tiers": [
            {"dimension_value": "eu", "tier_lower_bound": "0", "unit_amount": "0.002"},
            {"dimension_value": "eu", "tier_lower_bound": "500", "unit_amount": "0.001"}]},
          metric="tokens"),
    model("tiered_matrix_alloc", "tiered_matrix_with_allocation", {
        "dimensions": ["region"], "default_unit_amount": "0.003", "allocation": "500.5",
        "tiers": [{"dimension_values": ["us"], "tier_lower_bound": "0", "unit_amount": "0.002"},
                  {"dimension_values": ["us"], "tier_lower_bound": "300",
                   "unit_amount": "0.0015"}]}, metric="tokens"),
    {**model("percent_fee", "percent", {"percent": "0.025", "minimum_amount": "3",
                                        "maximum_amount": "5000", "prorated": True}),
     "composite_price_filters": [
         {"field": "price_type", "operator": "includes", "values": ["usage_price"]}]},
    model("minimum_composite", "minimum_composite", {"minimum_amount": "1000000.5",
                                                     "prorated": True}),
    model("allowance", "metered_allowance", {
        "grouping_key": "region", "consumption_grouping_value": "eu",
        "allowance_grouping_value": "us", "unit_amount": "0.0013"}, metric="tokens"),
    model("prorated_minimum", "grouped_with_prorated_minimum", {
        "grouping_key": "region", "minimum": "7.031", "unit_rate": "0.0017"}, metric="tokens"),
    model("cumulative_bulk", "cumulative_grouped_bulk", {"group": "region", "dimension_values": [
        {"grouping_key": region, "tier_lower_bound": bound, "unit_amount": rate}
        for bound, rates in (("0", ("0.002", "0.003")), ("3000", ("0.0015", "0.0025")))
        for region, rate in zip(("eu", "us"), rates, strict=True)]}, metric="tokens"),
    # spend discounts per cell group and per day, metered minimums, scaled tiers
    model("threshold_discounts", "matrix_with_threshold_discounts", {
        "first_dimension": "region", "second_dimension": "model",
        "default_unit_amount": "0.003", "matrix_values": [
            {"first_dimension_value": "eu", "second_dimension_value": "large",
             "unit_amount": "0.0021"}],
        "threshold_discount_groups": [{
            "cell_coordinates": "eu,large;us,small", "threshold_amount": "100.5",
            "below_threshold_discount_percentage": "0.05",
            "above_threshold_discount_percentage": "0.125"}]}, metric="tokens"),
    model("daily_allowance", "daily_credit_allowance", {
        "dimensions": ["region"], "event_day_property": "day", "default_unit_amount": "0.003",
        "daily_allowance": "0.25",
        "matrix_values": [{"dimension_values": ["eu"], "unit_amount": "0.002"}]},
          metric="tokens"),
    model("metered_minimum", "grouped_with_metered_minimum", {
        "grouping_key": "region", "pricing_key": "model", "scaling_key": "day",
        "minimum_unit_amount": "0.0025",
        "unit_amounts": [{"pricing_value": "large", "unit_amount": "0.004"},
                         {"pricing_value": "small", "unit_amount": "0.001"}],
        "scaling_factors": [{"scaling_value": "2026-10-02", "scaling_factor": "1.5"}]},
          metric="tokens"),
    model("scalable_tiered", "scalable_matrix_with_tiered_pricing", {
        "first_dimension": "region",
        "matrix_scaling_factors": [{"first_dimension_value": "eu", "scaling_factor": "0.5"}],
        "tiers": [{"tier_lower_bound": "0", "unit_amount": "0.003"},
                  {"tier_lower_bound": "500", "unit_amount": "0.002"}]}, metric="tokens"),
]
METRICS = {
    "calls": "SELECT count(*) FROM events WHERE event_name = 'api_request'",
    "tokens": "SELECT sum(properties.tokens) FROM events WHERE event_name = 'completion'",
    "users": "SELECT count(DISTINCT properties.user_id) FROM events",
    "peak": "SELECT max(properties.gb) FROM events WHERE event_name = 'storage'",
    "latest": "SELECT latest_by(properties.gb, timestamp) FROM events "
              "WHERE event_name = 'storage'",
    "eu": "SELECT sum(properties.tokens * 2) FROM events WHERE properties.region = 'eu'",
}


def plan(plan_id, currency):
    prices = [{**price, "id": f"{plan_id}_{price['id']}"} for price in PRICES]
    return {"id": plan_id, "name": plan_id, "currency": currency, "prices": prices,
            "adjustments": [{"id": f"{plan_id}_off", "adjustment_type": "percentage_discount",
                             "percentage_discount": "0.1"}]}


# USD (2 decimals), JPY (0), KWD (3), CLF (4); customers in four time zones, two
# starting mid-month (prorated fees and proration prices).
CUSTOMERS = [("ny", "America/New_York", "usd", "2026-01-01"),
             ("tokyo", "Asia/Tokyo", "jpy", "2026-10-15"),
             ("kuwait", "Asia/Kuwait", "kwd", "2026-10-07"),
             ("santiago", "America/Santiago", "clf", "2026-01-01")]


@pytest.fixture(scope="module")
def shop():
    return catalog(
        plans=[plan("usd", "USD"), plan("jpy", "JPY"), plan("kwd", "KWD"), plan("clf", "CLF")],
        customers=[{"id": c, "name": c, "timezone": tz} for c, tz, _, _ in CUSTOMERS],
        subscriptions=[{"id": f"s_{c}", "customer_id": c, "plan_id": p, "start_date": start}
                       for c, _, p, start in CUSTOMERS],
        metrics=METRICS,
    )


@pytest.fixture(scope="module")
def spark():
    # `make test` installs both; a missing one is a failure, not a skipped parity test.
    assert shutil.which("java"), "Spark needs a Java runtime: apt-get install default-jre-headless"
    from pricing_sql.engine import SparkEngine, spark_session

    session = spark_session("local[2]")
    yield SparkEngine(session)
    session.stop()


def events():
    """Events over October for every customer: calls, fractional tokens by region (one
    group without a region), users and storage snapshots; a few out of any window."""
    rows = []
    for c, _, _, _ in CUSTOMERS:
        for day in range(1, 32):
            ts = f"2026-10-{day:02d}T{(day * 7) % 24:02d}:30:00Z"
            rows.append({"event_name": "api_request", "timestamp": ts, "customer_id": c,
                         "idempotency_key": f"{c}-call-{day}", "properties": {"user_id": day % 5}})
            region = ["eu", "us", "apac", None][day % 4]
            tokens = {"tokens": f"{day * 37}.{day:03d}"} if day % 6 else {"tokens": 0.123456789}
            rows.append({"event_name": "completion", "timestamp": ts, "customer_id": c,
                         "idempotency_key": f"{c}-tok-{day}",
                         "properties": {**tokens, **({"region": region} if region else {}),
                                        "day": f"2026-10-{day:02d}",
                                        "model": ["large", "small"][day % 2]}})
            if day % 3 == 0:
                rows.append({"event_name": "storage", "timestamp": ts, "customer_id": c,
                             "idempotency_key": f"{c}-gb-{day}", "properties": {"gb": day * 1.5}})
        rows.append({"event_name": "completion", "timestamp": "2026-10-20T00:00:00Z",
                     "customer_id": c, "idempotency_key": f"{c}-big",
                     "properties": {"tokens": 123456789012.5, "region": "eu"}})
    return rows


@pytest.fixture(scope="module")
def lake(tmp_path_factory, shop):
    root = tmp_path_factory.mktemp("parity")
    lake = Lake(root)
    ingest_files(connect(), lake, shop, [batch(root / "october.jsonl", *events())], NOW)
    # An amendment deprecates Tokyo's events of Oct 20: the ANTI JOIN runs on both engines.
    record_amendment(lake, "tokyo", datetime(2026, 10, 20, tzinfo=UTC),
                     datetime(2026, 10, 21, tzinfo=UTC), "duplicate upload", LATER)
    # A backfill replaces ny's 'us' events of Oct 1-7 with none (closed by itself a day
    # after NOW): its deprecation filter joins the ANTI JOIN's condition on both engines.
    create_backfill(lake, "ny", datetime(2026, 10, 1, tzinfo=UTC),
                    datetime(2026, 10, 8, tzinfo=UTC), True, None, NOW, timedelta(days=400),
                    "properties.region = 'us'")
    return lake


def assert_same(duck: pa.Table, spark: pa.Table) -> None:
    """Same column names and types, same rows in the same order, every value equal
    (Decimals exactly: Decimal('1.50') == Decimal('1.5'), so the types are compared too)."""
    assert spark.schema.names == duck.schema.names
    assert [f.type for f in spark.schema] == [f.type for f in duck.schema]
    assert spark.num_rows == duck.num_rows
    assert spark.to_pylist() == duck.to_pylist()
    assert spark.equals(duck)


@pytest.fixture(scope="module")
def usage(spark, lake, shop):
    return (compute_usage(DuckDBEngine(), lake, shop, OCTOBER).usage,
            compute_usage(spark, lake, shop, OCTOBER).usage)


def test_usage_is_identical(usage):
    duck, spark = usage
    assert_same(duck, spark)
    rows = duck.to_pylist()
    # every metric counted, the matrix/grouped usage by region incl. the missing region
    # and the filtered price's own usage, and the events over each cap per event
    assert {r["metric_id"] for r in rows} == set(METRICS) | {f"tokens WHERE {FILTER}"} | {
        f"tokens OVER {cap} AT {rate}: {what}" for cap, rate in
        (("0.5", "0.0125"), ("0.3", "0.0125"), ("0.7", "0.01")) for what in ("volume", "count")}
    assert {tuple(r["group_values"]) for r in rows if r["grouping"] == ["region"]} == {
        ("eu",), ("us",), ("apac",), (None,)}
    # event_output's usage by its rate property, user_id (0 to 4)
    assert {tuple(r["group_values"]) for r in rows if r["grouping"] == ["user_id"]} == {
        (str(n),) for n in range(5)}
    # the amendment removed Tokyo's big event of Oct 20 on both engines
    tokyo = [r for r in rows if r["window_id"].startswith("s_tokyo") and r["grouping"] == ["region"]
             and r["group_values"] == ["eu"]]
    assert tokyo and all(r["quantity"] < 10**9 for r in tokyo)
    # ny's 'us' tokens: days 1, 5, 9, ..., 29 (day % 4 == 1), d x 37 + d / 1000 each; the
    # backfill took days 1 and 5: 333.009 + 481.013 + 629.017 + 777.021 + 925.025
    # + 1073.029 = 4218.114 (with them, 4440.120)
    (ny_us,) = [r["quantity"] for r in rows if r["window_id"].startswith("s_ny")
                and r["metric_id"] == "tokens" and r["group_values"] == ["us"]]
    assert ny_us == Decimal("4218.114")


@pytest.fixture(scope="module")
def priced(spark, usage, shop):
    duck_usage, _ = usage
    return (price_line_items(DuckDBEngine(), shop, OCTOBER, duck_usage),
            price_line_items(spark, shop, OCTOBER, duck_usage))


def test_line_items_and_breakdown_are_identical(priced):
    duck, spark = priced
    assert_same(duck.line_items, spark.line_items)
    assert_same(duck.sub_line_items, spark.sub_line_items)
    lines = duck.line_items.to_pylist()
    assert {line["model_type"] for line in lines} >= {p["model_type"] for p in PRICES}
    assert {line["currency_exponent"] for line in lines} == {0, 2, 3, 4}
    assert any(line["prorated_days"] != line["period_days"] and line["amount"] for line in lines)


def test_invoices_are_identical(priced, shop):
    duck, spark = priced
    grants = [Grant("g1", "ny", "USD", Decimal("100.00"), Decimal(1), date(2026, 9, 1), None)]
    built = [assemble_invoices(connect(), shop, OCTOBER, p.line_items, grants, {}, {})
             for p in (duck, spark)]
    for table in ("invoices", "adjustments", "ledger"):
        assert_same(getattr(built[0], table), getattr(built[1], table))
    assert built[0].invoices.num_rows >= 4


def test_extreme_quantities_are_exact(spark):
    """Package counts and prorated amounts near the top of their DECIMAL ranges: the
    exact division (a floating-point quotient corrected exactly) on both engines."""
    shop = catalog(
        plans=[{"id": "p", "name": "P", "currency": "USD", "prices": [
            model("pkg", "package", {"package_amount": "1", "package_size": "0.000000007"},
                  metric="calls"),
            model("pro", "unit_with_proration", {"unit_amount": "0.000000000001"},
                  metric="tokens")]}],
        customers=[{"id": "c", "name": "C"}],
        subscriptions=[{"id": "s", "customer_id": "c", "plan_id": "p",
                        "start_date": "2026-10-02"}],
    )
    (window,) = {w.window_id for w in billing_windows(shop, OCTOBER) if not w.in_advance}
    calls = Decimal("350000000.123456789")  # 5e16 packages: past 2**53
    tokens = Decimal("99999999999999999999999999.999999999")
    usage = pa.Table.from_pylist(
        [{"window_id": window, "metric_id": m, "grouping": [], "group_values": [],
          "quantity": q} for m, q in (("calls", calls), ("tokens", tokens))],
        schema=USAGE_SCHEMA)
    duck = price_line_items(DuckDBEngine(), shop, OCTOBER, usage)
    on_spark = price_line_items(spark, shop, OCTOBER, usage)
    assert_same(duck.line_items, on_spark.line_items)
    assert_same(duck.sub_line_items, on_spark.sub_line_items)
    lines = {line["price_id"]: line for line in duck.line_items.to_pylist()}
    with localcontext(prec=80):
        packages = (calls / Decimal("0.000000007")).to_integral_value(ROUND_CEILING)
        precise = tokens * Decimal("0.000000000001")
        minor = (2 * precise * 100 * 30 + 31) // 62  # 30 of October's 31 days, half up
        assert packages > 2**53
        assert lines["pkg"]["quantity"] == calls
        assert lines["pkg"]["amount"] == packages
        assert lines["pro"]["precise_amount"] == precise
        assert lines["pro"]["amount"] == minor / 100


def statements():
    for name in SHARED_SQL:
        for statement in parse_script(load_sql(name)):
            yield name, statement


def test_every_shared_sql_file_transpiles_to_spark(shop):
    for name, statement in statements():
        relation = temp_relation(statement)
        sql = to_spark(relation[2] if relation else statement)  # unsupported_level=RAISE
        assert "ERROR(" not in sql.upper().replace("RAISE_ERROR(", ""), name
    compiled = compile_usage_query(usage_requests(shop), source="period_events")
    sqlglot.transpile(compiled.sql(dialect="duckdb"), read="duckdb", write="spark",
                      unsupported_level=sqlglot.ErrorLevel.RAISE)


# DuckDB constructs that do not transpile, or transpile to something that behaves
# differently on Spark (docs/engines.md).
DUCKDB_ONLY = {
    "read_parquet in FROM": r"\bread_parquet\s*\(",
    "AT TIME ZONE": r"\bat\s+time\s+zone\b",
    "epoch_ms": r"\bepoch_ms\s*\(",
    "ASOF JOIN": r"\basof\b",
    "list ordering function": r"\b(list_sort|array_sort|list_reverse_sort|array_reverse_sort|"
                              r"sort_array|list_grade_up|array_grade_up)\s*\(",
    "HUGEINT": r"\b(hugeint|int128|uhugeint)\b",
    "// integer division": r"//",
    "* EXCLUDE / REPLACE": r"\*\s*(exclude|replace)\b",
    "GROUP BY ALL": r"\bgroup\s+by\s+all\b",
    "strftime": r"\bstrftime\s*\(",
    "CAST AS JSON": r"\bas\s+json\b",
}
# List columns of the rating tables; ordering by one directly puts NULL elements last on
# DuckDB and first on Spark, so the SQL orders by list_transform(...) of it instead.
LIST_COLUMNS = {"group_values", "grouping", "dimension_values"}


def duckdb_only(sql: str) -> list[str]:
    code = re.sub(r"--[^\n]*", "", sql)
    found = [name for name, pattern in DUCKDB_ONLY.items()
             if re.search(pattern, code, re.IGNORECASE)]
    ordered = [o for statement in parse_script(sql) for o in statement.find_all(exp.Ordered)]
    if any(isinstance(o.this, exp.Column) and o.this.name in LIST_COLUMNS for o in ordered):
        found.append("ORDER BY a list column")
    return found


def test_shared_sql_has_no_duckdb_only_constructs():
    assert duckdb_only("SELECT * FROM read_parquet('x') ORDER BY ts AT TIME ZONE 'UTC'") == [
        "read_parquet in FROM", "AT TIME ZONE"]
    assert duckdb_only("SELECT CAST(a AS HUGEINT) // 2, list_sort(l) FROM t ASOF JOIN u") == [
        "ASOF JOIN", "list ordering function", "HUGEINT", "// integer division"]
    assert duckdb_only("SELECT 1 FROM t ORDER BY x, group_values") == ["ORDER BY a list column"]
    for name in SHARED_SQL:
        assert duckdb_only(load_sql(name)) == [], name


def test_engine_from_env(monkeypatch):
    monkeypatch.delenv("ORB_ENGINE", raising=False)
    assert engine_from_env().name == "duckdb"
    with pytest.raises(ValueError, match="ORB_ENGINE"):
        engine_from_env("presto")


def test_day_cycles_one_time_fees_and_dimensional_prices_are_identical(spark, lake):
    weekly = {"cadence": "custom",
              "billing_cycle_configuration": {"duration": 7, "duration_unit": "day"}}
    fortnightly = {"cadence": "custom",
                   "billing_cycle_configuration": {"duration": 14, "duration_unit": "day"}}
    prices = [
        {**unit("weekly_tokens", "0.001", metric="tokens"), **weekly},
        {**unit("us_tokens", "0.002", metric="tokens"), "dimensional_price_configuration": {
            "dimension_values": ["us"], "dimensional_price_group_id": "by_region"}},
        {**unit("eu_large", "0.003", metric="tokens"), **fortnightly,
         "dimensional_price_configuration": {"dimension_values": ["eu", "large"],
                                             "dimensional_price_group_id": "by_model"}},
        {**unit("setup", "500.00", fixed_quantity=1), "cadence": "one_time"},
        {**unit("platform", "300.00", fixed_quantity=1), "cadence": "custom",
         "billing_cycle_configuration": {"duration": 2, "duration_unit": "month"}}]
    cycles = Catalog.model_validate({
        "metrics": [{"id": m, "name": m, "sql": sql} for m, sql in METRICS.items()],
        "dimensional_price_groups": [
            {"id": "by_region", "name": "r", "billable_metric_id": "tokens",
             "dimensions": ["region"]},
            {"id": "by_model", "name": "m", "billable_metric_id": "tokens",
             "dimensions": ["region", "model"]}],
        "plans": [{"id": "cycles", "name": "cycles", "currency": "USD", "prices": prices}],
        "customers": [{"id": c, "name": c, "timezone": tz} for c, tz, _, _ in CUSTOMERS],
        "subscriptions": [{"id": f"s_{c}", "customer_id": c, "plan_id": "cycles",
                           "start_date": start} for c, _, _, start in CUSTOMERS]})
    duck_usage = compute_usage(DuckDBEngine(), lake, cycles, OCTOBER).usage
    assert_same(duck_usage, compute_usage(spark, lake, cycles, OCTOBER).usage)
    duck = price_line_items(DuckDBEngine(), cycles, OCTOBER, duck_usage)
    assert_same(duck.line_items, price_line_items(spark, cycles, OCTOBER, duck_usage).line_items)
    lines = duck.line_items.to_pylist()
    # ny's weekly windows from Jan 1 (Oct 1 is 39 weeks on) that end in October
    assert sorted(line["service_start"] for line in lines
                  if line["customer_id"] == "ny" and line["price_id"] == "weekly_tokens") == [
        date(2026, 10, 1), date(2026, 10, 8), date(2026, 10, 15), date(2026, 10, 22)]
    # the one-time fee only for the subscriptions that start in October
    assert sorted((line["customer_id"], line["invoice_date"]) for line in lines
                  if line["price_id"] == "setup") == [
        ("kuwait", date(2026, 10, 7)), ("tokyo", date(2026, 10, 15))]
