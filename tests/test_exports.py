"""Warehouse exports: the scenario of test_pipeline.py billed, issued, with a grant and an
amendment (so every published table has rows), exported to a folder and to S3 (moto's
server on 127.0.0.1), and read back with DuckDB, Polars and pyarrow; DDL per dialect."""

import hashlib
import shutil
from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg
import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from click.testing import CliRunner
from sqlglot import exp

from assets.resources import OrbStore
from billing.catalog import Catalog
from cli.export import export as export_command
from ingestion.amendments import record_amendment
from invoicing.credit_grants import record_grant
from invoicing.issuing import issue_month
from pipelines import runner
from pipelines.definitions import build_definitions
from state import StateStore
from storage.duck import connect
from storage.exports import lake_export as exports
from storage.exports.ddl import DIALECTS, UnsupportedType, create_table
from storage.lake import Lake
from storage.tables import INTERNAL_TABLES, PUBLISHED_TABLES, TABLES
from tests.scenario import CATALOG, write_scenario
from tests.servers import BUCKET
from webhooks import mirror, runs

OCTOBER = date(2026, 10, 1)
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TOTALS = {"ny-20261101-USD": Decimal("26.83"), "tokyo-20261015-JPY": Decimal("548"),
          "tokyo-20261101-JPY": Decimal("1003")}
SCENARIO = Catalog.model_validate(CATALOG)  # the grants' customers and currencies


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    root = tmp_path_factory.mktemp("lake")
    write_scenario(root)
    store = OrbStore(data_dir=str(root), max_event_age_days=36500)
    # Effective after October's invoices are dated: exported, but it pays none of them.
    record_grant(store.lake, SCENARIO, "ny", "USD", Decimal("50.00"), Decimal(1),
                 date(2026, 11, 15), None, grant_id="g1")
    runner.bill_months(build_definitions(store), [OCTOBER], dg.DagsterInstance.ephemeral())
    issue_month(connect(), store.lake, OCTOBER, NOW)
    record_amendment(store.lake, "tokyo", datetime(2026, 10, 31, 15, tzinfo=UTC),
                     datetime(2026, 11, 1, tzinfo=UTC), "sent twice", NOW, "tk-november")
    # the outbox's events (the customers', the issued invoices') mirrored: webhook_events
    with StateStore.open(store.state_store_url) as state:
        runs.catch_up(store.lake, state.engine, lambda: NOW)
        mirror.mirror(store.lake, state.engine)
    return store.lake


def lake_rows(con, lake: Lake, table: str) -> list[tuple]:
    return con.execute("SELECT * FROM read_parquet($files, hive_partitioning = true) "
                       "ORDER BY ALL", {"files": lake.all_files(table)}).fetchall()


def present(lake: Lake) -> list[str]:
    return [table for table in PUBLISHED_TABLES if lake.all_files(table)]


def test_every_lake_table_is_published_or_internal(lake):
    tables = {path.name for path in (lake.root / "lake").iterdir() if path.is_dir()}
    unclassified = tables - set(PUBLISHED_TABLES) - set(INTERNAL_TABLES)
    assert not unclassified, f"declare in storage/tables.py (published or not): {unclassified}"


def test_every_lake_table_is_declared_with_its_partition_key(lake):
    for path in sorted((lake.root / "lake").iterdir()):
        assert path.name in TABLES, f"declare {path.name!r} in storage/tables.py"
        key = TABLES[path.name].partition_key
        folders = [p.name for p in path.iterdir() if p.is_dir()]
        if key is None:  # keys: numpy runs, not hive partitions
            assert not any("=" in folder for folder in folders), path.name
        else:
            assert folders and all(f.startswith(f"{key}=") for f in folders), (path.name, key)


def test_every_lake_file_has_its_declared_schema(lake):
    """Names, order and types; a column of Arrow's null type is one pyarrow inferred from
    nulls alone (a batch record's first and last day when the batch kept no event)."""
    for table in TABLES.values():
        for file in lake.all_files(table.name):
            schema = pq.read_schema(file)
            assert schema.names == table.schema.names, file
            for field, declared in zip(schema, table.schema, strict=True):
                assert field.type in (declared.type, pa.null()), (file, field.name)


