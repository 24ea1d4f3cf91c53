from decimal import Decimal

import pytest

from pricing_sql.metrics import MetricSQLError, compile_usage_query, parse_metric
from storage.duck import connect

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
    con.execute("CREATE TABLE period_events (window_id VARCHAR, event_name VARCHAR, "
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
    con.execute("CREATE TABLE period_events (window_id VARCHAR, event_name VARCHAR, "
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
    con.execute("CREATE TABLE period_events (window_id VARCHAR, event_name VARCHAR, "
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
