import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from click.testing import CliRunner

from billing.catalog import CatalogError
from cli.main import main
from ingestion.batches import ingest_files
from pricing_sql.catalog_files import load_checked_catalog
from pricing_sql.metrics import MetricSQLError, compile_usage_query, parse_metric
from pricing_sql.run_catalog import current_catalog
from storage.duck import connect
from storage.settings import Settings
from tests.batches import batch, ev
from tests.catalogs import write_data_dir

EVENTS = [
    ("s1", "completion", '{"tokens": 10}'),
    ("s1", "completion", '{"tokens": 20.5, "region": "eu"}'),
    ("s1", "api_request", "{}"),
    ("s1", "api_request", "{}"),
    ("s1", "api_request", "{}"),
    ("s1", "seat_active", '{"user_id": "u1"}'),
    ("s1", "seat_active", '{"user_id": "u1"}'),
    ("s1", "seat_active", '{"user_id": "u2"}'),
    ("s1", "storage_snapshot", '{"gb": 5.5}'),
    ("s1", "storage_snapshot", '{"gb": 7.25}'),
    ("s1", "storage_snapshot", '{"gb": 6}'),
    ("s2", "api_request", "{}"),
]

METRICS = {
    "tokens": "SELECT sum(properties.tokens) FROM events WHERE event_name = 'completion'",
    "eu_tokens": "SELECT sum(properties.tokens) FROM events "
                 "WHERE event_name = 'completion' AND properties.region = 'eu'",
    "calls": "SELECT count(*) FROM events WHERE event_name = 'api_request'",
    "seats": "SELECT count(DISTINCT properties.user_id) FROM events "
             "WHERE event_name = 'seat_active'",
    "peak_gb": "SELECT max(properties.gb) FROM events WHERE event_name = 'storage_snapshot'",
    "big_tokens": "SELECT count(*) FROM events WHERE properties.tokens > 15",
}


def test_metrics_compute_per_subscription():
    con = connect()
    con.execute("CREATE TEMP TABLE period_events (window_id VARCHAR, event_name VARCHAR, "
                "properties JSON, \"timestamp\" TIMESTAMPTZ)")
    con.executemany("INSERT INTO period_events VALUES (?, ?, ?, now())", EVENTS)
    query = compile_usage_query([(k, v, ()) for k, v in METRICS.items()], source="period_events")
    rows = con.execute(query.sql(dialect="duckdb")).fetchall()
    result = {(sub, metric): quantity for sub, metric, _, _, quantity in rows}
    assert result == {
        ("s1", "tokens"): Decimal("30.5"),
        ("s1", "eu_tokens"): Decimal("20.5"),
        ("s1", "calls"): Decimal(3),
        ("s2", "calls"): Decimal(1),
        ("s1", "seats"): Decimal(2),
        ("s1", "peak_gb"): Decimal("7.25"),  # numeric max: "7.25" < "6" as text
        ("s1", "big_tokens"): Decimal(1),
    }


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT 1", "FROM events"),
        ("SELECT count(*) FROM read_parquet('/etc/passwd')", "FROM events"),
        ("SELECT count(*) FROM 'secrets.parquet'", "FROM events"),
        ("SELECT count(*) FROM main.events", "FROM events"),
        ("SELECT count(*) FROM events, other", "JOIN is not allowed"),
        ("SELECT count(*) FROM events JOIN customers ON true", "JOIN is not allowed"),
        ("SELECT count(*) FROM (SELECT * FROM events)", "FROM events"),
        ("SELECT count(*) FROM events WHERE event_name IN (SELECT name FROM x)", "subqueries"),
        ("SELECT count(*) FROM events; DROP TABLE events", "exactly one SELECT"),
        ("DELETE FROM events", "must be a SELECT"),
        ("COPY events TO '/tmp/x.csv'", "must be a SELECT"),
        ("ATTACH 'other.duckdb'", "must be a SELECT"),
        ("INSTALL httpfs", "must be a SELECT"),
        ("PRAGMA version", "must be a SELECT"),
        ("SELECT sum(properties.a) FROM events WHERE getenv('HOME') = ''", "function getenv"),
        ("SELECT sum(read_text('/etc/passwd')) FROM events", "function read_text"),
        ("SELECT sum(x) FROM events", "unknown column x"),
        ("SELECT count(*) FROM events GROUP BY event_name", "GROUP BY is not allowed"),
        ("SELECT count(*) FROM events LIMIT 1", "LIMIT is not allowed"),
        ("SELECT event_name FROM events", "must be an aggregate"),
        ("SELECT count(*), sum(properties.a) FROM events", "exactly one value"),
        ("SELECT sum(properties.a) OVER () FROM events", "window functions"),
        ("SELECT count(*) FROM events WHERE count(*) > 1", "aggregates are not allowed in WHERE"),
        ("WITH e AS (SELECT 1) SELECT count(*) FROM events", "WITH is not allowed"),
        ("SELECT sum(properties.\"a b\") FROM events", "plain identifier"),
        ("SELECT DISTINCT count(*) FROM events", "SELECT DISTINCT is not allowed"),
        ("SELECT sum(properties.a FROM events", "cannot parse"),
    ],
)
def test_unsafe_or_malformed_metrics_are_refused(sql, message):
    with pytest.raises(MetricSQLError, match=message):
        parse_metric(sql)