def test_every_published_table_round_trips_through_duckdb(lake, tmp_path):
    result = exports.export(lake, str(tmp_path / "out"), now=NOW)
    manifest = result.manifest
    assert not result.unchanged
    assert list(manifest["tables"]) == present(lake)
    assert set(present(lake)) >= {"events", "quarantine", "batches", "amendments", "usage",
                                  "line_items", "invoices", "credit_grants", "issued_documents",
                                  "issued_lines", "document_events"}
    assert manifest["empty_tables"] == [t for t in PUBLISHED_TABLES if t not in present(lake)]
    root = exports.export_root(exports.destination(str(tmp_path / "out")), manifest)
    con = connect()
    for table, entry in manifest["tables"].items():
        files = [f"{root}/{f['path']}" for f in entry["files"]]
        exported = con.execute("SELECT * FROM read_parquet($files, hive_partitioning = true) "
                               "ORDER BY ALL", {"files": files}).fetchall()
        assert exported == lake_rows(con, lake, table), table
        assert len(exported) == entry["rows"], table
        for f in entry["files"]:
            with open(f"{root}/{f['path']}", "rb") as handle:
                data = handle.read()
            assert (len(data), hashlib.sha256(data).hexdigest()) == (f["bytes"], f["sha256"])
    totals = con.execute(
        "SELECT invoice_id, total, billing_month FROM read_parquet($pattern, "
        "hive_partitioning = true)", {"pattern": f"{root}/tables/invoices/*/*.parquet"})
    assert {row[0]: (row[1], row[2]) for row in totals.fetchall()} == {
        invoice: (total, OCTOBER) for invoice, total in TOTALS.items()}


def test_polars_reads_the_export_with_hive_partitions(lake, tmp_path):
    manifest = exports.export(lake, str(tmp_path), now=NOW).manifest
    root = exports.export_root(exports.destination(str(tmp_path)), manifest)
    for table, entry in manifest["tables"].items():
        frame = pl.scan_parquet(f"{root}/{entry['path']}/", hive_partitioning=True).collect()
        assert frame.height == entry["rows"], table
        assert entry["partition_key"] in frame.columns
    usage = pl.scan_parquet(f"{root}/tables/usage/", hive_partitioning=True).collect()
    assert usage.schema["billing_month"] == pl.Date  # only in the path, typed as a date
    invoices = pl.scan_parquet(f"{root}/tables/invoices/", hive_partitioning=True).collect()
    assert dict(invoices.select("invoice_id", "total").iter_rows()) == TOTALS
    assert invoices.schema["total"] == pl.Decimal(38, 4)


def test_s3_export_reads_back_with_pyarrow_duckdb_and_polars(lake, s3):
    result = exports.export(lake, f"s3://{BUCKET}/orb/", now=NOW)
    dest = exports.destination(f"s3://{BUCKET}/orb")
    manifest = exports.read_latest(dest)
    assert manifest == result.manifest
    for table, entry in manifest["tables"].items():
        assert exports.dataset(dest, manifest, table).count_rows() == entry["rows"], table
    con = duckdb.connect()
    con.register("invoices", exports.dataset(dest, manifest, "invoices").to_table())
    assert dict(con.sql("SELECT invoice_id, total FROM invoices").fetchall()) == TOTALS
    options = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
               "aws_region": "us-east-1", "aws_endpoint_url": s3, "aws_allow_http": "true"}
    usage = pl.scan_parquet(f"s3://{BUCKET}/orb/exports/{manifest['export_id']}/tables/usage/",
                            hive_partitioning=True, storage_options=options).collect()
    assert usage.height == manifest["tables"]["usage"]["rows"]
    assert usage["billing_month"].unique().to_list() == [OCTOBER]
    with dest.fs.open_input_stream(f"{exports.export_root(dest, manifest)}/ddl/spark.sql") as f:
        assert b"CREATE TABLE invoices" in f.read()
    assert exports.export(lake, f"s3://{BUCKET}/orb", now=NOW).unchanged


def test_an_unchanged_lake_is_not_exported_again(lake, tmp_path):
    first = exports.export(lake, str(tmp_path), now=NOW)
    again = exports.export(lake, str(tmp_path), now=datetime(2026, 11, 3, tzinfo=UTC))
    assert again.unchanged and again.manifest == first.manifest
    assert [p.name for p in (tmp_path / "exports").iterdir()] == [first.manifest["export_id"]]
    subset = exports.export(lake, str(tmp_path), tables=["invoices"], now=NOW)
    assert not subset.unchanged and list(subset.manifest["tables"]) == ["invoices"]


def test_an_interrupted_export_leaves_the_previous_one_published(lake, tmp_path, monkeypatch):
    copy = Lake(shutil.copytree(lake.root, tmp_path / "lake"))
    out = str(tmp_path / "out")
    first = exports.export(copy, out, now=NOW).manifest
    record_grant(copy, SCENARIO, "tokyo", "JPY", Decimal(500), Decimal(1), date(2026, 12, 1),
                 None, grant_id="g2")

    class Killed(Exception):
        pass

    def crash(export_id, *args):
        raise Killed(f"killed before the manifest of {export_id}")

    monkeypatch.setattr(exports, "_manifest", crash)
    with pytest.raises(Killed):
        exports.export(copy, out, now=datetime(2026, 11, 3, tzinfo=UTC))
    interrupted = [p for p in (tmp_path / "out" / "exports").iterdir()
                   if p.name != first["export_id"]]
    assert len(interrupted) == 1 and (interrupted[0] / "tables").is_dir()
    assert not (interrupted[0] / "manifest.json").exists()
    dest = exports.destination(out)
    assert exports.read_latest(dest) == first  # readers still see the complete export
    assert exports.dataset(dest, first, "credit_grants").count_rows() == 1
    monkeypatch.undo()
    second = exports.export(copy, out, now=datetime(2026, 11, 4, tzinfo=UTC)).manifest
    assert exports.read_latest(dest) == second
    assert exports.dataset(dest, second, "credit_grants").count_rows() == 2


def test_a_file_changed_during_the_export_is_never_published(lake, tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "_sha256", lambda handle: "0" * 64)  # as if rewritten
    with pytest.raises(exports.ExportError, match="changed during the export"):
        exports.export(lake, str(tmp_path), now=NOW)
    assert exports.read_latest(exports.destination(str(tmp_path))) is None


def test_unpublished_tables_and_destinations_are_refused(lake, tmp_path):
    with pytest.raises(exports.ExportError, match="not published: keys"):
        exports.export(lake, str(tmp_path), tables=["invoices", "keys"])
    with pytest.raises(exports.ExportError, match="unsupported destination"):
        exports.export(lake, "gs://bucket/x")


EXPECTED_DDL = {
    "snowflake": """CREATE TABLE invoice_adjustments (
  invoice_id VARCHAR,
  adjustment_id VARCHAR,
  adjustment_type VARCHAR,
  source VARCHAR,
  line_item_ids ARRAY,
  base DECIMAL(38, 4),
  amount DECIMAL(38, 4),
  run_id VARCHAR,
  billing_month DATE
)""",
    "bigquery": """CREATE TABLE invoice_adjustments (
  invoice_id STRING,
  adjustment_id STRING,
  adjustment_type STRING,
  source STRING,
  line_item_ids ARRAY<STRING>,
  base BIGNUMERIC(38, 4),
  amount BIGNUMERIC(38, 4),
  run_id STRING,
  billing_month DATE
)
PARTITION BY billing_month""",
    "spark": """CREATE TABLE invoice_adjustments (
  invoice_id STRING,
  adjustment_id STRING,
  adjustment_type STRING,
  source STRING,
  line_item_ids ARRAY<STRING>,
  base DECIMAL(38, 4),
  amount DECIMAL(38, 4),
  run_id STRING,
  billing_month DATE
)
USING PARQUET
PARTITIONED BY (
  billing_month
)""",
    "postgres": """CREATE TABLE invoice_adjustments (
  invoice_id TEXT,
  adjustment_id TEXT,
  adjustment_type TEXT,
  source TEXT,
  line_item_ids TEXT[],
  base DECIMAL(38, 4),
  amount DECIMAL(38, 4),
  run_id TEXT,
  billing_month DATE
)""",
}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_ddl_of_a_table_read_from_the_lake(lake, dialect):
    found, _ = exports.scan(lake, ["invoice_adjustments"])
    table = found["invoice_adjustments"]  # billing_month only in the path, added as a DATE
    assert create_table(table.name, table.schema, table.key, dialect) == EXPECTED_DDL[dialect]