def test_errors_give_line_and_column():
    with pytest.raises(MetricSQLError) as caught:
        parse_metric("SELECT sum(properties.tokens)\nFROM events\nWHERE shell('ls') = 1")
    assert (caught.value.line, caught.value.col) == (3, 7)
    assert str(caught.value).startswith("line 3, column 7: function shell")


def test_grouped_metric_counts_per_property_value():
    con = connect()
    con.execute("CREATE TEMP TABLE period_events (window_id VARCHAR, event_name VARCHAR, "
                "properties JSON, \"timestamp\" TIMESTAMPTZ)")
    con.executemany("INSERT INTO period_events VALUES (?, ?, ?, now())", [
        ("s1", "completion", '{"tokens": 10, "region": "eu"}'),
        ("s1", "completion", '{"tokens": 5, "region": "eu"}'),
        ("s1", "completion", '{"tokens": 7, "region": "us"}'),
        ("s1", "completion", '{"tokens": 1}'),  # no region: its own group, value null
    ])
    query = compile_usage_query([("tokens", METRICS["tokens"], ("region",))], "period_events")
    rows = con.execute(query.sql(dialect="duckdb")).fetchall()
    assert sorted(rows, key=str) == sorted([
        ("s1", "tokens", ["region"], ["eu"], Decimal(15)),
        ("s1", "tokens", ["region"], ["us"], Decimal(7)),
        ("s1", "tokens", ["region"], [None], Decimal(1)),
    ], key=str)


def test_latest_by_takes_the_last_events_value():
    con = connect()
    con.execute("CREATE TEMP TABLE period_events (window_id VARCHAR, event_name VARCHAR, "
                "properties JSON, \"timestamp\" TIMESTAMPTZ)")
    con.executemany("INSERT INTO period_events VALUES ('s1', 'snap', ?, ?)", [
        ('{"gb": 9}', "2026-10-01T00:00:00Z"),
        ('{"gb": 4.5}', "2026-10-20T00:00:00Z"),
        ('{"gb": 7}', "2026-10-10T00:00:00Z"),
    ])
    sql = "SELECT latest_by(properties.gb, timestamp) FROM events WHERE event_name = 'snap'"
    early = "SELECT earliest_by(properties.gb, timestamp) FROM events"
    query = compile_usage_query([("latest", sql, ()), ("earliest", early, ())], "period_events")
    rows = {metric: q for _, metric, _, _, q in con.execute(query.sql(dialect="duckdb")).fetchall()}
    assert rows == {"latest": Decimal("4.5"), "earliest": Decimal(9)}


def table_rows(output):
    """The rows of a printed table, as lists of stripped cells."""
    return [[cell.strip() for cell in line.split("│")[1:-1]]
            for line in output.splitlines() if line.startswith("│")]


def metrics_check(catalog, data_dir):
    # A wide terminal, so that no cell is wrapped.
    return CliRunner(env={"COLUMNS": "400"}).invoke(
        main, ["metrics", "check", "--catalog", str(catalog), "--data-dir", str(data_dir)],
        catch_exceptions=False)


RUN_FAILURES = """\
metrics:
  - id: tokens
    name: Tokens
    sql: SELECT sum(properties.tokens) FROM events WHERE event_name = 'completion'
  - id: earliest
    name: Earliest
    sql: SELECT count(*) FROM events WHERE event_name = $earliest
  - id: huge
    name: Huge
    sql: SELECT sum(CAST(properties.tokens AS DECIMAL(38,0)) * 1e300) FROM events
"""
EARLIEST = ("line 1, column 35: parameter $earliest is not allowed in a metric: a metric "
            "takes no parameters, write the value itself")
HUGE = ("line 1, column 55: 1e300 is a DOUBLE, not an integer or DECIMAL: a metric computes in "
        "exact numbers so that its value becomes a DECIMAL(38, 9) quantity without overflow "
        "or rounding; write numbers as decimals (0.001, 1000) and cast to DECIMAL(p, s)")


def test_metrics_check_refuses_metrics_that_would_fail_the_run(tmp_path):
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "metrics.yaml").write_text(RUN_FAILURES)
    result = metrics_check(tmp_path / "catalog", tmp_path)
    assert result.exit_code == 1
    assert table_rows(result.output) == [
        ["tokens", "ok", "yes", "yes", "yes"],
        ["earliest", f"metrics.yaml:7: metrics[1].sql: {EARLIEST}", "-", "-", "-"],
        ["huge", f"metrics.yaml:10: metrics[2].sql: {HUGE}", "-", "-", "-"],
    ]
    assert f"on no events: {tmp_path} has none" in result.output
    # a billing run loads the catalog through the same checks, and stops before it starts
    with pytest.raises(CatalogError) as caught:
        load_checked_catalog(tmp_path / "catalog")
    assert caught.value.problems == [
        f"metrics.yaml:7: metrics[1].sql: metric 'earliest': {EARLIEST}",
        f"metrics.yaml:10: metrics[2].sql: metric 'huge': {HUGE}",
    ]


@pytest.mark.parametrize(("sql", "problem"), [
    ("SELECT sum(timestamp) FROM events",
     "does not run: Binder Error: No function matches the given name and argument types "
     "'sum(TIMESTAMP WITH TIME ZONE)'. You might need to add explicit type casts."),
    ("SELECT max(lower(event_name)) FROM events",
     "the metric's value is a VARCHAR, not a number: a metric counts, sums or takes the min, "
     "max or average of numbers"),
    ("SELECT count(*) > 5 FROM events",
     "the metric's value is a BOOLEAN, not a number: a metric counts, sums or takes the min, "
     "max or average of numbers"),
    ("SELECT sum(CAST(properties.gb AS DOUBLE)) FROM events",
     "line 1, column 28: CAST(properties.gb AS DOUBLE) is a DOUBLE, not an integer or DECIMAL"),
    ("SELECT sum(properties.gb * 100000000000000000000000000000000000000000) FROM events",
     "line 1, column 28: 100000000000000000000000000000000000000000 is a BIGNUM, not an "
     "integer or DECIMAL"),
    # averages and quotients are DOUBLE in DuckDB: the one inexact value allowed
    ("SELECT avg(properties.gb) FROM events WHERE properties.gb > 1e3", None),
    ("SELECT sum(properties.tokens / 1000) FROM events", None),
    ("SELECT count(DISTINCT CAST(properties.user_id AS VARCHAR)) FROM events", None),
])
def test_each_metric_runs_on_an_empty_events_table_when_the_catalog_loads(tmp_path, sql,
                                                                           problem):
    (tmp_path / "metrics.yaml").write_text(
        f"metrics:\n  - id: m\n    name: M\n    sql: {json.dumps(sql)}\n")
    if problem is None:
        assert [m.id for m in load_checked_catalog(tmp_path).metrics] == ["m"]
        return
    with pytest.raises(CatalogError) as caught:
        load_checked_catalog(tmp_path)
    (found,) = caught.value.problems
    assert found.startswith(f"metrics.yaml:4: metrics[0].sql: metric 'm': {problem}")


SAMPLED = """\
metrics:
  - id: tokens
    name: Tokens
    sql: SELECT sum(properties.tokens) FROM events
  - id: named
    name: Named
    sql: SELECT count(*) FROM events WHERE event_name = 5
  - id: narrow
    name: Narrow
    sql: SELECT sum(CAST(properties.tokens AS INTEGER)) FROM events
"""


def test_metrics_check_runs_each_metric_on_the_lakes_newest_events(tmp_path):
    write_data_dir(tmp_path, {"metrics": [{"id": "calls", "name": "Calls",
                                           "sql": "SELECT count(*) FROM events"}],
                              "customers": [{"id": "c1", "name": "One"}]})
    settings = Settings(data_dir=str(tmp_path))
    events = batch(tmp_path / "b.jsonl", ev("k1", tokens=3_000_000_000), ev("k2", tokens=2))
    (result,) = ingest_files(connect(), settings.lake, current_catalog(settings), [events],
                             datetime(2026, 11, 10, tzinfo=UTC))
    assert result.accepted == 2
    # metrics written after those events came in: each binds and runs on no events, so
    # loading the catalog takes them; on real events each fails
    (tmp_path / "catalog" / "catalog.yaml").write_text(SAMPLED)
    assert len(load_checked_catalog(tmp_path / "catalog").metrics) == 3
    checked = metrics_check(tmp_path / "catalog", tmp_path)
    assert checked.exit_code == 1
    sample = "fails on a sample of 2 events of the lake: Conversion Error:"
    assert table_rows(checked.output) == [
        ["tokens", "ok", "yes", "yes", "yes"],
        ["named", f"catalog.yaml:7: metrics[1].sql: {sample} Could not convert string "
                  "'completion' to INT32 when casting from source column event_name",
         "-", "-", "-"],
        ["narrow", f"catalog.yaml:10: metrics[2].sql: {sample} Failed to cast decimal value "
                   "3000000000 to type INT32", "-", "-", "-"],
    ]
    assert (f"on an empty events table and on 2 events of the newest 31 days in {tmp_path}"
            in checked.output)