INSTANTS = {"snowflake": "TIMESTAMPTZ", "bigquery": "TIMESTAMP", "spark": "TIMESTAMP",
            "postgres": "TIMESTAMPTZ"}
WALL_CLOCK = {"snowflake": "TIMESTAMPNTZ", "bigquery": "DATETIME", "spark": "TIMESTAMP_NTZ",
              "postgres": "TIMESTAMP"}
AMOUNTS = {"snowflake": "DECIMAL(38, 21)", "bigquery": "BIGNUMERIC(38, 21)",
           "spark": "DECIMAL(38, 21)", "postgres": "DECIMAL(38, 21)"}
ROWS = {"snowflake": '"ROWS"', "bigquery": "`rows`", "spark": "rows", "postgres": "rows"}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_ddl_types_per_dialect(dialect):
    schema = pa.schema([pa.field("seen_at", pa.timestamp("us", tz="UTC"), nullable=False),
                        ("local", pa.timestamp("us")), ("precise", pa.decimal128(38, 21)),
                        ("fits_numeric", pa.decimal128(33, 4)), ("rows", pa.int64())])
    assert create_table("t", schema, None, dialect).splitlines()[1:-1] == [
        f"  seen_at {INSTANTS[dialect]} NOT NULL,", f"  local {WALL_CLOCK[dialect]},",
        f"  precise {AMOUNTS[dialect]},",
        f"  fits_numeric {'NUMERIC' if dialect == 'bigquery' else 'DECIMAL'}(33, 4),",
        f"  {ROWS[dialect]} BIGINT" if dialect != "bigquery" else "  `rows` INT64"]
    with pytest.raises(UnsupportedType, match="column 'key_hash'"):
        create_table("keys", pa.schema([("key_hash", pa.uint64())]), None, dialect)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_ddl_of_every_table_parses_back_in_its_dialect(lake, dialect):
    found, _ = exports.scan(lake)
    script = exports.ddl(found, dialect, namespace="analytics.billing")
    statements = sqlglot.parse(script, read=dialect)
    assert [s.this.this.name for s in statements] == present(lake)
    assert all(isinstance(s, exp.Create) and s.this.this.db == "billing" for s in statements)
    sqlglot.transpile(script, read=dialect, write=dialect,
                      unsupported_level=sqlglot.ErrorLevel.RAISE)
    assert "FLOAT" not in script and "DOUBLE" not in script  # money stays decimal


def test_cli_exports_and_prints_ddl(lake, tmp_path):
    cli = CliRunner(env={"COLUMNS": "200"})
    result = cli.invoke(export_command, ["--to", str(tmp_path), "--data-dir", str(lake.root),
                                         "--tables", "invoices,line_items"])
    assert result.exit_code == 0, result.output
    assert "│ invoices" in result.output and "_latest.json points to it" in result.output
    again = cli.invoke(export_command, ["--to", str(tmp_path), "--data-dir", str(lake.root),
                                        "--tables", "invoices,line_items"])
    assert "Unchanged since that export" in again.output
    ddl = cli.invoke(export_command, ["--ddl", "postgres", "--data-dir", str(lake.root),
                                      "--tables", "invoice_adjustments"])
    assert ddl.exit_code == 0 and EXPECTED_DDL["postgres"] + ";" in ddl.output
    refused = cli.invoke(export_command, ["--ddl", "spark", "--data-dir", str(lake.root),
                                          "--tables", "keys"])
    assert refused.exit_code == 2 and "unpublished: keys" in refused.output
    assert cli.invoke(export_command, ["--data-dir", str(lake.root)]).exit_code == 2
